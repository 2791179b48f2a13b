import NIOCore

/// Where the backend hooks are and how they are called (`HERALD_*_HOOK_URL`, `HERALD_HOOK_*`).
public struct HookConfiguration: Sendable, Equatable {
    public var connectURL: String?
    public var subscribeURL: String?
    public var publishURL: String?
    public var refreshURL: String?
    /// Signs every call's body (`X-Herald-Signature: sha256=<hex>`); unsigned when unset.
    public var secret: String?
    public var timeout = TimeAmount.seconds(1)
    /// Request headers passed to the connect hook besides `Cookie` and `Authorization`.
    public var forwardHeaders: [String] = []

    public init() {}

    public var isEmpty: Bool { connectURL == nil && subscribeURL == nil && publishURL == nil && refreshURL == nil }
}

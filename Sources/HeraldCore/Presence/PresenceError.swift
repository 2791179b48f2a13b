/// Why presence could not be read.
public enum PresenceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The store cannot reach its backend, or presence is off on this node.
    case unavailable(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "presence unavailable: \(reason)"
        }
    }
}

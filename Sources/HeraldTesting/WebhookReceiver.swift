import Foundation
import HeraldProtocol
import HeraldServer
import Synchronization

/// A real HTTP webhook receiver for tests (a ``TestBackend``): it checks each request's
/// signature and keeps the events of the requests it accepted, in arrival order.
public final class WebhookReceiver: Sendable {
    public struct Event: Sendable, Equatable {
        public var id: String
        public var name: String
        public var channel: String?
        public var user: String?
        /// What the key is: the channel, or `user:<user>`.
        public var subject: String { channel ?? "user:\(user ?? "")" }
    }

    public let backend: TestBackend
    public let secret: String
    private let accepted = Mutex<[Event]>([])
    private let badSignatures = Mutex(0)
    /// `false`: answers 503 (the events are not taken).
    private let accepting = Mutex(true)

    init(backend: TestBackend, secret: String) {
        self.backend = backend
        self.secret = secret
        backend.answer { [self] call in
            guard call.header("X-Herald-Signature") == BackendHooks.signature(of: call.rawBody, secret: secret) else {
                badSignatures.withLock { $0 += 1 }
                return (401, "{}")
            }
            guard accepting.withLock({ $0 }) else { return (503, "{}") }
            let events = Self.events(call.body)
            accepted.withLock { $0 += events }
            return (200, "{}")
        }
    }

    public var url: String { backend.url("webhook") }
    public var events: [Event] { accepted.withLock { $0 } }
    public var signatureFailures: Int { badSignatures.withLock { $0 } }

    public func events(for subject: String) -> [String] {
        events.filter { $0.subject == subject }.map(\.name)
    }

    public func accept(_ on: Bool) { accepting.withLock { $0 = on } }

    private static func events(_ body: [String: JSONValue]) -> [Event] {
        guard case .array(let items)? = body["events"] else { return [] }
        return items.compactMap { item in
            guard case .object(let fields) = item, case .string(let id)? = fields["id"], case .string(let name)? = fields["name"] else {
                return nil
            }
            var event = Event(id: id, name: name)
            if case .string(let channel)? = fields["channel"] { event.channel = channel }
            if case .string(let user)? = fields["user"] { event.user = user }
            return event
        }
    }
}

/// Runs a ``WebhookReceiver`` for the duration of `body`.
public func withWebhookReceiver<T: Sendable>(secret: String = "webhook-test-secret", _ body: (WebhookReceiver) async throws -> T) async throws -> T {
    try await withTestBackend { backend in try await body(WebhookReceiver(backend: backend, secret: secret)) }
}

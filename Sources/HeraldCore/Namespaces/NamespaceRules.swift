import Synchronization

/// The node's current ``Namespaces``, shared by the sessions, the brokers and the announcer,
/// and replaced as a whole when the configuration file is reloaded (`SIGHUP`): every
/// reader sees the old rules or the new ones, never a mix, and no connection is touched.
public final class NamespaceRules: Sendable {
    private let current: Mutex<Namespaces>

    public init(_ namespaces: Namespaces = Namespaces()) {
        self.current = Mutex(namespaces)
    }

    /// Rules with one history policy for every channel (a broker built without namespaces).
    public convenience init(history: HistoryPolicy) {
        self.init(Namespaces(defaultPolicy: NamespacePolicy(history: history)))
    }

    public var namespaces: Namespaces { current.withLock { $0 } }

    public func replace(with namespaces: Namespaces) {
        current.withLock { $0 = namespaces }
    }

    public func policy(for channel: String) -> NamespacePolicy? {
        current.withLock { $0.policy(for: channel) }
    }

    public func history(for channel: String) -> HistoryPolicy {
        current.withLock { $0.history(for: channel) }
    }

    /// The default namespace's history: the node-wide parts (idempotency window, the memory
    /// bound) and the gap healer's page size.
    public var defaultHistory: HistoryPolicy { current.withLock { $0.defaultPolicy.history } }

    public func joinsAndLeaves(_ channel: String) -> Bool {
        current.withLock { $0.joinsAndLeaves(channel) }
    }
}

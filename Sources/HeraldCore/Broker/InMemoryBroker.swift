import HeraldProtocol
import NIOCore
import ServiceLifecycle
import Synchronization

/// The single-node broker: a publication goes straight to this node's Hub, with its position
/// in the channel's in-memory history (``MemoryHistory``).
///
/// The embedded default when no Redis is configured. Assigning the offset, storing and
/// handing the publication to the Hub happen under one lock, so a channel's publications
/// reach the Hub — which queues per event loop in call order — in offset order. Epochs are
/// random per channel incarnation: a restarted node starts new ones, which is what tells a
/// reconnecting client that the history it knew is gone.
public final class InMemoryBroker: Broker {
    private struct State {
        var sink: (any PublicationSink)?
        var history: MemoryHistory
    }

    private let state: Mutex<State>
    /// Each channel's history policy, by namespace.
    public let rules: NamespaceRules

    public convenience init(policy: HistoryPolicy = HistoryPolicy()) {
        self.init(rules: NamespaceRules(history: policy))
    }

    public init(rules: NamespaceRules) {
        self.rules = rules
        self.state = Mutex(State(history: MemoryHistory(rules: rules)))
    }

    public var kind: String { "memory" }
    public var status: BrokerStatus { .up }

    public func attach(_ sink: any PublicationSink) {
        state.withLock { $0.sink = sink }
    }

    /// Everything happens under the lock, at once: no task needed on an event loop.
    public func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
        do {
            return loop.makeSucceededFuture(try publishNow(publication))
        } catch {
            return loop.makeFailedFuture(error)
        }
    }

    private func publishNow(_ publication: Publication) throws(BrokerError) -> PublishReceipt {
        let now = NIODeadline.now()
        let policy = rules.history(for: publication.channel)
        return try state.withLock { state throws(BrokerError) -> PublishReceipt in
            guard let sink = state.sink else { throw .unavailable("no hub attached") }
            if let key = publication.idempotencyKey, let earlier = state.history.duplicate(of: key, now: now) {
                return earlier
            }
            var delivered = publication
            if policy.isOn {
                let (position, payload) = state.history.append(publication.payload, to: publication.channel, policy: policy, now: now)
                delivered.position = position
                delivered.payload = payload
            }
            sink.deliver(delivered)
            let receipt = PublishReceipt(id: publication.id, position: delivered.position)
            if let key = publication.idempotencyKey { state.history.remember(receipt, key: key, now: now) }
            return receipt
        }
    }

    public func publishTransient(_ publication: Publication) async throws(BrokerError) {
        let now = NIODeadline.now()
        try state.withLock { state throws(BrokerError) in
            guard let sink = state.sink else { throw .unavailable("no hub attached") }
            if let key = publication.idempotencyKey {
                guard state.history.duplicate(of: key, now: now) == nil else { return }
                state.history.remember(PublishReceipt(id: publication.id, position: nil), key: key, now: now)
            }
            sink.deliver(publication)
        }
    }

    public func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) {
        try state.withLock { state throws(BrokerError) in
            guard let sink = state.sink else { throw .unavailable("no hub attached") }
            sink.deliver(signal, to: channel)
        }
    }

    public func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
        guard rules.history(for: channel).isOn else { return HistoryPage(latest: nil, publications: [], oldest: 0) }
        let now = NIODeadline.now()
        return state.withLock { $0.history.page(of: channel, after: offset, limit: limit, now: now) }
    }

    /// Interest needs no bookkeeping: every publication reaches the one Hub anyway.
    public func setInterest(in channel: String, _ interested: Bool) {}

    /// Every publication reaches the one Hub: a subscription is in effect at once.
    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        loop.makeSucceededVoidFuture()
    }

    /// Forgets expired histories now and then, until shutdown.
    public func run() async throws {
        // A namespace with a shorter TTL than the default is swept at most 5 s late.
        let sweep = Duration.nanoseconds(max(min(rules.defaultHistory.ttl.nanoseconds / 4, 5_000_000_000), 10_000_000))
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: sweep)
                let now = NIODeadline.now()
                self.state.withLock { $0.history.expire(now: now) }
            }
        }
    }
}

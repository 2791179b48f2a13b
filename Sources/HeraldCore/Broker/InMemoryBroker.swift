import HeraldProtocol
import NIOCore
import ServiceLifecycle
import Synchronization

/// The single-node broker: a publication goes straight to this node's Hub.
///
/// The embedded default when no Redis is configured. Ordering holds because delivery is a
/// synchronous hand-off to the Hub, which queues per event loop in call order.
public final class InMemoryBroker: Broker {
    private let sink = Mutex<(any PublicationSink)?>(nil)

    public init() {}

    public var kind: String { "memory" }
    public var status: BrokerStatus { .up }

    public func attach(_ sink: any PublicationSink) {
        self.sink.withLock { $0 = sink }
    }

    public func publish(_ publication: Publication) async throws(BrokerError) {
        guard let sink = sink.withLock({ $0 }) else { throw .unavailable("no hub attached") }
        sink.deliver(publication)
    }

    /// Interest needs no bookkeeping: every publication reaches the one Hub anyway.
    public func setInterest(in channel: String, _ interested: Bool) {}

    /// Every publication reaches the one Hub: a subscription is in effect at once.
    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        loop.makeSucceededVoidFuture()
    }

    public func run() async throws {
        try? await gracefulShutdown()
    }
}

import Synchronization

/// Where this node's publications enter the broker: REST notifications and client `message`s.
///
/// It answers what a publisher is told — `delivered`, the channel's subscribers in the whole
/// cluster at the moment of publishing (see docs/protocol.md) — and counts what it accepted.
public final class Publisher: Sendable {
    private let broker: any Broker
    private let counts: SubscriberCounts
    private let accepted = Atomic<Int>(0)

    public init(broker: any Broker, counts: SubscriberCounts) {
        self.broker = broker
        self.counts = counts
    }

    /// What a publisher is told.
    public struct Outcome: Sendable, Equatable {
        /// Subscribers the notification was handed to (0 for a duplicate).
        public var delivered: Int
        public var receipt: PublishReceipt
    }

    /// Publishes and says where the publication landed and to how many subscribers.
    /// - Throws: ``BrokerError/unavailable(_:)`` when nothing was published.
    public func publish(_ publication: Publication) async throws(BrokerError) -> Outcome {
        let delivered = await counts.clusterWide(publication.channel)
        let receipt = try await broker.publish(publication)
        if receipt.duplicate { return Outcome(delivered: 0, receipt: receipt) }
        accepted.add(1, ordering: .relaxed)
        return Outcome(delivered: delivered, receipt: receipt)
    }

    /// Publications this node accepted.
    public var published: Int { accepted.load(ordering: .relaxed) }
}

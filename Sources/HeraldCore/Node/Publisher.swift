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

    /// Publishes and returns `delivered`.
    /// - Throws: ``BrokerError/unavailable(_:)`` when nothing was published.
    public func publish(_ publication: Publication) async throws(BrokerError) -> Int {
        let delivered = await counts.clusterWide(publication.channel)
        try await broker.publish(publication)
        accepted.add(1, ordering: .relaxed)
        return delivered
    }

    /// Publications this node accepted.
    public var published: Int { accepted.load(ordering: .relaxed) }
}

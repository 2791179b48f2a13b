import HeraldCore
import NIOCore
import ServiceLifecycle

/// The broker over several independent Redis shards: one ``RedisBroker`` per shard, each
/// channel served by the one ``ShardMap`` names — its publishes, its stream and meta, its
/// idempotency keys and its pub/sub all on that shard, so losing a shard affects only its
/// channels (their publishes fail with `unavailable`, everything else keeps working).
///
/// Every node-wide key (the registry) lives on the first shard; `delivered` for a channel on
/// another shard asks the first shard's broker for the other nodes' count beside the publish.
public final class ShardedBroker: Broker {
    private let shards: Shards<RedisBroker>
    private var registryShard: RedisBroker { shards.members[0] }
    private let addresses: [String]

    /// - Parameter counting: the registry's keys (on the first shard), for `delivered`.
    public init(
        topology: RedisTopology, policy: HistoryPolicy = HistoryPolicy(), replication: ReplicationPolicy = ReplicationPolicy(),
        probeInterval: TimeAmount = RedisBroker.defaultProbeInterval, counting: RedisSubscriberCounting? = nil
    ) {
        var first = true
        shards = Shards(topology) { shard in
            defer { first = false }
            return RedisBroker(
                topology: shard, policy: policy, replication: replication, probeInterval: probeInterval,
                counting: first ? counting : nil)
        }
        addresses = topology.shards.indices.map { topology.shard($0).address }
    }

    public var kind: String { "redis" }

    /// Up when every shard is; `partial`, naming the unreachable shards by `host:port`, when
    /// some are; `degraded` when none can be reached.
    public var status: BrokerStatus {
        let down = zip(shards.members, addresses).filter { !$0.0.status.isUp }.map(\.1)
        if down.isEmpty { return .up }
        let reason = "Redis shard\(down.count == 1 ? "" : "s") \(down.joined(separator: ", ")) unreachable"
        return down.count == addresses.count ? .degraded(reason) : .partial(reason)
    }

    public var parts: [(name: String, isUp: Bool)] {
        zip(addresses, shards.members).map { ($0, $1.status.isUp) }
    }

    public func attach(_ sink: any PublicationSink) {
        for broker in shards.members { broker.attach(sink) }
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for broker in shards.members { group.addTask { try await broker.run() } }
        }
    }

    public func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
        let broker = shards.of(publication.channel)
        let published = broker.publish(publication, on: loop)
        guard broker !== registryShard else { return published }
        // Counted beside the publish, as the registry's own shard does in its pipeline.
        return published.and(registryShard.countOthers(of: publication.channel, on: loop)).map { receipt, others in
            var receipt = receipt
            if !receipt.duplicate { receipt.otherNodesSubscribers = others }
            return receipt
        }
    }

    public func publishTransient(_ publication: Publication) async throws(BrokerError) {
        try await shards.of(publication.channel).publishTransient(publication)
    }

    public func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) {
        try await shards.of(channel).send(signal, to: channel)
    }

    public func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
        try await shards.of(channel).history(of: channel, after: offset, limit: limit)
    }

    public func setInterest(in channel: String, _ interested: Bool) {
        shards.of(channel).setInterest(in: channel, interested)
    }

    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        shards.of(channel).whenSubscribed(channel, on: loop)
    }
}

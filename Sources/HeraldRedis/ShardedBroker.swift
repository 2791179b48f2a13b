import HeraldCore
import NIOCore
import ServiceLifecycle

/// The broker over several independent Redis shards: one ``RedisBroker`` per shard, each
/// channel served by the one ``ShardMap`` names — its publishes, its stream and meta, its
/// idempotency keys and its pub/sub all on that shard, so losing a shard affects only its
/// channels (their publishes fail with `unavailable`, everything else keeps working).
///
/// Every node-wide key (the registry) lives on the first shard; the nodes' subscriber counts of
/// a channel live on its own shard, so `delivered` is counted in the publish's round trip.
public final class ShardedBroker: Broker, SubscriberCountStore {
    private let shards: Shards<RedisBroker>

    /// - Parameter counting: this node's id, for `delivered`.
    public init(
        topology: RedisTopology, policy: HistoryPolicy = HistoryPolicy(), rules: NamespaceRules? = nil, replication: ReplicationPolicy = ReplicationPolicy(),
        probeInterval: TimeAmount = RedisBroker.defaultProbeInterval, counting: RedisSubscriberCounting? = nil
    ) {
        shards = Shards(topology) { _, shard in
            RedisBroker(
                topology: shard, policy: policy, rules: rules, replication: replication, probeInterval: probeInterval, counting: counting)
        }
    }

    public var kind: String { "redis" }

    /// Up when every shard is; `partial`, naming the unreachable shards by `host:port`, when
    /// some are; `degraded` when none can be reached.
    public var status: BrokerStatus {
        let down = parts.filter { !$0.isUp }.map(\.name)
        if down.isEmpty { return .up }
        let reason = "Redis shard\(down.count == 1 ? "" : "s") \(down.joined(separator: ", ")) unreachable"
        return down.count == shards.members.count ? .degraded(reason) : .partial(reason)
    }

    public var parts: [(name: String, isUp: Bool)] {
        shards.members.map { ($0.topology.address, $0.status.isUp) }
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
        shards.of(publication.channel).publish(publication, on: loop)
    }

    /// One batch per shard — one round trip each, all at once — answered in the request's order.
    public func publish(batch publications: [Publication], on loop: any EventLoop) -> EventLoopFuture<[Result<PublishReceipt, BrokerError>]> {
        var groups: [ObjectIdentifier: (broker: RedisBroker, indices: [Int])] = [:]
        for (index, publication) in publications.enumerated() {
            let broker = shards.of(publication.channel)
            groups[ObjectIdentifier(broker), default: (broker, [])].indices.append(index)
        }
        let parts = groups.values.map { group in
            group.broker.publish(batch: group.indices.map { publications[$0] }, on: loop).map { (group.indices, $0) }
        }
        let count = publications.count
        return EventLoopFuture.whenAllSucceed(parts, on: loop).map { parts in
            var results = [Result<PublishReceipt, BrokerError>](repeating: .failure(.unavailable("not published")), count: count)
            for (indices, answers) in parts { for (index, answer) in zip(indices, answers) { results[index] = answer } }
            return results
        }
    }

    public func writeCounts(_ counts: [(channel: String, count: Int)], ttl: TimeAmount) {
        let byChannel = Dictionary(counts.map { ($0.channel, $0.count) }, uniquingKeysWith: { _, last in last })
        for (broker, channels) in shards.grouped(counts.map(\.channel)) {
            broker.writeCounts(channels.map { ($0, byChannel[$0] ?? 0) }, ttl: ttl)
        }
    }

    public func countOthers(of channel: String) async throws(BrokerError) -> Int {
        try await shards.of(channel).countOthers(of: channel)
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

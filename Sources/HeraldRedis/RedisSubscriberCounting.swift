import HeraldCore
import NIOCore

/// How nodes' subscribers of a channel are counted across the cluster: each node keeps its
/// local count in the channel's count hash (``RedisKeys/counts(_:)``), on the channel's own
/// shard, with an expiry a heartbeat renews; the publish reads the other nodes' entries in the
/// same round trip (``RedisScripts/countChannel``), leaving this node out (it knows its own).
public struct RedisSubscriberCounting: Sendable {
    public let keys: RedisKeys
    public let nodeID: String
    /// This node's id, encoded once: every count passes it.
    private let node: ByteBuffer

    public init(keys: RedisKeys, nodeID: String) {
        self.keys = keys
        self.nodeID = nodeID
        self.node = ByteBuffer(string: nodeID)
    }

    /// Reads the other nodes' subscribers of `channel`.
    func count(_ channel: String) -> PipelinedCommand {
        .script(LoadedScript.countChannel, keys: [keys.counts(channel)], arguments: [node])
    }

    /// Reads the other nodes' subscribers of `channel` and which nodes have them (a receipt
    /// waits for those).
    func countNodes(_ channel: String) -> PipelinedCommand {
        .script(LoadedScript.countChannelNodes, keys: [keys.counts(channel)], arguments: [node])
    }

    /// Writes this node's counts of `counts`' channels (of one slot in a Redis Cluster),
    /// alive for `ttl` unless written again.
    func write(_ counts: [(channel: String, count: Int)], ttl: TimeAmount) -> PipelinedCommand {
        .script(
            LoadedScript.setCount, keys: counts.map { keys.counts($0.channel) },
            arguments: [node, ByteBuffer(string: String(ttl.nanoseconds / 1_000_000))]
                + counts.map { ByteBuffer(string: String($0.count)) })
    }
}

/// Where the nodes' subscriber counts live: beside each channel's other keys, on its shard —
/// so the broker, which routes by channel, keeps them. ``RedisClusterRegistry`` writes this
/// node's on every change and heartbeat and reads the others' for a `subscribed`.
public protocol SubscriberCountStore: Sendable {
    /// Writes this node's local subscribers of each channel (0: none), alive for `ttl`. Dropped
    /// where Redis cannot be reached: the next heartbeat writes them all again.
    func writeCounts(_ counts: [(channel: String, count: Int)], ttl: TimeAmount)
    /// The other live nodes' subscribers of `channel`.
    func countOthers(of channel: String) async throws(BrokerError) -> Int
}

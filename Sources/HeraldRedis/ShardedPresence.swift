import HeraldCore
import NIOCore
import HeraldProtocol
import ServiceLifecycle

/// Presence over several independent Redis shards: one ``RedisPresence`` per shard, each
/// channel's members kept on the shard that holds the channel (``ShardMap``), beside its
/// stream and pub/sub.
public final class ShardedPresence: PresenceStore, MembershipObserver, Service {
    private let shards: Shards<RedisPresence>

    public init(topology: RedisTopology, interval: TimeAmount) {
        shards = Shards(topology) { RedisPresence(topology: $1, interval: interval) }
    }

    public func joined(_ channel: String, _ member: PresenceMember) {
        shards.of(channel).joined(channel, member)
    }

    public func left(_ channel: String, _ member: PresenceMember) {
        shards.of(channel).left(channel, member)
    }

    public func updated(_ member: PresenceMember, channels: [String]) {
        for (store, channels) in shards.grouped(channels) { store.updated(member, channels: channels) }
    }

    public func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage {
        try await shards.of(channel).members(of: channel, after: cursor, limit: limit)
    }

    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for store in shards.members { group.addTask { try await store.run() } }
        }
    }
}

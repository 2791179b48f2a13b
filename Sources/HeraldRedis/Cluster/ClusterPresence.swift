import HeraldCore
import HeraldProtocol
import NIOCore
import ServiceLifecycle

/// Presence over a Redis Cluster: one ``RedisPresence`` per master, each channel's members
/// kept on the master of its slot, beside its stream and pub/sub. When a channel changes
/// hands (a failover, a slot migration) this node's members of it are written at the new
/// master at once instead of waiting for the next heartbeat.
public final class ClusterPresence: PresenceStore, MembershipObserver, Service {
    private let members: ClusterMembers<RedisPresence>

    public init(topology: RedisTopology, interval: TimeAmount) {
        members = ClusterMembers(
            topology: topology, make: { RedisPresence(topology: $0, interval: interval) },
            run: { store in try? await store.run() })
        members.observe { change in Self.move(change) }
    }

    /// Hands every channel whose master changed from the store that holds it to its new one.
    private static func move(_ change: ClusterMembers<RedisPresence>.Change) {
        for (node, store) in change.members.map({ ($0.key, $0.value) }) + change.retiring.map({ ($0.node, $0.member) }) {
            for channel in store.channels {
                guard let owner = change.map.owner(ofChannel: channel), owner != node, let target = change.members[owner]
                else { continue }
                target.adopt(channel, store.handOver(channel))
            }
        }
    }

    private func store(of channel: String) -> RedisPresence? {
        members.of(channel)?.member
    }

    public func joined(_ channel: String, _ member: PresenceMember) {
        store(of: channel)?.joined(channel, member)
    }

    public func left(_ channel: String, _ member: PresenceMember) {
        // The current master's store holds it: a move hands the members over.
        store(of: channel)?.left(channel, member)
    }

    public func updated(_ member: PresenceMember, channels: [String]) {
        for (store, channels) in members.grouped(channels) { store.updated(member, channels: channels) }
    }

    /// Read at the channel's master. A read that fails (a `MOVED` from a map not refreshed yet,
    /// a master failing over) is retried at whichever master serves the slot then, for at most
    /// one ``RedirectRetry`` budget: a read changes nothing, so asking twice is safe.
    public func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage {
        var retry = RedirectRetry()
        while true {
            let failure: PresenceError
            if let store = store(of: channel) {
                do throws(PresenceError) {
                    return try await store.members(of: channel, after: cursor, limit: limit)
                } catch {
                    failure = error
                }
            } else {
                failure = .unavailable("no Redis Cluster master serves channel '\(channel)'")
            }
            members.monitor.refreshSoon()
            guard await retry.wait() else { throw failure }
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.members.run()
        }
    }
}

import HeraldCore
import HeraldRedis
import HeraldServer
import HeraldTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// The cluster registry against a real redis-server, with a node whose counts change at the
/// worst moment.
@Suite struct RegistryTests {
    /// A node whose first count snapshot misses a subscription made just after it was taken,
    /// as a subscribe on an event loop can while the registry registers from another thread.
    final class LateSubscriber: LocalNodeState {
        let nodeID = "late"
        private let counts = Mutex<[String: Int]>([:])
        private let registry = Mutex<RedisClusterRegistry?>(nil)

        func watch(_ registry: RedisClusterRegistry) { self.registry.withLock { $0 = registry } }

        var stats: NodeStats {
            NodeStats(
                node: nodeID, connections: 0, channels: 0, messagesPublished: 0, messagesDelivered: 0, startedAt: "",
                uptimeSeconds: 0)
        }

        func channelCounts() -> [String: Int] {
            let snapshot = counts.withLock { counts in
                defer { counts["news", default: 0] += 1 }
                return counts
            }
            if snapshot.isEmpty { registry.withLock { $0 }?.channelCountChanged("news") }
            return snapshot
        }

        func subscriberCount(_ channel: String) -> Int { counts.withLock { $0[channel] ?? 0 } }

        func clients(after cursor: UInt64, limit: Int) async -> [(sequence: UInt64, info: ClientInfo)] { [] }
    }

    @Test func aSubscriptionMadeWhileTheNodeRegistersReachesRedis() async throws {
        try await withRedis { redis in
            try await HeraldNode.withEventLoopGroup(threads: 1) { group in
                let registry = RedisClusterRegistry(
                    nodeID: "late",
                    topology: RedisTopology(url: redis.url, prefix: "reg", group: group, logger: Logger(label: "registry-test")),
                    interval: .seconds(30))
                let local = LateSubscriber()
                local.watch(registry)
                registry.attach(local, hub: Hub(nodeID: "late", broker: InMemoryBroker(), eventLoopGroup: group))
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await registry.run() }
                    defer { tasks.cancelAll() }
                    // The heartbeat is 30 s away: only the registration and its follow-up
                    // flush can write the count.
                    try await waitUntil("the late subscription in the node's counts", timeout: .seconds(5)) {
                        (try? await redis.command("HGET", RedisKeys(prefix: "reg").nodeChannels("late"), "news").string) == "1"
                    }
                }
            }
        }
    }
}

import HeraldCore
import HeraldProtocol
@testable import HeraldRedis
import HeraldTesting
import Logging
import NIOCore
import NIOPosix
import Testing

/// The nodes' subscriber counts of a channel, kept beside its other keys (`<p>:cnt:{<c>}`):
/// what `delivered` and `subscriberCount` read. Brokers on one real redis-server stand for
/// three nodes.
@Suite struct SubscriberCountTests {
    func withBrokers(_ ids: [String], _ body: ([RedisBroker], RedisServer, RedisKeys) async throws -> Void) async throws {
        try await withRedis { redis in
            let topology = RedisTopology(
                url: redis.url, prefix: "counts", group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let brokers = ids.map {
                RedisBroker(topology: topology, counting: RedisSubscriberCounting(keys: topology.keys, nodeID: $0))
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for broker in brokers { group.addTask { try await broker.run() } }
                defer { group.cancelAll() }
                try await waitUntil("the brokers to reach Redis") { brokers.allSatisfy(\.status.isUp) }
                try await body(brokers, redis, topology.keys)
            }
        }
    }

    @Test func eachNodeCountsTheOthersOnly() async throws {
        try await withBrokers(["a", "b", "c"]) { brokers, _, _ in
            brokers[0].writeCounts([("room", 2), ("hall", 1)], ttl: .seconds(10))
            brokers[1].writeCounts([("room", 3)], ttl: .seconds(10))
            try await waitUntil("both counts to be written") { try await brokers[2].countOthers(of: "room") == 5 }
            #expect(try await brokers[0].countOthers(of: "room") == 3)
            #expect(try await brokers[1].countOthers(of: "room") == 2)
            #expect(try await brokers[1].countOthers(of: "hall") == 1)
            // A publish counts in its own round trip.
            let payload = ByteBuffer(string: #"{"type":"notification","channel":"room","title":"x"}"#)
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let receipt = try await brokers[2].publish(Publication(channel: "room", payload: payload, id: "1"), on: loop).get()
            #expect(receipt.otherNodesSubscribers == 5)
            // A count of 0 removes the node's entry.
            brokers[0].writeCounts([("room", 0)], ttl: .seconds(10))
            try await waitUntil("a's entry to go") { try await brokers[2].countOthers(of: "room") == 3 }
        }
    }

    @Test func aNodeThatStopsWritingDropsOutAndIsPrunedByTheNextWriter() async throws {
        try await withBrokers(["live", "dead"]) { brokers, redis, keys in
            let key = String(buffer: keys.counts("room"))
            brokers[1].writeCounts([("room", 4)], ttl: .milliseconds(300))
            brokers[0].writeCounts([("room", 1)], ttl: .seconds(10))
            try await waitUntil("both entries") { try await redis.command("HLEN", key).int == 2 }
            // Not renewed: left out of every count once it expires (Redis' clock)...
            try await waitUntil("the dead node's entry to expire", timeout: .seconds(5)) {
                try await brokers[0].countOthers(of: "room") == 0
            }
            #expect(try await redis.command("HLEN", key).int == 2)
            // ...and removed by the next write of anyone, so dead ids never pile up.
            brokers[0].writeCounts([("room", 1)], ttl: .seconds(10))
            try await waitUntil("the expired entry to be pruned") { try await redis.command("HLEN", key).int == 1 }
            #expect(try await redis.command("HEXISTS", key, "live").int == 1)
        }
    }
}

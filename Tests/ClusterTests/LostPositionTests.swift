import Foundation
import HeraldProtocol
import HeraldTesting
import Testing

/// A Redis that loses its last writes (a failover with asynchronous replication) must not
/// make Herald hand out a position twice: clients would drop the second notification as a
/// duplicate of the first. Simulated on a real redis-server by trimming the channel's stream
/// and meta back to where a new master would have them.
@Suite(.serialized) struct LostPositionTests {
    /// Five notifications delivered to a subscriber on node 1, then offsets 4 and 5 lost.
    func withLostPositions(
        _ body: (RedisServer, [RunningNode], TestWebSocket, StreamPosition, _ meta: String) async throws -> Void
    ) async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let watcher = try await nodes[0].subscriber("fragile")
                var last: StreamPosition?
                for index in 1...5 {
                    _ = try await nodes[1].request(.POST, "/api/notify/fragile", body: #"{"title":"\#(index)"}"#)
                    last = try await watcher.nextNotification().position
                }
                let seen = try #require(last)
                #expect(seen.offset == 5)
                // What a new master that missed the last two writes holds: entries 1-3 (and a
                // stream whose top id is 3-0), latest offset 3, same epoch.
                let prefix = nodes[0].configuration.redisPrefix
                let stream = "\(prefix):hist:{fragile}"
                let kept = try await redis.command("XRANGE", stream, "-", "+", "COUNT", "3").array ?? []
                _ = try await redis.command("DEL", stream)
                for entry in kept {
                    guard let fields = entry.array, let id = fields.first?.string, let data = fields.last?.array?.last?.string else { continue }
                    _ = try await redis.command("XADD", stream, id, "d", data)
                }
                _ = try await redis.command("HSET", "\(prefix):meta:{fragile}", "s", "3")
                try await body(redis, nodes, watcher, seen, "\(prefix):meta:{fragile}")
            }
        }
    }

    @Test func aPublishThroughANodeThatDeliveredThemStartsANewEpoch() async throws {
        try await withLostPositions { _, nodes, watcher, seen, _ in
            let reply = try await nodes[0].request(.POST, "/api/notify/fragile", body: #"{"title":"after"}"#).object()
            #expect(reply["offset"] == .integer(1))
            #expect(reply["epoch"] != .string(seen.epoch))
            let after = try await watcher.nextNotification()
            #expect(after.title == "after")
            #expect(after.position?.epoch != seen.epoch && after.position?.offset == 1)
        }
    }

    @Test func aNodeThatResubscribesStartsANewEpochBeforeAnyoneReusesThePositions() async throws {
        try await withLostPositions { redis, nodes, watcher, seen, meta in
            // Every subscribed connection drops, as in a failover; node 1 reads back from its floor.
            _ = try await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            try await waitUntil("node 1 to start a new epoch for the channel") {
                try await redis.command("HGET", meta, "e").string != seen.epoch
            }
            // Node 2 never delivered the channel, so only the new epoch keeps it from reusing 4.
            try await waitUntil("node 2 to publish again") {
                (try? await nodes[1].request(.POST, "/api/notify/fragile", body: #"{"title":"after"}"#).status) == 200
            }
            let position = try #require(try await watcher.notification(titled: "after").position)
            #expect(position.epoch != seen.epoch && position.offset == 1)
            // A client returning with the lost position is told, not silently resumed.
            let returning = try await nodes[1].connect()
            try await returning.send(.subscribe(channel: "fragile", since: seen))
            let reply = try await returning.next { if case .subscribed = $0 { true } else { false } }
            guard case .subscribed(_, _, _, let recovery) = reply else { return }
            #expect(recovery?.recovered == false)
        }
    }
}

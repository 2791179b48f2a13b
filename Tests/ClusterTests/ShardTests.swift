import Foundation
import HeraldProtocol
import HeraldRedis
import HeraldTesting
import NIOCore
import Testing

/// Nodes over several independent redis-servers (`HERALD_REDIS_URL` listing three URLs).
@Suite(.serialized) struct ShardTests {
    static let map = ShardMap(count: 3)

    /// `count` channels named `<stem><n>`, grouped by the shard the documented hash gives them.
    static func channelsByShard(_ stem: String, _ count: Int) -> [[String]] {
        var byShard: [[String]] = [[], [], []]
        for index in 0..<count { byShard[map.shard(of: "\(stem)\(index)")].append("\(stem)\(index)") }
        return byShard
    }

    @Test func everyChannelLivesOnTheShardTheDocumentedHashNamesAndCrossesNodesOnEach() async throws {
        try await withRedisShards(3) { shards in
            try await withCluster(3, shards: shards) { nodes in
                let byShard = Self.channelsByShard("s", 300)
                #expect(byShard.allSatisfy { $0.count >= 70 }, "300 channels spread: \(byShard.map(\.count))")
                let prefix = nodes[0].configuration.redisPrefix
                for (index, channel) in byShard.joined().enumerated() {
                    let response = try await nodes[index % 3].request(.POST, "/api/notify/\(channel)", body: #"{"title":"placed"}"#)
                    #expect(response.status == 200, "\(channel): \(response.text)")
                }
                // Each channel's stream is on its shard and on no other.
                for (shard, server) in shards.enumerated() {
                    for (owner, channels) in byShard.enumerated() {
                        let existing = try await server.command(["EXISTS"] + channels.map { "\(prefix):hist:{\($0)}" }).int
                        #expect(existing == (owner == shard ? channels.count : 0), "shard \(shard) holds \(existing ?? -1) of shard \(owner)'s")
                    }
                }
                // Cross-node delivery through each shard, subscribed on the owning shard only.
                let picked = byShard.map { Array($0.prefix(2)) }
                let subscriber = try await nodes[1].connect()
                for channel in picked.joined() {
                    try await subscriber.send(.subscribe(channel: channel))
                    _ = try await subscriber.next { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
                }
                for channel in picked.joined() {
                    try await waitUntil("nodes[2] to count \(channel)'s subscriber") {
                        await nodes[2].clusterSubscriberCount(channel) == 1
                    }
                }
                for (shard, channels) in picked.enumerated() {
                    for channel in channels {
                        let numsub = try await shards[shard].command("PUBSUB", "NUMSUB", "\(prefix):ch:{\(channel)}").array?.last?.int
                        #expect(numsub == 1, "\(channel) subscribed on its shard \(shard)")
                        for other in shards.indices where other != shard {
                            let elsewhere = try await shards[other].command("PUBSUB", "NUMSUB", "\(prefix):ch:{\(channel)}").array?.last?.int
                            #expect(elsewhere == 0, "\(channel) subscribed on shard \(other) too")
                        }
                        let response = try await nodes[2].request(.POST, "/api/notify/\(channel)", body: #"{"title":"via \#(shard)"}"#)
                        #expect(try response.object()["delivered"] == .integer(1), "\(channel): \(response.text)")
                        let received = try await subscriber.nextNotification()
                        #expect(received.channel == channel && received.title == "via \(shard)")
                        #expect(received.position?.offset == 2, "\(channel): the placing publish was offset 1")
                    }
                }
            }
        }
    }

    @Test func losingOneShardFailsOnlyItsChannelsAndItsSubscribersAreToldWhenItIsBack() async throws {
        try await withRedisShards(3) { shards in
            try await withCluster(2, shards: shards) { nodes in
                let byShard = Self.channelsByShard("k", 30)
                let lost = byShard[1][0]
                let kept = [byShard[0][0], byShard[2][0]]
                let subscriber = try await nodes[0].connect()
                for channel in [lost] + kept {
                    try await subscriber.send(.subscribe(channel: channel))
                    _ = try await subscriber.next { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
                }
                _ = try await nodes[1].request(.POST, "/api/notify/\(lost)", body: #"{"title":"before"}"#)
                let before = try #require(try await subscriber.nextNotification().position)

                try await shards[1].kill()
                let address = "127.0.0.1:\(shards[1].port)"
                for node in nodes {
                    try await waitUntil("\(node.hub.nodeID) to notice shard 1 is gone") { !node.broker.status.isUp }
                    let started = ContinuousClock.now
                    let refused = try await node.request(.POST, "/api/notify/\(lost)", body: #"{"title":"lost?"}"#)
                    #expect(ContinuousClock.now - started < .seconds(5))
                    #expect(refused.status == 503)
                    #expect(try refused.object()["code"] == .string("unavailable"))
                    // Still ready: the other shards' channels are served.
                    #expect(try await node.request(.GET, "/ready").status == 200)
                    let health = try await node.request(.GET, "/health").object()
                    #expect(health["status"] == .string("degraded"))
                    guard case .string(let detail) = health["brokerStatus"] else { throw TimeoutError(what: "brokerStatus") }
                    #expect(detail.contains(address), "\(detail) names \(address)")
                    for other in shards.indices where other != 1 {
                        #expect(!detail.contains("127.0.0.1:\(shards[other].port)"), "\(detail) blames a live shard")
                    }
                }
                for channel in kept {
                    let response = try await nodes[1].request(.POST, "/api/notify/\(channel)", body: #"{"title":"still here"}"#)
                    #expect(response.status == 200)
                    let received = try await subscriber.nextNotification()
                    #expect(received.channel == channel && received.title == "still here")
                }

                // Back without its data: the subscriber's next notification there says so with
                // a new epoch, and a client returning with the old position is told.
                try await shards[1].launch()
                for node in nodes {
                    try await waitUntil("\(node.hub.nodeID)'s links to the shard to be back", timeout: .seconds(20)) {
                        node.broker.status.isUp
                    }
                }
                try await waitUntil("the lost shard's channel to take publishes again", timeout: .seconds(20)) {
                    (try? await nodes[1].request(.POST, "/api/notify/\(lost)", body: #"{"title":"after"}"#).status) == 200
                }
                let position = try #require(try await subscriber.notification(titled: "after").position)
                #expect(position.epoch != before.epoch)
                let returning = try await nodes[1].connect()
                try await returning.send(.subscribe(channel: lost, since: before))
                let reply = try await returning.next { if case .subscribed = $0 { true } else { false } }
                guard case .subscribed(_, _, let current, let recovery) = reply else { return }
                #expect(recovery == .init(recovered: false, replayed: 0))
                #expect(current?.epoch == position.epoch)
            }
        }
    }

    /// A shard that stops answering (SIGSTOP: its connections stay open, nothing comes back)
    /// fails its channels' publishes within 5 s; the other shards' channels go on meanwhile.
    @Test func aFrozenShardFailsItsPublishesInBoundedTimeAndTheOthersGoOn() async throws {
        try await withRedisShards(3) { shards in
            try await withCluster(1, shards: shards) { nodes in
                let byShard = Self.channelsByShard("f", 30)
                let (stuck, fine) = (byShard[1][0], byShard[2][0])
                for channel in [stuck, fine] {
                    #expect(try await nodes[0].request(.POST, "/api/notify/\(channel)", body: #"{"title":"before"}"#).status == 200)
                }
                shards[1].freeze(true)
                let started = ContinuousClock.now
                let refused = try await nodes[0].request(.POST, "/api/notify/\(stuck)", body: #"{"title":"stuck?"}"#)
                let waited = ContinuousClock.now - started
                #expect(refused.status == 503)
                #expect(try refused.object()["code"] == .string("unavailable"))
                #expect(waited < .seconds(5), "answered after \(waited)")
                #expect(try await nodes[0].request(.POST, "/api/notify/\(fine)", body: #"{"title":"meanwhile"}"#).status == 200)
                shards[1].freeze(false)
                try await waitUntil("the thawed shard to take publishes again", timeout: .seconds(20)) {
                    (try? await nodes[0].request(.POST, "/api/notify/\(stuck)", body: #"{"title":"after"}"#).status) == 200
                }
            }
        }
    }
}

import Foundation
import HeraldCore
import HeraldTesting
import Testing

/// A node killed without warning leaves the cluster's figures on its own.
@Suite(.serialized) struct NodeFailureTests {
    /// Found by the benchmark script, which stops Redis and the nodes together: a node whose
    /// Redis accepts connections but never answers must still exit within its grace period.
    @Test func aNodeShutsDownWithinItsGraceWhileRedisIsFrozen() async throws {
        try await withRedis { redis in
            try await withNodeProcess(
                arguments: ["--redis-url", "redis://127.0.0.1:\(redis.port)", "--shutdown-grace", "2",
                            "--registry-interval", "0.3"]
            ) { node in
                let client = try await TestWebSocket.connect(port: node.port)
                try await client.send(.subscribe(channel: "frozen"))
                _ = try await client.next { if case .subscribed = $0 { true } else { false } }
                redis.freeze(true)
                defer { redis.freeze(false) }
                // Let the node notice nothing: its registry heartbeat is now waiting on Redis.
                try await client.send(.ping)
                _ = try await client.next { if case .pong = $0 { true } else { false } }
                let status = try await node.stop(signal: SIGTERM, timeout: .seconds(8))
                #expect(status == 0)
            }
        }
    }

    @Test func aKilledNodeLeavesTheFiguresWithinThreeHeartbeats() async throws {
        try await withRedis { redis in
            let prefix = "kill" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
            try await withCluster(1, redis: redis, prefix: prefix) { nodes in
                let survivor = nodes[0]
                try await withNodeProcess(
                    arguments: ["--redis-url", "redis://127.0.0.1:\(redis.port)", "--redis-prefix", prefix,
                                "--node-id", "doomed", "--registry-interval", "0.3"]
                ) { doomed in
                    let victim = try await TestWebSocket.connect(port: doomed.port)
                    try await victim.send(.subscribe(channel: "shared"))
                    _ = try await victim.next { if case .subscribed = $0 { true } else { false } }
                    let local = try await survivor.subscriber("shared")

                    try await waitUntil("the doomed node's client to be listed") {
                        let clients = try await survivor.request(.GET, "/api/clients").object()
                        return clients["total"] == .integer(2)
                    }
                    #expect(await survivor.clusterSubscriberCount("shared") == 2)

                    let killedAt = ContinuousClock.now
                    _ = try await doomed.stop(signal: SIGKILL)
                    // TTL is 3 × 0.3 s; allow a heartbeat of the survivor on top to notice.
                    try await waitUntil("the dead node to leave the figures", timeout: .seconds(5)) {
                        let clients = try await survivor.request(.GET, "/api/clients").object()
                        let channels = try await survivor.request(.GET, "/api/channels").object()
                        let counted = await survivor.clusterSubscriberCount("shared")
                        return clients["total"] == .integer(1)
                            && channels["channels"] == .array([.object(["name": .string("shared"), "subscribers": .integer(1)])])
                            && counted == 1
                    }
                    let elapsed = ContinuousClock.now - killedAt
                    #expect(elapsed < .seconds(2), "left after \(elapsed)")
                    let stats = try await survivor.request(.GET, "/api/stats").object()
                    #expect(stats["nodes"].map { if case .array(let rows) = $0 { rows.count } else { 0 } } == 1)

                    // The survivor keeps serving.
                    let response = try await survivor.request(.POST, "/api/notify/shared", body: #"{"title":"still here"}"#)
                    #expect(try response.object()["delivered"] == .integer(1))
                    #expect(try await local.nextNotification().title == "still here")
                }
            }
        }
    }
}

import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// Receipts a publisher can trust: `POST /api/notify/{channel}?wait=delivered|acked` answers
/// with the sockets each node actually wrote, the acknowledgements, and the nodes that did
/// not report — with real nodes, real Redis and real sockets.
@Suite(.serialized) struct ReceiptTests {
    static func subscriber(_ port: Int, _ channel: String, receiveBufferBytes: Int? = nil) async throws -> TestWebSocket {
        let client = try await TestWebSocket.connect(port: port, receiveBufferBytes: receiveBufferBytes)
        try await client.send(.subscribe(channel: channel))
        _ = try await client.next(timeout: .seconds(10)) { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
        return client
    }

    static func lagged(_ baseURL: String) async throws -> Bool {
        let text = try await HTTPResult.send(.GET, baseURL + "/metrics").text
        return text.split(separator: "\n").contains { $0.hasPrefix(#"herald_slow_consumers_total{policy="catch_up"} "#) && !$0.hasSuffix(" 0") }
    }

    @Test func waitDeliveredCountsTheSocketsWrittenOnEveryNodeButNotASlowClientsSkippedCopy() async throws {
        try await withRedis { redis in
            try await withCluster(3, redis: redis, { $0.sendQueueBytes = 16 * 1024; $0.socketSendBuffer = 8192 }) { nodes in
                var readers: [TestWebSocket] = []
                for (index, count) in [2, 1, 1].enumerated() {
                    for _ in 0..<count { readers.append(try await Self.subscriber(nodes[index].port, "scores")) }
                }
                // Node 2 also has a client that stopped reading.
                let slow = try await Self.subscriber(nodes[1].port, "scores", receiveBufferBytes: 4096)
                try await slow.channel.setOption(ChannelOptions.autoRead, value: false).get()
                try await waitUntil("every node to count its subscribers") { await nodes[0].clusterSubscriberCount("scores") == 5 }

                // Before it lags, all five are written.
                let first = try await nodes[0].request(.POST, "/api/notify/scores?wait=delivered&timeout=5", body: #"{"title":"first"}"#).object()
                #expect(first["delivered"] == .integer(5) && first["nodes"] == .integer(3) && first["complete"] == .bool(true))
                #expect(first["missing_nodes"] == .array([]))

                let body = String(repeating: "x", count: 2048)
                var published = 0
                while try await !Self.lagged(nodes[1].baseURL) {
                    guard published < 2000 else { throw TimeoutError(what: "the slow client to lag") }
                    for _ in 0..<20 { _ = try await nodes[2].request(.POST, "/api/notify/scores", body: #"{"body":"\#(body)"}"#) }
                    published += 20
                }
                let response = try await nodes[2].request(.POST, "/api/notify/scores?wait=delivered", body: #"{"title":"counted"}"#)
                #expect(response.status == 200)
                let receipt = try response.object()
                #expect(receipt["delivered"] == .integer(4), "the lagging client's copy was not written: \(receipt)")
                #expect(receipt["nodes"] == .integer(3) && receipt["complete"] == .bool(true))
                for reader in readers { _ = try await reader.notification(titled: "counted", timeout: .seconds(20)) }
            }
        }
    }

    @Test func aKilledNodeIsNamedInMissingNodesWithinTheTimeout() async throws {
        try await withRedis { redis in
            try await withProcessCluster(3, redis: redis) { cluster in
                var clients: [TestWebSocket] = []
                for index in 0..<3 { clients.append(try await Self.subscriber(cluster.ports[index], "alerts")) }
                // Each node has written its count of the channel: those are the nodes waited for.
                try await waitUntil("every node's count of the channel in Redis") {
                    (try? await redis.command(["HLEN", "\(cluster.prefix):cnt:{alerts}"]))?.int == 3
                }
                let before = try await HTTPResult.send(
                    .POST, cluster.baseURL(0) + "/api/notify/alerts?wait=delivered&timeout=5", body: #"{"title":"before"}"#).object()
                #expect(before["delivered"] == .integer(3) && before["nodes"] == .integer(3) && before["complete"] == .bool(true))
                await cluster.kill(2)
                let started = ContinuousClock.now
                let response = try await HTTPResult.send(
                    .POST, cluster.baseURL(0) + "/api/notify/alerts?wait=delivered&timeout=1", body: #"{"title":"after the kill"}"#)
                let elapsed = ContinuousClock.now - started
                let receipt = try response.object()
                #expect(receipt["missing_nodes"] == .array([.string("node3")]), "\(receipt)")
                #expect(receipt["complete"] == .bool(false) && receipt["delivered"] == .integer(2) && receipt["nodes"] == .integer(2))
                #expect(elapsed < .seconds(3), "answered at the timeout, not later: \(elapsed)")
            }
        }
    }

    @Test func waitAckedCountsTheClientsThatAcknowledged() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let eager = try await Self.subscriber(nodes[0].port, "votes")
                let remote = try await Self.subscriber(nodes[1].port, "votes")
                let silent = try await Self.subscriber(nodes[1].port, "votes")
                try await waitUntil("both nodes to count the subscribers") { await nodes[0].clusterSubscriberCount("votes") == 3 }
                let acking = Task {
                    for client in [eager, remote] {
                        let notification = try await client.nextNotification(timeout: .seconds(10))
                        try await client.send(.ack(channel: "votes", offset: notification.position!.offset))
                    }
                }
                let receipt = try await nodes[0].request(.POST, "/api/notify/votes?wait=acked&timeout=1.5", body: #"{"title":"ack me"}"#).object()
                try await acking.value
                #expect(receipt["delivered"] == .integer(3) && receipt["acked"] == .integer(2), "\(receipt)")
                #expect(receipt["complete"] == .bool(true), "every node reported; one client did not ack")
                _ = try await silent.nextNotification()

                // When every written copy is acknowledged the answer comes before the timeout.
                let allAck = Task {
                    for client in [eager, remote, silent] {
                        let notification = try await client.nextNotification(timeout: .seconds(10))
                        try await client.send(.ack(channel: "votes", offset: notification.position!.offset))
                    }
                }
                let started = ContinuousClock.now
                let all = try await nodes[1].request(.POST, "/api/notify/votes?wait=acked&timeout=20", body: #"{"title":"all"}"#).object()
                try await allAck.value
                #expect(all["acked"] == .integer(3) && all["delivered"] == .integer(3))
                #expect(ContinuousClock.now - started < .seconds(10))
            }
        }
    }

    @Test func badWaitRequestsAreRefusedWithAStableCode() async throws {
        try await withNode({ $0.namedNamespaces = ["live": NamespacePolicy(history: HistoryPolicy(size: 0))] }) { node in
            for target in [
                "/api/notify/a?wait=eventually", "/api/notify/a?wait=delivered&timeout=0", "/api/notify/a?wait=delivered&timeout=31",
                "/api/notify/a?timeout=2", "/api/notify/live:1?wait=acked", "/api/broadcast?wait=delivered",
            ] {
                let body = target.hasPrefix("/api/broadcast") ? #"{"channels":["a"]}"# : "{}"
                let response = try await node.request(.POST, target, body: body)
                #expect(response.status == 400, "\(target)")
                #expect(try response.object()["code"] == .string("invalid_field"), "\(target)")
            }
            // Alone, with no subscriber: nothing to wait for.
            let alone = try await node.request(.POST, "/api/notify/a?wait=delivered", body: "{}").object()
            #expect(alone["delivered"] == .integer(0) && alone["nodes"] == .integer(0) && alone["complete"] == .bool(true))
        }
    }
}

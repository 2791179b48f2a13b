import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import HeraldTesting
import Testing

/// Nothing lost, nothing repeated: recovery across nodes, node failures, Redis failures and
/// rolling restarts — real redis-server, real nodes, nginx in front.
@Suite(.serialized) struct RecoveryClusterTests {
    /// Reconnecting clients of the load-balanced cluster, all subscribed to `channel`.
    func clients(_ count: Int, port: Int, channel: String) async throws -> [HeraldClient] {
        var configuration = HeraldClient.Configuration()
        configuration.backoffBase = .milliseconds(50)
        configuration.backoffCap = .milliseconds(400)
        var clients: [HeraldClient] = []
        for _ in 0..<count {
            let client = try HeraldClient(url: "ws://127.0.0.1:\(port)/ws", configuration: configuration)
            try await client.subscribe(channel)
            clients.append(client)
        }
        return clients
    }

    @Test func aKilledNodesClientsRecoverThroughTheBalancerWithEverythingOnceAndInOrder() async throws {
        try await withRedis { redis in
            try await withProcessCluster(3, redis: redis, arguments: ["--history-size", "2000"]) { cluster in
                try await withNginx(upstreamPorts: cluster.ports) { nginx in
                    let clients = try await clients(6, port: nginx.port, channel: "stream")
                    try await withRunning(clients) { events in
                        var nodes: Set<String> = []
                        for client in events {
                            let connected = try await client.next("connected") { if case .state(.connected) = $0 { true } else { false } }
                            if case .state(.connected(_, let node)) = connected { nodes.insert(node) }
                            try await client.subscribed("stream")
                        }
                        #expect(nodes.count == 3, "the clients are spread over every node: \(nodes)")
                        let publisher = NumberedPublisher(urls: ["http://127.0.0.1:\(nginx.port)"], channel: "stream")
                        let total = 300
                        try await publisher.publish(total) { number in
                            if number == 100 { await cluster.kill(1) }
                        }
                        for client in events {
                            let titles = try await client.titles(on: "stream", through: String(total - 1))
                            #expect(Self.problems(titles, total) == nil)
                        }
                    }
                }
            }
        }
    }

    @Test func aNodeWhosePubSubLinkIsKilledStillDeliversEverythingInOrder() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let subscriber = try await nodes[0].subscriber("healed")
                let publisher = NumberedPublisher(urls: [nodes[1].baseURL], channel: "healed", interval: .milliseconds(5))
                let total = 200
                try await publisher.publish(total) { number in
                    if number == 60 || number == 130 {
                        // Every subscribed connection drops; command connections (and so the
                        // publishes of node 2) go on.
                        _ = try await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
                    }
                }
                var titles: [String] = []
                while titles.count < total {
                    titles.append(try await subscriber.nextNotification(timeout: .seconds(10)).title ?? "")
                }
                #expect(Self.problems(titles, total) == nil)
            }
        }
    }

    @Test func aRedisRestartedWithoutPersistenceChangesTheEpochAndRecoveryFailsExplicitly() async throws {
        try await withRedis { redis in
            try await withCluster(1, redis: redis) { nodes in
                let node = nodes[0]
                let watcher = try await node.subscriber("volatile")
                _ = try await node.request(.POST, "/api/notify/volatile", body: #"{"title":"before"}"#)
                let before = try await watcher.nextNotification()
                let oldPosition = try #require(before.position)

                try await redis.kill()
                try await redis.launch()
                try await waitUntil("the node to reach the new Redis", timeout: .seconds(20)) {
                    try await node.request(.GET, "/ready").status == 200
                }
                try await waitUntil("the node to publish again") {
                    (try? await node.request(.POST, "/api/notify/volatile", body: #"{"title":"after"}"#).status) == 200
                }
                let newPosition = try #require(try await watcher.notification(titled: "after").position)
                #expect(newPosition.epoch != oldPosition.epoch)
                #expect(newPosition.offset == 1)

                let returning = try await node.connect()
                try await returning.send(.subscribe(channel: "volatile", since: oldPosition))
                let reply = try await returning.next { if case .subscribed = $0 { true } else { false } }
                guard case .subscribed(_, _, let position, let recovery) = reply else { return }
                #expect(recovery == .init(recovered: false, replayed: 0))
                #expect(position?.epoch == newPosition.epoch)
            }
        }
    }

    @Test func theSameIdempotencyKeyOnTwoNodesDeliversOnce() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let subscriber = try await nodes[0].subscriber("orders")
                let first = try await nodes[0].request(
                    .POST, "/api/notify/orders", body: #"{"title":"paid"}"#, headers: [("Idempotency-Key", "order-7-paid")]
                ).object()
                let retry = try await nodes[1].request(
                    .POST, "/api/notify/orders", body: #"{"title":"paid again"}"#, headers: [("Idempotency-Key", "order-7-paid")]
                ).object()
                #expect(retry["duplicate"] == .bool(true))
                #expect(retry["id"] == first["id"])
                #expect(retry["offset"] == first["offset"])
                #expect(retry["epoch"] == first["epoch"])
                _ = try await nodes[1].request(.POST, "/api/notify/orders", body: #"{"title":"marker"}"#)
                #expect(try await subscriber.nextNotification().title == "paid")
                #expect(try await subscriber.nextNotification().title == "marker")
                // The broadcast form carries the key through every channel.
                let broadcast = #"{"channels":["orders","audit"],"title":"shipped"}"#
                let once = try await nodes[1].request(.POST, "/api/broadcast", body: broadcast, headers: [("Idempotency-Key", "b-1")]).object()
                let twice = try await nodes[0].request(.POST, "/api/broadcast", body: broadcast, headers: [("Idempotency-Key", "b-1")]).object()
                #expect(twice["duplicate"] == .bool(true))
                #expect(twice["id"] == once["id"])
                #expect(try await subscriber.nextNotification().title == "shipped")
            }
        }
    }

    @Test func aRollingRestartOfEveryNodeLosesAndRepeatsNothing() async throws {
        try await withRedis { redis in
            try await withProcessCluster(3, redis: redis, arguments: ["--history-size", "2000", "--shutdown-grace", "2"]) { cluster in
                try await withNginx(upstreamPorts: cluster.ports) { nginx in
                    let clients = try await clients(6, port: nginx.port, channel: "rolling")
                    try await withRunning(clients) { events in
                        for client in events { try await client.subscribed("rolling") }
                        let publisher = NumberedPublisher(urls: ["http://127.0.0.1:\(nginx.port)"], channel: "rolling")
                        let total = 600
                        async let published: Int = publisher.publish(total)
                        for index in 0..<cluster.count {
                            try await cluster.restart(index)
                        }
                        _ = try await published
                        for client in events {
                            let titles = try await client.titles(on: "rolling", through: String(total - 1))
                            #expect(Self.problems(titles, total) == nil)
                        }
                    }
                }
            }
        }
    }

    /// `nil` when `titles` is exactly "0" … "total-1" in order; otherwise what is missing,
    /// repeated or out of order (short, for the failure message).
    static func problems(_ titles: [String], _ total: Int) -> String? {
        guard titles != (0..<total).map(String.init) else { return nil }
        let numbers = titles.compactMap(Int.init)
        let missing = Set(0..<total).subtracting(numbers).sorted()
        var seen = Set<Int>()
        let repeated = numbers.filter { !seen.insert($0).inserted }
        let disorder = zip(numbers, numbers.dropFirst()).filter { $0.0 > $0.1 }.prefix(5).map { "\($0.0)→\($0.1)" }
        return "received \(titles.count); missing \(missing.count) \(missing.prefix(10)); repeated \(repeated.count) \(repeated.prefix(10)); out of order \(disorder)"
    }
}

import Foundation
import HeraldCore
import HeraldProtocol
import HeraldTesting
import NIOCore
import Testing

/// Several real nodes clustered through a real redis-server.
@Suite(.serialized) struct ClusterTests {
    /// Waits until `node` sees `expected` subscribers of `channel` across the cluster.
    func waitForCount(_ node: RunningNode, _ channel: String, _ expected: Int) async throws {
        try await waitUntil("\(channel) to count \(expected) on \(node.hub.nodeID)") {
            (await node.clusterSubscriberCount(channel)) == expected
        }
    }

    @Test func publishOnAnyNodeReachesEverySubscriberOnceAndInOrder() async throws {
        try await withRedis { redis in
            try await withCluster(3, redis: redis) { nodes in
                var subscribers: [TestWebSocket] = []
                for node in nodes {
                    subscribers.append(try await node.subscriber("news"))
                    subscribers.append(try await node.subscriber("news"))
                }
                let nodesSeen = Set(nodes.map { $0.hub.nodeID })
                #expect(nodesSeen.count == 3)
                try await waitForCount(nodes[0], "news", 6)
                try await waitForCount(nodes[2], "news", 6)

                for (publisher, tag) in [(nodes[0], "n1"), (nodes[2], "n3")] {
                    for index in 0..<20 {
                        let response = try await publisher.request(.POST, "/api/notify/news", body: #"{"title":"\#(tag)-\#(index)"}"#)
                        #expect(response.status == 200)
                        #expect(try response.object()["delivered"] == .integer(6))
                    }
                    for subscriber in subscribers {
                        for index in 0..<20 {
                            #expect(try await subscriber.nextNotification().title == "\(tag)-\(index)")
                        }
                    }
                }
                // Exactly once: after the 40, each subscriber's next notification is a fresh marker.
                _ = try await nodes[1].request(.POST, "/api/notify/news", body: #"{"title":"end"}"#)
                for subscriber in subscribers {
                    #expect(try await subscriber.nextNotification().title == "end")
                }
            }
        }
    }

    @Test func aNodeOnlySubscribesToChannelsItsClientsWant() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let prefix = nodes[0].configuration.redisPrefix
                let key = "\(prefix):ch:{only-here}"
                let client = try await nodes[0].subscriber("only-here")
                try await waitUntil("one Redis subscription to \(key)") {
                    try await redis.command("PUBSUB", "NUMSUB", key).array?.last?.int == 1
                }
                // Node 2 has no subscriber, so it is not among the receivers; nor is any other channel.
                let channels = try await redis.command("PUBSUB", "CHANNELS", "\(prefix):ch:*").array?.compactMap(\.string)
                #expect(channels == [key])
                // A second local subscriber does not add a second Redis subscription.
                let second = try await nodes[0].subscriber("only-here")
                #expect(try await redis.command("PUBSUB", "NUMSUB", key).array?.last?.int == 1)

                // The publish on node 2 still reaches node 1's clients.
                _ = try await nodes[1].request(.POST, "/api/notify/only-here", body: #"{"title":"hi"}"#)
                #expect(try await client.nextNotification().title == "hi")

                // When the last local subscriber leaves, the node unsubscribes.
                await client.close()
                await second.close()
                try await waitUntil("no Redis subscription to \(key)") {
                    try await redis.command("PUBSUB", "NUMSUB", key).array?.last?.int == 0
                }
            }
        }
    }

    @Test func clientMessagesCrossNodes() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let alice = try await nodes[0].subscriber("chat")
                let bob = try await nodes[1].subscriber("chat")
                try await waitForCount(nodes[0], "chat", 2)
                try await alice.send(.message(channel: "chat", text: "hello from node1"))
                let received = try await bob.nextNotification()
                #expect(received.body == "hello from node1")
                #expect(received.from == alice.clientID)
                try await alice.send(.ping)
                guard case .pong = try await alice.nextMessage() else {
                    Issue.record("the sender received its own message")
                    return
                }
            }
        }
    }

    @Test func redisOutageKeepsClientsAndRecoversEverySubscription() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let first = try await nodes[0].subscriber("alerts", "other")
                let second = try await nodes[1].subscriber("alerts")
                try await waitForCount(nodes[0], "alerts", 2)

                try await redis.kill()
                for node in nodes {
                    try await waitUntil("\(node.hub.nodeID) to notice the outage") { !node.broker.status.isUp }
                    let refused = try await node.request(.POST, "/api/notify/alerts", body: #"{"title":"lost?"}"#)
                    #expect(refused.status == 503)
                    #expect(try refused.object()["code"] == .string("unavailable"))
                    #expect(try await node.request(.GET, "/ready").status == 503)
                    let health = try await node.request(.GET, "/health")
                    #expect(health.status == 200)
                    #expect(try health.object()["status"] == .string("degraded"))
                }
                // Clients stay connected and served throughout.
                for client in [first, second] {
                    try await client.send(.ping)
                    guard case .pong = try await client.nextMessage() else {
                        Issue.record("client not served during the outage")
                        return
                    }
                }

                try await redis.launch()
                for node in nodes {
                    try await waitUntil("\(node.hub.nodeID) to recover", timeout: .seconds(20)) {
                        try await node.request(.GET, "/ready").status == 200
                    }
                }
                try await waitForCount(nodes[1], "alerts", 2)
                _ = try await nodes[1].request(.POST, "/api/notify/alerts", body: #"{"title":"back"}"#)
                #expect(try await first.nextNotification().title == "back")
                #expect(try await second.nextNotification().title == "back")
                _ = try await nodes[1].request(.POST, "/api/notify/other", body: #"{"title":"other"}"#)
                #expect(try await first.nextNotification().title == "other")
            }
        }
    }

    @Test func clusterFiguresOnEveryNode() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                let a = try await nodes[0].subscriber("figures")
                let b = try await nodes[1].subscriber("figures", "solo")
                try await b.send(.setName("Bob"))
                _ = try await b.next { $0 == .nameSet(name: "Bob") }
                try await waitForCount(nodes[0], "figures", 2)
                // subscribed.subscriberCount is cluster-wide.
                let c = try await nodes[0].connect()
                try await c.send(.subscribe(channel: "figures"))
                #expect(try await c.nextMessage().essentials == .subscribed(channel: "figures", subscriberCount: 3))

                for node in nodes {
                    try await waitUntil("cluster figures on \(node.hub.nodeID)") {
                        let channels = try await node.request(.GET, "/api/channels").object()
                        return channels["total"] == .integer(2)
                            && channels["channels"] == .array([
                                .object(["name": .string("figures"), "subscribers": .integer(3)]),
                                .object(["name": .string("solo"), "subscribers": .integer(1)]),
                            ])
                    }
                    // Other nodes' figures are as fresh as their last heartbeat.
                    try await waitUntil("cluster stats on \(node.hub.nodeID)") {
                        try await node.request(.GET, "/api/stats").object()["connections"] == .integer(3)
                    }
                    let stats = try await node.request(.GET, "/api/stats").object()
                    guard case .array(let perNode) = stats["nodes"] else {
                        Issue.record("no per-node breakdown")
                        return
                    }
                    #expect(perNode.count == 2)
                    try await waitUntil("all clients listed on \(node.hub.nodeID)") {
                        let page = try await node.request(.GET, "/api/clients?limit=2").object()
                        return page["total"] == .integer(3)
                    }
                    var ids: [String: String] = [:]
                    var cursor: String?
                    repeat {
                        let query = "/api/clients?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                        let page = try await node.request(.GET, query).json(ClusterClientsPage.self)
                        for row in page.clients { ids[row.id] = row.node }
                        if let bob = page.clients.first(where: { $0.id == b.clientID }) {
                            #expect(bob.name == "Bob")
                            #expect(bob.subscriptions == ["figures", "solo"])
                        }
                        cursor = page.nextCursor
                    } while cursor != nil
                    #expect(ids[a.clientID!] == "node1")
                    #expect(ids[b.clientID!] == "node2")
                    #expect(ids[c.clientID!] == "node1")
                }
            }
        }
    }
}

struct ClusterClientsPage: Decodable {
    var clients: [ClientInfo]
    var total: Int
    var nextCursor: String?
}

import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

@Suite(.bothPublishPaths) struct RESTTests {
    func code(_ result: HTTPResult) throws -> JSONValue? {
        try result.object()["code"]
    }

    @Test func badInputIs400WithACode() async throws {
        try await withNode({ $0.maxBodyBytes = 1024 }) { node in
            let invalidJSON = try await node.request(.POST, "/api/notify/news", body: "{not json")
            #expect(invalidJSON.status == 400)
            #expect(try code(invalidJSON) == .string("invalid_json"))

            // Stricter than JSONDecoder: `data` is forwarded as sent, so it must be standard JSON.
            for body in [#"{"data":{"a":[1,],}}"#, #"{"title":"x",}"#, "{\"title\":\"x\"}\u{0}", "[1]", #"{"data":{"n":1e400}}"#] {
                let refused = try await node.request(.POST, "/api/notify/news", body: body)
                #expect(refused.status == 400, "\(body)")
                #expect(try code(refused) == .string("invalid_json"), "\(body)")
            }

            let wrongType = try await node.request(.POST, "/api/notify/news", body: #"{"title":["x"]}"#)
            #expect(wrongType.status == 400)
            #expect(try code(wrongType) == .string("invalid_field"))

            let dataNotObject = try await node.request(.POST, "/api/notify/news", body: #"{"data":[1]}"#)
            #expect(dataNotObject.status == 400)
            #expect(try code(dataNotObject) == .string("invalid_field"))

            let badChannel = try await node.request(.POST, "/api/notify/bad%20channel", body: "{}")
            #expect(badChannel.status == 400)
            #expect(try code(badChannel) == .string("invalid_channel"))

            let longChannel = try await node.request(.POST, "/api/notify/" + String(repeating: "c", count: 129), body: "{}")
            #expect(try code(longChannel) == .string("invalid_channel"))

            let oversized = try await node.request(.POST, "/api/notify/news", body: #"{"body":""# + String(repeating: "x", count: 2000) + #""}"#)
            #expect(oversized.status == 400)
            #expect(try code(oversized) == .string("payload_too_large"))

            let noChannels = try await node.request(.POST, "/api/broadcast", body: #"{"channels":[]}"#)
            #expect(try code(noChannels) == .string("invalid_field"))
            let missing = try await node.request(.POST, "/api/broadcast", body: #"{"title":"x"}"#)
            #expect(try code(missing) == .string("missing_field"))
            let badBroadcastChannel = try await node.request(.POST, "/api/broadcast", body: #"{"channels":["ok","no way"]}"#)
            #expect(try code(badBroadcastChannel) == .string("invalid_channel"))

            let badLimit = try await node.request(.GET, "/api/clients?limit=0")
            #expect(try code(badLimit) == .string("invalid_field"))
            let badCursor = try await node.request(.GET, "/api/clients?cursor=abc")
            #expect(try code(badCursor) == .string("invalid_field"))

            // The node is still fine.
            #expect(try await node.request(.POST, "/api/notify/news", body: "{}").status == 200)
        }
    }

    /// An empty document is not JSON: nothing is published, and subscribers see nothing.
    @Test func anEmptyBodyIsInvalidJSONAndPublishesNothing() async throws {
        try await withNode { node in
            let subscriber = try await node.subscriber("quiet")
            for (body, headers) in [("", [("Content-Type", "application/json")]), ("", [])] {
                let refused = try await node.request(.POST, "/api/notify/quiet", body: body, headers: headers)
                #expect(refused.status == 400)
                #expect(try code(refused) == .string("invalid_json"))
                let broadcast = try await node.request(.POST, "/api/broadcast", body: body, headers: headers)
                #expect(try code(broadcast) == .string("invalid_json"))
            }
            let empty = try await node.request(.POST, "/api/notify/quiet", headers: [("Content-Type", "application/json")])
            #expect(try code(empty) == .string("invalid_json"))
            // The next notification the subscriber sees is the one published after them.
            _ = try await node.request(.POST, "/api/notify/quiet", body: #"{"title":"marker"}"#)
            #expect(try await subscriber.nextNotification().title == "marker")
            let stats = try await node.request(.GET, "/api/stats").object()
            #expect(stats["messagesPublished"] == .integer(1))
        }
    }

    @Test func statsAndHealth() async throws {
        try await withNode({ $0.nodeID = "stats-node" }) { node in
            let client = try await node.subscriber("s")
            _ = try await node.request(.POST, "/api/notify/s", body: "{}")
            _ = try await client.nextNotification()
            let stats = try await node.request(.GET, "/api/stats").object()
            #expect(stats["node"] == .string("stats-node"))
            #expect(stats["connections"] == .integer(1))
            #expect(stats["channels"] == .integer(1))
            #expect(stats["messagesPublished"] == .integer(1))
            #expect(stats["messagesDelivered"] == .integer(1))
            #expect(stats["uptimeSeconds"] != nil)
            let health = try await node.request(.GET, "/health")
            #expect(health.status == 200)
            #expect(try health.object()["status"] == .string("ok"))
            #expect(try await node.request(.GET, "/api/nothing").status == 404)
        }
    }

    @Test func clientsArePaginated() async throws {
        try await withNode { node in
            var clients: [TestWebSocket] = []
            for index in 0..<5 {
                let client = try await node.connect()
                try await client.send(.setName("user\(index)"))
                _ = try await client.nextMessage()
                try await client.send(.subscribe(channel: "c\(index)"))
                _ = try await client.nextMessage()
                clients.append(client)
            }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let query = "/api/clients?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await node.request(.GET, query).json(ClientsPage.self)
                #expect(page.total == 5)
                #expect(page.clients.count <= 2)
                seen += page.clients.map(\.id)
                for row in page.clients {
                    #expect(row.name?.hasPrefix("user") == true)
                    #expect(row.subscriptions.count == 1)
                    #expect(row.node == node.hub.nodeID)
                }
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(Set(seen) == Set(clients.compactMap(\.clientID)))
            #expect(seen.count == 5)
        }
    }

    @Test func apiKeysGuardTheAPI() async throws {
        try await withNode({ $0.apiKeys = ["new-key", "old-key"] }) { node in
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}").status == 401)
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("Authorization", "Bearer wrong")]).status == 401)
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("Authorization", "Bearer new-key")]).status == 200)
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("Authorization", "Bearer old-key")]).status == 200)
            #expect(try await node.request(.GET, "/api/stats", headers: [("X-API-Key", "new-key")]).status == 200)
            let unauthorized = try await node.request(.GET, "/api/stats")
            #expect(try code(unauthorized) == .string("unauthorized"))
            // Health stays open for load balancers.
            #expect(try await node.request(.GET, "/health").status == 200)
        }
        // Rotation done: the old key is removed from HERALD_API_KEY and stops working.
        let rotated = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_API_KEY": "new-key"])
        try await withNode({ $0.apiKeys = rotated.apiKeys }) { (node: RunningNode) async throws in
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("Authorization", "Bearer old-key")]).status == 401)
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("X-API-Key", "old-key")]).status == 401)
            #expect(try await node.request(.POST, "/api/notify/k", body: "{}", headers: [("Authorization", "Bearer new-key")]).status == 200)
        }
    }

    @Test func corsPreflightAndHeaders() async throws {
        try await withNode({ $0.corsOrigins = ["https://app.example"] }) { node in
            let preflight = try await node.request(
                .OPTIONS, "/api/notify/x",
                headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
            #expect(preflight.status == 204)
            #expect(preflight.headers.first(name: "Access-Control-Allow-Origin") == "https://app.example")
            #expect(preflight.headers.first(name: "Access-Control-Allow-Methods")?.contains("POST") == true)
            let refused = try await node.request(
                .OPTIONS, "/api/notify/x", headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
            #expect(refused.status == 403)
            let simple = try await node.request(.GET, "/api/stats", headers: [("Origin", "https://app.example")])
            #expect(simple.headers.first(name: "Access-Control-Allow-Origin") == "https://app.example")
            let other = try await node.request(.GET, "/api/stats", headers: [("Origin", "https://evil.example")])
            #expect(other.headers.first(name: "Access-Control-Allow-Origin") == nil)
        }
    }
}

struct ClientsPage: Decodable {
    var clients: [ClientInfo]
    var total: Int
    var nextCursor: String?
}

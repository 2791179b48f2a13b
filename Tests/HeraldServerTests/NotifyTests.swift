import HeraldCore
import HeraldProtocol
import HeraldTesting
import Testing

/// The seed scenario and the publish path, over real sockets.
@Suite(.bothPublishPaths) struct NotifyTests {
    /// `data` is not decoded and re-encoded: subscribers get the publisher's own JSON text, so
    /// numbers beyond 2^53, escapes and key order survive exactly.
    @Test func dataReachesSubscribersAsThePublisherWroteIt() async throws {
        try await withNode { node in
            let alice = try await node.subscriber("news")
            let data = #"{"z":9007199254740993,"a":"caf\u00e9 \"q\"","n":[1.50,-0,1e2],"o":{}}"#
            let response = try await node.request(.POST, "/api/notify/news", body: #"{"title":"T \"x\"\n","data":"# + data + "}")
            #expect(response.status == 200)
            let frame = try await alice.nextFrame()
            let text = String(buffer: frame.unmaskedData)
            #expect(text.contains(#""data":"# + data + ","), "\(text)")
            let notification = try ServerMessage.decode(Array(text.utf8))
            guard case .notification(let received) = notification else {
                Issue.record("not a notification: \(text)")
                return
            }
            #expect(received.title == "T \"x\"\n")
            #expect(received.data == .object([
                "z": .integer(9_007_199_254_740_993), "a": .string("café \"q\""), "n": .array([.double(1.5), .integer(0), .integer(100)]),
                "o": .object([:]),
            ]))
        }
    }

    @Test func notifyReachesExactlyTheChannelsSubscribers() async throws {
        try await withNode { node in
            let alice = try await node.subscriber("news")
            let bob = try await node.subscriber("news")
            let carol = try await node.subscriber("sports")

            let response = try await node.request(
                .POST, "/api/notify/news", body: #"{"title":"Breaking","body":"Big news!","data":{"url":"/n/1","n":1}}"#)
            #expect(response.status == 200)
            let body = try response.object()
            #expect(body["success"] == .bool(true))
            #expect(body["channel"] == .string("news"))
            #expect(body["delivered"] == .integer(2))
            guard case .string(let id) = body["id"] else {
                Issue.record("no id in \(response.text)")
                return
            }

            for client in [alice, bob] {
                let notification = try await client.nextNotification()
                #expect(notification.channel == "news")
                #expect(notification.title == "Breaking")
                #expect(notification.body == "Big news!")
                #expect(notification.data == .object(["url": .string("/n/1"), "n": .integer(1)]))
                #expect(notification.id == id)
                #expect(notification.timestamp.hasSuffix("Z"))
                #expect(notification.from == nil)
            }

            // Carol's next notification is the sports one: she never got the news.
            let sports = try await node.request(.POST, "/api/notify/sports", body: #"{"title":"Goal"}"#)
            #expect(try sports.object()["delivered"] == .integer(1))
            #expect(try await carol.nextNotification().title == "Goal")
        }
    }

    @Test func notificationsArriveInPublishOrder() async throws {
        try await withNode { node in
            let client = try await node.subscriber("ordered")
            for index in 0..<50 {
                _ = try await node.request(.POST, "/api/notify/ordered", body: #"{"title":"\#(index)"}"#)
            }
            for index in 0..<50 {
                #expect(try await client.nextNotification().title == "\(index)")
            }
        }
    }

    @Test func broadcastPublishesOneNotificationToSeveralChannels() async throws {
        try await withNode { node in
            let a = try await node.subscriber("a")
            let b = try await node.subscriber("b")
            let response = try await node.request(.POST, "/api/broadcast", body: #"{"channels":["a","b","c","a"],"title":"All"}"#)
            #expect(response.status == 200)
            let body = try response.object()
            #expect(body["delivered"] == .integer(2))
            guard case .array(let rows) = body["channels"], rows.count == 3 else {
                Issue.record("no per-channel results: \(body)")
                return
            }
            var epochs: [String: String] = [:]
            for (row, (channel, delivered)) in zip(rows, [("a", 1), ("b", 1), ("c", 0)]) {
                guard case .object(let fields) = row, case .string(let epoch) = fields["epoch"] else {
                    Issue.record("row without an epoch: \(row)")
                    continue
                }
                #expect(fields["channel"] == .string(channel))
                #expect(fields["delivered"] == .integer(Int64(delivered)))
                // Each channel has its own history: the first publication of each is offset 1.
                #expect(fields["offset"] == .integer(1))
                epochs[channel] = epoch
            }
            let first = try await a.nextNotification()
            let second = try await b.nextNotification()
            #expect(first.id == second.id)
            #expect(first.channel == "a" && second.channel == "b")
            #expect(first.position == StreamPosition(offset: 1, epoch: epochs["a"] ?? ""))
            #expect(second.position == StreamPosition(offset: 1, epoch: epochs["b"] ?? ""))
        }
    }

    @Test func clientMessagesReachTheOtherSubscribersWithFrom() async throws {
        try await withNode { node in
            let alice = try await node.subscriber("chat")
            let bob = try await node.subscriber("chat")
            try await alice.send(.setName("Alice"))
            _ = try await alice.next { $0 == .nameSet(name: "Alice") }
            try await alice.send(.message(channel: "chat", text: "hello"))
            let received = try await bob.nextNotification()
            #expect(received.body == "hello")
            #expect(received.from == alice.clientID)
            #expect(received.fromName == "Alice")
            // Alice does not get her own message: her next message is the pong.
            try await alice.send(.ping)
            guard case .pong = try await alice.nextMessage() else {
                Issue.record("the sender received its own message")
                return
            }
        }
    }

    @Test func unsubscribeStopsDeliveryAndDisconnectCleansUp() async throws {
        try await withNode { node in
            let client = try await node.subscriber("x", "y")
            try await client.send(.listSubscriptions)
            #expect(try await client.nextMessage() == .subscriptions(channels: ["x", "y"]))
            try await client.send(.unsubscribe(channel: "x"))
            #expect(try await client.nextMessage() == .unsubscribed(channel: "x"))
            #expect(try await node.request(.POST, "/api/notify/x", body: "{}").object()["delivered"] == .integer(0))
            _ = try await node.request(.POST, "/api/notify/y", body: #"{"title":"y"}"#)
            #expect(try await client.nextNotification().channel == "y")

            let channels = try await node.request(.GET, "/api/channels").object()
            #expect(channels["channels"] == .array([.object(["name": .string("y"), "subscribers": .integer(1)])]))
            await client.close()
            try await waitUntil("channel y to empty") { node.hub.subscriberCount("y") == 0 }
            #expect(try await node.request(.GET, "/api/channels").object()["total"] == .integer(0))
        }
    }

    @Test func subscribeIsIdempotentAndCountsAreReported() async throws {
        try await withNode { node in
            let first = try await node.subscriber("room")
            let second = try await node.connect()
            try await second.send(.subscribe(channel: "room"))
            #expect(try await second.nextMessage().essentials == .subscribed(channel: "room", subscriberCount: 2))
            try await second.send(.subscribe(channel: "room"))
            #expect(try await second.nextMessage().essentials == .subscribed(channel: "room", subscriberCount: 2))
            #expect(node.hub.subscriberCount("room") == 2)
            _ = first
        }
    }
}

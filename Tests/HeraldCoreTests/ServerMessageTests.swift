import HeraldCore
import HeraldProtocol
import Testing

@Suite struct ServerMessageTests {
    func wire(_ message: ServerMessage) throws -> [String: Any] {
        try JSONEncoderForTests.object(message.jsonBytes())
    }

    @Test func welcomeCarriesClientIdAndNode() throws {
        let json = try wire(.welcome(clientId: "c1", node: "n1", message: "hello"))
        #expect(json["type"] as? String == "welcome")
        #expect(json["clientId"] as? String == "c1")
        #expect(json["node"] as? String == "n1")
        #expect(json["message"] as? String == "hello")
    }

    @Test func fieldNamesMatchTheProtocol() throws {
        #expect(try wire(.subscribed(channel: "news", subscriberCount: 2))["subscriberCount"] as? Int == 2)
        #expect(try wire(.unsubscribed(channel: "news"))["type"] as? String == "unsubscribed")
        #expect(try wire(.nameSet(name: "A"))["type"] as? String == "name_set")
        #expect(try wire(.subscriptions(channels: ["a", "b"]))["channels"] as? [String] == ["a", "b"])
        #expect(try wire(.pong(timestamp: 17))["timestamp"] as? Int == 17)
        #expect(try wire(.ping(timestamp: 18))["type"] as? String == "ping")
        let error = try wire(.error(ProtocolError(.invalidChannel, "bad")))
        #expect(error["error"] as? String == "bad")
        #expect(error["code"] as? String == "invalid_channel")
        #expect(try wire(.serverShutdown(message: "bye"))["type"] as? String == "server_shutdown")
    }

    @Test func notificationHasEveryField() throws {
        let notification = HeraldNotification(
            channel: "news", title: "T", body: "B", data: .object(["k": .integer(9_007_199_254_740_993)]),
            timestamp: "2026-11-22T00:00:00.000Z", id: "id1")
        let json = try wire(.notification(notification))
        #expect(json["type"] as? String == "notification")
        #expect(json["channel"] as? String == "news")
        #expect(json["title"] as? String == "T")
        #expect(json["body"] as? String == "B")
        #expect(json["timestamp"] as? String == "2026-11-22T00:00:00.000Z")
        #expect(json["id"] as? String == "id1")
        #expect(json["from"] == nil)
        // Integers above 2^53 survive unchanged.
        #expect(try ServerMessage.decode(ServerMessage.notification(notification).jsonBytes()) == .notification(notification))
    }

    @Test func everyMessageRoundTrips() throws {
        let messages: [ServerMessage] = [
            .welcome(clientId: "c", node: "n", message: "m"), .subscribed(channel: "a", subscriberCount: 1),
            .unsubscribed(channel: "a"), .nameSet(name: "x"), .subscriptions(channels: []), .pong(timestamp: 1),
            .ping(timestamp: 2), .error(ProtocolError(.rateLimited, "slow")), .serverShutdown(message: "bye"),
            .notification(HeraldNotification(channel: "c", body: "hi", timestamp: "t", id: "i", from: "c2", fromName: "Bob")),
        ]
        for message in messages {
            #expect(try ServerMessage.decode(message.jsonBytes()) == message)
        }
    }

    @Test func timestampIsISO8601WithMilliseconds() {
        let stamp = HeraldNotification.timestampNow()
        #expect(stamp.count == 24, "\(stamp)")
        #expect(stamp.hasSuffix("Z"))
        #expect(stamp.contains("T"))
    }
}

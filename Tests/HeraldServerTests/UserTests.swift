import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// What an application addresses to a user (`/api/users/{user}/…`), against one node with
/// real sockets: every connection of the user, WebSocket and SSE, and nobody else.
@Suite(.bothPublishPaths) struct UserTests {
    static func ws(_ node: RunningNode, _ user: String) async throws -> TestWebSocket {
        try await node.connect(path: "/ws?token=\(try await AuthTests.token(user))")
    }

    /// Bob's next notification is `marker` on his channel: nothing addressed to Ada came first.
    static func expectOnlyMarker(_ bob: TestWebSocket, _ node: RunningNode) async throws {
        let published = try await node.request(.POST, "/api/notify/bobs", body: #"{"title":"marker"}"#)
        #expect(published.status == 200)
        #expect(try await bob.nextNotification().title == "marker")
    }

    @Test func aUserNotificationReachesEveryConnectionOfTheUserOnEveryTransportAndNoOneElse() async throws {
        try await withNode(AuthTests.secured()) { node in
            let phone = try await Self.ws(node, "ada")
            // A connection that authenticates with a message belongs to its user too.
            let laptop = try await node.connect()
            try await laptop.send(.auth(token: try await AuthTests.token("ada")))
            _ = try await laptop.next { if case .authenticated = $0 { true } else { false } }
            let bob = try await Self.ws(node, "bob")
            _ = try await AuthTests.subscribeReply(bob, "bobs")
            let sseURL = node.baseURL + "/sse?channel=news&token=\(try await AuthTests.token("ada"))"
            try await withEventStream(sseURL) { stream, _ in
                _ = try await stream.nextEvent()  // welcome
                _ = try await stream.nextEvent()  // subscribed
                let response = try await node.request(
                    .POST, "/api/users/ada/notify", body: #"{"title":"Hi Ada","body":"3 new","data":{"unread":3}}"#)
                #expect(response.status == 200, "\(response.text)")
                let object = try response.object()
                #expect(object["success"] == .bool(true))
                #expect(object["user"] == .string("ada"))
                #expect(object["delivered"] == .integer(3))
                guard case .string(let id) = object["id"] else {
                    Issue.record("no id in \(response.text)")
                    return
                }
                for socket in [phone, laptop] {
                    let frame = try await socket.nextFrame()
                    let json = String(buffer: frame.unmaskedData)
                    #expect(json.contains(#""user":"ada""#) && !json.contains(#""channel""#), "\(json)")
                    guard case .notification(let notification) = try ServerMessage.decode(Array(json.utf8)) else {
                        Issue.record("not a notification: \(json)")
                        continue
                    }
                    #expect(notification.user == "ada")
                    #expect(notification.title == "Hi Ada")
                    #expect(notification.id == id)
                    #expect(notification.position == nil)
                }
                let (overSSE, _) = try await stream.nextNotification()
                #expect(overSSE.user == "ada" && overSSE.id == id)
                try await Self.expectOnlyMarker(bob, node)
            }
            // Nobody connected as that user: nothing delivered, nothing stored.
            let nobody = try await node.request(.POST, "/api/users/carol/notify", body: "{}").object()
            #expect(nobody["delivered"] == .integer(0))
        }
    }

    @Test func disconnectClosesEveryConnectionOfTheUserWith4003AndLeavesTheOthers() async throws {
        try await withNode(AuthTests.secured()) { node in
            let phone = try await Self.ws(node, "ada")
            let tablet = try await Self.ws(node, "ada")
            let bob = try await Self.ws(node, "bob")
            _ = try await AuthTests.subscribeReply(bob, "bobs")
            try await withEventStream(node.baseURL + "/sse?channel=news&token=\(try await AuthTests.token("ada"))") { stream, _ in
                _ = try await stream.nextEvent()
                _ = try await stream.nextEvent()
                let response = try await node.request(.POST, "/api/users/ada/disconnect")
                #expect(response.status == 200, "\(response.text)")
                #expect(try response.object()["disconnected"] == .integer(3))
                for socket in [phone, tablet] {
                    let close = try await socket.nextClose()
                    #expect(close.code == CloseCode.disconnectedByServer.rawValue)
                    #expect(close.reason == "disconnected by the server")
                }
                // SSE cannot carry a close code: a last event says so, then the stream ends.
                let last = try await stream.nextEvent()
                #expect(last.name == "disconnect")
                #expect(try last.message() == .disconnect(code: 4003, reason: "disconnected by the server"))
                try await stream.waitForEnd()
            }
            try await Self.expectOnlyMarker(bob, node)
            try await waitUntil("Ada's connections to be gone") { node.connectionCount == 1 }
        }
    }

    @Test func unsubscribeMakesTheUsersConnectionsLeaveTheChannel() async throws {
        try await withNode(AuthTests.secured()) { node in
            let phone = try await Self.ws(node, "ada")
            let tablet = try await Self.ws(node, "ada")
            let bob = try await Self.ws(node, "bob")
            for socket in [phone, tablet, bob] { _ = try await AuthTests.subscribeReply(socket, "news") }
            _ = try await AuthTests.subscribeReply(tablet, "sports")
            let response = try await node.request(.POST, "/api/users/ada/unsubscribe", body: #"{"channel":"news"}"#)
            #expect(response.status == 200, "\(response.text)")
            let object = try response.object()
            #expect(object["channel"] == .string("news"))
            #expect(object["connections"] == .integer(2))
            for socket in [phone, tablet] {
                #expect(try await socket.next { if case .unsubscribed = $0 { true } else { false } } == .unsubscribed(channel: "news"))
                try await socket.send(.listSubscriptions)
                let list = try await socket.next { if case .subscriptions = $0 { true } else { false } }
                #expect(list == .subscriptions(channels: socket === tablet ? ["sports"] : []))
            }
            #expect(node.hub.subscriberCount("news") == 1)
            _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"for bob"}"#)
            #expect(try await bob.nextNotification().title == "for bob")
            // A channel the user is not in: nothing happens, nobody gets an error.
            let other = try await node.request(.POST, "/api/users/ada/unsubscribe", body: #"{"channel":"weather"}"#)
            #expect(other.status == 200)
            try await phone.send(.ping)
            guard case .pong = try await phone.nextMessage() else {
                Issue.record("the phone got something else than its pong")
                return
            }
        }
    }

    @Test func badRequestsAreRefusedWithAJSONErrorAndChangeNothing() async throws {
        try await withNode(AuthTests.secured()) { node in
            let phone = try await Self.ws(node, "ada")
            _ = try await AuthTests.subscribeReply(phone, "news")
            let long = String(repeating: "u", count: UserChannel.maxUserLength + 1)
            let cases: [(String, String?, Int, String)] = [
                ("/api/users/\(long)/notify", "{}", 400, "invalid_field"),
                ("/api/users/ada/notify", "not json", 400, "invalid_json"),
                ("/api/users/ada/notify", #"{"title":5}"#, 400, "invalid_field"),
                ("/api/users/ada/unsubscribe", nil, 400, "invalid_json"),
                ("/api/users/ada/unsubscribe", #"{"room":"news"}"#, 400, "missing_field"),
                ("/api/users/ada/unsubscribe", #"{"channel":"bad name"}"#, 400, "invalid_channel"),
                ("/api/users/ada/unsubscribe", #"{"channel":7}"#, 400, "invalid_field"),
            ]
            for (path, body, status, code) in cases {
                let response = try await node.request(.POST, path, body: body)
                #expect(response.status == status, "\(path) \(body ?? "")")
                #expect(response.text.contains(#""code":"\#(code)""#), "\(path): \(response.text)")
            }
            // Still subscribed, still connected.
            #expect(node.hub.subscriberCount("news") == 1)
            _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"still here"}"#)
            #expect(try await phone.nextNotification().title == "still here")
        }
    }
}

import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// Presence and join/leave on one node, real sockets: `/api/presence`, the socket's
/// `presence`, and the events of `HERALD_JOIN_LEAVE_CHANNELS`.
@Suite struct PresenceTests {
    struct Page: Decodable {
        var channel: String
        var members: [PresenceMember]
        var total: Int
        var nextCursor: String?
    }

    static func named(_ node: RunningNode, _ name: String, in channel: String, token: String? = nil) async throws -> TestWebSocket {
        let socket = try await node.connect(path: token.map { "/ws?token=\($0)" } ?? "/ws")
        try await socket.send(.setName(name))
        _ = try await socket.next { if case .nameSet = $0 { true } else { false } }
        _ = try await AuthTests.subscribeReply(socket, channel)
        return socket
    }

    @Test func restListsTheMembersOfAChannelInPagesWithWhoTheyAre() async throws {
        try await withNode(AuthTests.secured(anonymous: true)) { node in
            let ada = try await Self.named(node, "Ada", in: "room", token: try await AuthTests.token("ada"))
            let bob = try await Self.named(node, "Bob", in: "room")
            let cid = try await Self.named(node, "Cid", in: "room")
            _ = try await Self.named(node, "Elsewhere", in: "lobby")
            let all = try await node.request(.GET, "/api/presence/room").json(Page.self)
            #expect(all.channel == "room")
            #expect(all.total == 3)
            #expect(all.members.map(\.clientId) == [ada, bob, cid].compactMap(\.clientID).sorted())
            let adaRow = try #require(all.members.first { $0.clientId == ada.clientID })
            #expect(adaRow.user == "ada" && adaRow.name == "Ada" && adaRow.node == node.configuration.nodeID)
            #expect(!adaRow.connectedAt.isEmpty)
            #expect(all.members.first { $0.clientId == bob.clientID }?.user == nil)

            let first = try await node.request(.GET, "/api/presence/room?limit=2").json(Page.self)
            #expect(first.members.count == 2 && first.total == 3)
            let cursor = try #require(first.nextCursor)
            let second = try await node.request(.GET, "/api/presence/room?limit=2&cursor=\(cursor)").json(Page.self)
            #expect(second.members.count == 1 && second.nextCursor == nil)
            #expect(Set((first.members + second.members).map(\.clientId)) == Set(all.members.map(\.clientId)))

            // A new name shows; leaving and disconnecting take members out.
            try await bob.send(.setName("Robert"))
            _ = try await bob.next { if case .nameSet = $0 { true } else { false } }
            try await cid.send(.unsubscribe(channel: "room"))
            _ = try await cid.next { if case .unsubscribed = $0 { true } else { false } }
            await ada.close()
            try await waitUntil("Ada and Cid to leave") {
                try await node.request(.GET, "/api/presence/room").json(Page.self).total == 1
            }
            let left = try await node.request(.GET, "/api/presence/room").json(Page.self)
            #expect(left.members.map(\.name) == ["Robert"])

            for (path, code) in [("/api/presence/bad%20name", "invalid_channel"), ("/api/presence/room?limit=0", "invalid_field")] {
                let response = try await node.request(.GET, path)
                #expect(response.status == 400 && response.text.contains(#""code":"\#(code)""#), "\(path): \(response.text)")
            }
        }
    }

    @Test func aSubscriberAsksOnTheSocketAndOthersAreRefused() async throws {
        try await withNode { node in
            let ada = try await Self.named(node, "Ada", in: "room")
            let bob = try await Self.named(node, "Bob", in: "room")
            try await ada.send(.presence(channel: "room"))
            guard case .presence("room", let members, let total) = try await ada.next(where: { if case .presence = $0 { true } else { false } }) else {
                Issue.record("no presence reply")
                return
            }
            #expect(total == 2)
            #expect(Set(members.compactMap(\.name)) == ["Ada", "Bob"])
            // Not a subscriber of the channel: an error, and the connection goes on.
            try await bob.send(.presence(channel: "lobby"))
            #expect(try await bob.nextError().code == .notSubscribed)
            try await bob.send(.presence(channel: "no way"))
            #expect(try await bob.nextError().code == .invalidChannel)
            try await bob.send(ClientMessage.presence(channel: "room"))
            guard case .presence(_, _, 2) = try await bob.next(where: { if case .presence = $0 { true } else { false } }) else {
                Issue.record("bob's presence reply")
                return
            }
        }
    }

    @Test func presenceCanBeTurnedOff() async throws {
        try await withNode({ $0.presence = false }) { node in
            let ada = try await Self.named(node, "Ada", in: "room")
            let response = try await node.request(.GET, "/api/presence/room")
            #expect(response.status == 404 && response.text.contains(#""code":"not_found""#))
            try await ada.send(.presence(channel: "room"))
            #expect(try await ada.nextError().code == .unavailable)
        }
    }

    @Test func joinAndLeaveReachTheSubscribersOfTheChannelsThatWantThem() async throws {
        try await withNode({ $0.joinLeaveChannels = ChannelPattern("rooms:*, lobby") }) { node in
            let watcher = try await Self.named(node, "Watcher", in: "rooms:1")
            // The watcher hears of its own arrival too.
            guard case .join("rooms:1", let me) = try await watcher.next(where: { if case .join = $0 { true } else { false } }) else {
                Issue.record("no join for the watcher itself")
                return
            }
            #expect(me.clientId == watcher.clientID && me.name == "Watcher")
            let guest = try await Self.named(node, "Guest", in: "rooms:1")
            guard case .join(_, let joined) = try await watcher.next(where: { if case .join = $0 { true } else { false } }) else { return }
            #expect(joined.clientId == guest.clientID && joined.name == "Guest")
            try await guest.send(.unsubscribe(channel: "rooms:1"))
            guard case .leave("rooms:1", let left) = try await watcher.next(where: { if case .leave = $0 { true } else { false } }) else {
                Issue.record("no leave")
                return
            }
            #expect(left.clientId == guest.clientID)
            // A channel outside the list: no events (the next thing the watcher of `plain`
            // gets is the notification published after the second subscriber came).
            let plainWatcher = try await Self.named(node, "P", in: "plain")
            _ = try await Self.named(node, "Q", in: "plain")
            _ = try await node.request(.POST, "/api/notify/plain", body: #"{"title":"after"}"#)
            guard case .notification(let notification) = try await plainWatcher.nextMessage() else {
                Issue.record("plain channel got something before the notification")
                return
            }
            #expect(notification.title == "after")
            // A disconnect is a leave too.
            let other = try await Self.named(node, "Other", in: "rooms:1")
            _ = try await watcher.next(where: { if case .join(_, let m) = $0 { m.clientId == other.clientID } else { false } })
            await other.close()
            guard case .leave(_, let gone) = try await watcher.next(where: { if case .leave = $0 { true } else { false } }) else { return }
            #expect(gone.clientId == other.clientID)
        }
    }
}

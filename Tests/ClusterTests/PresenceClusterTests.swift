import Foundation
import HeraldCore
import HeraldProtocol
import HeraldTesting
import Testing

/// Presence and join/leave across real nodes and a real redis-server, with a node killed.
@Suite(.serialized) struct PresenceClusterTests {
    struct Page: Decodable {
        var members: [PresenceMember]
        var total: Int
    }

    static func presence(_ url: String, _ channel: String) async throws -> Page {
        try await HTTPResult.send(.GET, url + "/api/presence/\(channel)").json(Page.self)
    }

    static func join(_ port: Int, _ channel: String, name: String) async throws -> TestWebSocket {
        let socket = try await TestWebSocket.connect(port: port)
        try await socket.send(.setName(name))
        try await socket.send(.subscribe(channel: channel))
        _ = try await socket.next { if case .subscribed = $0 { true } else { false } }
        return socket
    }

    @Test func everyNodeAnswersForThreeNodesAndAKilledNodesMembersLeaveWithinThreeHeartbeats() async throws {
        try await withRedis { redis in
            try await withProcessCluster(3, redis: redis) { cluster in
                var sockets: [TestWebSocket] = []
                for index in 0..<3 {
                    sockets.append(try await Self.join(cluster.ports[index], "room", name: "user\(index + 1)"))
                }
                for index in 0..<3 {
                    try await waitUntil("node\(index + 1) to see all three members") {
                        try await Self.presence(cluster.baseURL(index), "room").total == 3
                    }
                }
                let page = try await Self.presence(cluster.baseURL(0), "room")
                #expect(Set(page.members.map(\.node)) == ["node1", "node2", "node3"])
                #expect(Set(page.members.compactMap(\.name)) == ["user1", "user2", "user3"])
                #expect(page.members.map(\.clientId) == page.members.map(\.clientId).sorted())
                // On the socket too, from any node.
                try await sockets[1].send(.presence(channel: "room"))
                guard case .presence(_, let members, 3) = try await sockets[1].next(where: { if case .presence = $0 { true } else { false } })
                else {
                    Issue.record("no presence reply with 3 members")
                    return
                }
                #expect(members.count == 3)

                let killedAt = ContinuousClock.now
                await cluster.kill(2)
                // Entries expire 3 × 0.3 s after the last refresh; a read drops them.
                try await waitUntil("the killed node's member to leave", timeout: .seconds(5)) {
                    try await Self.presence(cluster.baseURL(0), "room").total == 2
                }
                let elapsed = ContinuousClock.now - killedAt
                #expect(elapsed < .milliseconds(1500), "left after \(elapsed)")
                #expect(try await Self.presence(cluster.baseURL(1), "room").members.map(\.node).sorted() == ["node1", "node2"])
            }
        }
    }

    @Test func joinAndLeaveCrossNodesAndANodesShutdownIsOneSummaryNotAStorm() async throws {
        try await withRedis { redis in
            try await withProcessCluster(2, redis: redis, arguments: ["--join-leave-channels", "rooms:*"]) { cluster in
                let watcher = try await Self.join(cluster.ports[0], "rooms:a", name: "watcher")
                _ = try await watcher.next { if case .join = $0 { true } else { false } }  // its own
                let guest = try await Self.join(cluster.ports[1], "rooms:a", name: "guest")
                guard case .join("rooms:a", let member) = try await watcher.next(where: { if case .join = $0 { true } else { false } })
                else { return }
                #expect(member.node == "node2" && member.name == "guest" && member.clientId == guest.clientID)

                // Many clients on node2, then node2 stops: its clients leave at once.
                let crowd = 80
                for index in 0..<crowd { _ = try await Self.join(cluster.ports[1], "rooms:a", name: "c\(index)") }
                var joins = 0
                var summarized = 0
                while joins + summarized < crowd {
                    switch try await watcher.next(timeout: .seconds(10), where: { _ in true }) {
                    case .join: joins += 1
                    case .presenceChanged(_, let joined, _): summarized += joined
                    default: break
                    }
                }
                #expect(joins + summarized == crowd)
                _ = try await cluster.stop(1)
                var leaves = 0
                var messages = 0
                var left = 0
                while leaves + left < crowd + 1 {
                    switch try await watcher.next(timeout: .seconds(15), where: { _ in true }) {
                    case .leave:
                        leaves += 1
                        messages += 1
                    case .presenceChanged(_, _, let count):
                        left += count
                        messages += 1
                    default: break
                    }
                }
                #expect(leaves + left == crowd + 1)
                // Batched: 81 departures arrive as a handful of messages, not 81.
                #expect(messages < 40, "\(messages) messages for \(crowd + 1) leaves")
                #expect(left > 0)
            }
        }
    }
}

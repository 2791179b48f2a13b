import Foundation
import HeraldCore
import HeraldProtocol
import HeraldRedis
import HeraldServer
import HeraldTesting
import Logging
import NIOPosix
import Testing

/// Per-user read positions (`ack`, `durable` namespaces): what one device acknowledged, any
/// other connection of the user resumes after — on any node.
@Suite(.serialized) struct DurablePositionTests {
    static let secret = Array("durable-positions-secret-long-enough-for-hs256".utf8)

    static func token(_ user: String) async throws -> String {
        try await TokenMinter.mint(
            ConnectionClaims(subject: user, expires: Date().addingTimeInterval(300), channels: nil), with: .hs256(secret: secret))
    }

    static func configure(_ config: inout HeraldConfiguration) {
        config.auth = AuthConfiguration(secret: secret, allowAnonymous: true)
        config.namedNamespaces = ["inbox": NamespacePolicy(history: HistoryPolicy(size: 100), durable: true)]
    }

    static func subscribed(_ client: TestWebSocket, _ channel: String, since: StreamPosition? = nil) async throws -> ServerMessage {
        try await client.send(.subscribe(channel: channel, since: since))
        return try await client.next(timeout: .seconds(10)) { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
    }

    /// The contract of ``ReadPositions``, for the in-memory store and Redis alike.
    static func checkContract(_ store: any ReadPositions, limit: Int) async throws {
        let first = StreamPosition(offset: 7, epoch: "e1")
        try await store.acknowledge(user: "ada", channel: "inbox:1", position: first)
        // Out of order (another device): never lowered.
        try await store.acknowledge(user: "ada", channel: "inbox:1", position: StreamPosition(offset: 5, epoch: "e1"))
        #expect(try await store.position(user: "ada", channel: "inbox:1") == first)
        try await store.acknowledge(user: "ada", channel: "inbox:1", position: StreamPosition(offset: 9, epoch: "e1"))
        #expect(try await store.position(user: "ada", channel: "inbox:1")?.offset == 9)
        // A new epoch replaces it, even with a lower offset.
        try await store.acknowledge(user: "ada", channel: "inbox:1", position: StreamPosition(offset: 2, epoch: "e2"))
        #expect(try await store.position(user: "ada", channel: "inbox:1") == StreamPosition(offset: 2, epoch: "e2"))
        #expect(try await store.position(user: "bob", channel: "inbox:1") == nil)
        for index in 2...limit { try await store.acknowledge(user: "ada", channel: "inbox:\(index)", position: first) }
        await #expect(throws: ReadPositionsError.tooManyChannels(limit)) {
            try await store.acknowledge(user: "ada", channel: "inbox:more", position: first)
        }
        // A channel it has already can still move.
        try await store.acknowledge(user: "ada", channel: "inbox:2", position: StreamPosition(offset: 8, epoch: "e1"))
        let all = try await store.positions(user: "ada")
        #expect(all.count == limit && all["inbox:2"]?.offset == 8)
    }

    @Test func theInMemoryAndRedisStoresKeepTheSameContract() async throws {
        try await Self.checkContract(InMemoryReadPositions(maxChannelsPerUser: 5), limit: 5)
        try await withRedis { redis in
            let topology = RedisTopology(
                url: redis.url, prefix: "pos", group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "positions-test"))
            let store = RedisReadPositions(topology: topology, maxChannelsPerUser: 5)
            try await using(Task { try await store.run() }, stop: { $0.cancel() }) { _ in
                try await waitUntil("the positions link to connect") { (try? await store.positions(user: "nobody")) != nil }
                try await Self.checkContract(store, limit: 5)
            }
        }
    }

    /// The issue's scenario: Ada acks offset 7 on her phone (node 1), then opens a connection
    /// on node 2 without `since`: she gets 8…10, and `unread` says 3.
    @Test func anAckOnOneDeviceIsWhereAnotherDeviceResumesOnAnotherNode() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis, Self.configure) { nodes in
                let phone = try await nodes[0].connect(path: "/ws?token=\(try await Self.token("ada"))")
                _ = try await Self.subscribed(phone, "inbox:ada")
                for number in 1...10 {
                    let response = try await nodes[0].request(.POST, "/api/notify/inbox:ada", body: #"{"title":"\#(number)"}"#)
                    #expect(response.status == 200)
                }
                var epoch = ""
                for number in 1...10 {
                    let notification = try await phone.nextNotification()
                    #expect(notification.title == String(number))
                    epoch = notification.position?.epoch ?? ""
                }
                try await phone.send(.ack(channel: "inbox:ada", offset: 7))
                // Another device's older ack arrives late: the position does not go back.
                try await phone.send(.ack(channel: "inbox:ada", offset: 4, epoch: epoch))
                try await waitUntil("node 2 to read Ada's position") {
                    let response = try? await nodes[1].request(.GET, "/api/users/ada/positions")
                    return (try? response?.object())?["positions"] == .object(["inbox:ada": .object(["offset": .integer(7), "epoch": .string(epoch)])])
                }

                let laptop = try await nodes[1].connect(path: "/ws?token=\(try await Self.token("ada"))")
                let answer = try await Self.subscribed(laptop, "inbox:ada")
                guard case .subscribed(_, _, let position?, let recovery?) = answer else {
                    Issue.record("a resumed subscribe, got \(answer)")
                    return
                }
                #expect(position.offset == 10)
                #expect(recovery == .init(recovered: true, replayed: 3, unread: 3))
                for number in 8...10 { #expect(try await laptop.nextNotification().title == String(number)) }

                // An explicit `since` wins over the stored position; another user has none.
                let tablet = try await nodes[1].connect(path: "/ws?token=\(try await Self.token("ada"))")
                guard case .subscribed(_, _, _, let explicit?) = try await Self.subscribed(
                    tablet, "inbox:ada", since: StreamPosition(offset: 9, epoch: epoch))
                else { Issue.record("no recovery for since"); return }
                #expect(explicit == .init(recovered: true, replayed: 1))
                let bob = try await nodes[1].connect(path: "/ws?token=\(try await Self.token("bob"))")
                guard case .subscribed(_, _, _, nil) = try await Self.subscribed(bob, "inbox:ada") else {
                    Issue.record("bob has no position to resume")
                    return
                }
            }
        }
    }

    @Test func acksAreCheckedAndOnlyDurableChannelsOfAUserAreKept() async throws {
        try await withNode(Self.configure) { node in
            let ada = try await node.connect(path: "/ws?token=\(try await Self.token("ada"))")
            _ = try await Self.subscribed(ada, "news")
            _ = try await Self.subscribed(ada, "inbox:ada")
            _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"n"}"#)
            _ = try await node.request(.POST, "/api/notify/inbox:ada", body: #"{"title":"i"}"#)
            try await ada.send(.ack(channel: "news", offset: 1))
            try await ada.send(.ack(channel: "inbox:ada", offset: 1))
            try await ada.send(text: #"{"type":"ack","channel":"elsewhere","offset":1}"#)
            #expect(try await ada.nextError().code == .notSubscribed)
            try await ada.send(text: #"{"type":"ack","channel":"news","offset":-1}"#)
            #expect(try await ada.nextError().code == .invalidField)
            try await ada.send(text: #"{"type":"ack","channel":"news"}"#)
            #expect(try await ada.nextError().code == .missingField)
            // An anonymous client's acks are nobody's.
            let anonymous = try await node.connect()
            _ = try await Self.subscribed(anonymous, "inbox:x")
            try await anonymous.send(.ack(channel: "inbox:x", offset: 0))
            try await waitUntil("Ada's inbox position") {
                let object = try? await node.request(.GET, "/api/users/ada/positions").object()
                guard case .object(let positions)? = object?["positions"] else { return false }
                return positions.keys.sorted() == ["inbox:ada"]
            }
            let nobody = try await node.request(.GET, "/api/users/nobody/positions").object()
            #expect(nobody["positions"] == .object([:]))
        }
    }
}

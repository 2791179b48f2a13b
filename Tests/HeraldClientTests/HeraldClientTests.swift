import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

/// The client library against real nodes, restarted under it.
@Suite struct HeraldClientTests {
    @Test func reconnectsAfterARestartAndRestoresNameAndSubscriptions() async throws {
        var configuration = HeraldClient.Configuration()
        configuration.backoffBase = .milliseconds(50)
        configuration.backoffCap = .milliseconds(300)
        try await withNode({ $0.nodeID = "first" }) { first in
            // The second node takes over the first one's port, as a restarted node would.
            let port = first.port
            let client = try HeraldClient(url: "ws://127.0.0.1:\(port)/ws", configuration: configuration)
            try await withRunning(client) { events in
                guard case .state(.connected(let firstID, "first")) = try await events.next("connected", where: {
                    if case .state(.connected) = $0 { true } else { false }
                }) else { throw TimeoutError(what: "first connection") }
                try await client.setName("Carol")
                try await client.subscribe("restart")
                _ = try await events.next("subscribed") { if case .message(.subscribed("restart", _, _, _)) = $0 { true } else { false } }
                _ = try await first.request(.POST, "/api/notify/restart", body: #"{"title":"before"}"#)
                _ = try await events.next("before") { if case .message(.notification(let n)) = $0 { n.title == "before" } else { false } }

                try await first.stop()
                // The node shut down: the client saw server_shutdown and started reconnecting.
                _ = try await events.next("reconnecting") { if case .state(.reconnecting) = $0 { true } else { false } }

                try await withNode({ $0.port = port; $0.nodeID = "second" }) { node in
                    guard case .state(.connected(let secondID, "second")) = try await events.next("reconnected", where: {
                        if case .state(.connected) = $0 { true } else { false }
                    }) else { throw TimeoutError(what: "second connection") }
                    #expect(secondID != firstID)
                    // Name and subscription were restored without the caller doing anything.
                    _ = try await events.next("re-subscribed") { if case .message(.subscribed("restart", _, _, _)) = $0 { true } else { false } }
                    let clients = try await node.request(.GET, "/api/clients").json(ClientsList.self)
                    #expect(clients.clients.first?.name == "Carol")
                    #expect(clients.clients.first?.subscriptions == ["restart"])
                    _ = try await node.request(.POST, "/api/notify/restart", body: #"{"title":"after"}"#)
                    _ = try await events.next("after") { if case .message(.notification(let n)) = $0 { n.title == "after" } else { false } }
                }
            }
        }
    }

    @Test(arguments: [true, false])
    func acknowledgesWhatItReceivedOrWhatTheApplicationSays(autoAck: Bool) async throws {
        let secret = Array("client-ack-secret-long-enough-for-hs256".utf8)
        var configuration = HeraldClient.Configuration()
        configuration.autoAck = autoAck
        configuration.ackInterval = .milliseconds(50)
        configuration.token = try await TokenMinter.mint(
            ConnectionClaims(subject: "ada", expires: Date().addingTimeInterval(300), channels: nil), with: .hs256(secret: secret))
        try await withNode({
            $0.auth = AuthConfiguration(secret: secret, allowAnonymous: false)
            $0.durable = true
        }) { node in
            let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: configuration)
            try await withRunning(client) { events in
                try await client.subscribe("inbox")
                _ = try await events.next("subscribed") { if case .message(.subscribed("inbox", _, _, _)) = $0 { true } else { false } }
                for title in ["a", "b", "c"] { _ = try await node.request(.POST, "/api/notify/inbox", body: #"{"title":"\#(title)"}"#) }
                var received: [HeraldNotification] = []
                while received.count < 3 {
                    if case .message(.notification(let notification)) = try await events.next("notifications", where: {
                        if case .message(.notification) = $0 { true } else { false }
                    }) { received.append(notification) }
                }
                // By hand: only what the application says it handled (the second one).
                if !autoAck { client.ack(received[1]) }
                let expected: Int64 = autoAck ? 3 : 2
                try await waitUntil("ada's position at \(expected)") {
                    let object = try? await node.request(.GET, "/api/users/ada/positions").object()
                    guard case .object(let positions)? = object?["positions"], case .object(let inbox)? = positions["inbox"] else { return false }
                    return inbox["offset"] == .integer(expected)
                }
            }
        }
    }

    @Test func answersServerPingsItself() async throws {
        try await withNode({ $0.pingInterval = .milliseconds(100); $0.pingTimeout = .milliseconds(500) }) { node in
            let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws")
            try await withRunning(client) { events in
                var pings = 0
                while pings < 10 {
                    if case .message(.ping) = try await events.next("ping", where: { if case .message(.ping) = $0 { true } else { false } }) {
                        pings += 1
                    }
                }
                // Ten pings (1 s) is twice the timeout: still connected, never reconnected.
                #expect(node.connectionCount == 1)
            }
        }
    }

    @Test func givesUpAfterMaxAttempts() async throws {
        var configuration = HeraldClient.Configuration()
        configuration.maxAttempts = 3
        configuration.backoffBase = .milliseconds(10)
        configuration.backoffCap = .milliseconds(20)
        try await withClosedPort { port in
            let client = try HeraldClient(url: "ws://127.0.0.1:\(port)/ws", configuration: configuration)
            var states: [HeraldClient.State] = []
            try await withRunning(client) { events in
                for event in try await events.untilClosed() {
                    if case .state(let state) = event { states.append(state) }
                }
            }
            #expect(states.last == .closed)
            #expect(states.filter { if case .connecting = $0 { true } else { false } }.count == 3)
        }
    }

    @Test func authenticatesWithItsTokenAndStopsWhenRefused() async throws {
        let secret = Array("client-test-secret-long-enough-for-hs256!".utf8)
        try await withNode({ $0.auth = AuthConfiguration(secret: secret, allowAnonymous: false) }) { node in
            var configuration = HeraldClient.Configuration()
            configuration.token = try await TokenMinter.mint(
                ConnectionClaims(subject: "dora", expires: Date().addingTimeInterval(60), channels: ["private:ops"]),
                with: .hs256(secret: secret))
            let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: configuration)
            try await client.subscribe("private:ops")
            try await withRunning(client) { events in
                _ = try await events.next("authenticated") { if case .message(.authenticated("dora", _)) = $0 { true } else { false } }
                _ = try await events.next("subscribed") { if case .message(.subscribed("private:ops", _, _, _)) = $0 { true } else { false } }
            }

            // Without a token the node closes with 4001: the client does not hammer it.
            var anonymous = HeraldClient.Configuration()
            anonymous.backoffBase = .milliseconds(1)
            let refused = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: anonymous)
            try await refused.subscribe("news")
            var connects = 0
            try await withRunning(refused) { events in
                for event in try await events.untilClosed() {
                    if case .state(.connected) = event { connects += 1 }
                }
            }
            #expect(connects == 1)
        }
    }

    @Test func stopsForGoodWhenTheApplicationDisconnectsItsUser() async throws {
        let secret = Array("client-test-secret-long-enough-for-hs256!".utf8)
        try await withNode({ $0.auth = AuthConfiguration(secret: secret, allowAnonymous: false) }) { node in
            var configuration = HeraldClient.Configuration()
            configuration.backoffBase = .milliseconds(1)
            configuration.token = try await TokenMinter.mint(
                ConnectionClaims(subject: "eve", expires: Date().addingTimeInterval(60), channels: nil), with: .hs256(secret: secret))
            let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: configuration)
            var connects = 0
            try await withRunning(client) { events in
                _ = try await events.next("authenticated") { if case .message(.authenticated("eve", _)) = $0 { true } else { false } }
                connects = 1
                let response = try await node.request(.POST, "/api/users/eve/disconnect")
                #expect(try response.object()["disconnected"] == .integer(1))
                for event in try await events.untilClosed() {
                    if case .state(.connected) = event { connects += 1 }
                }
            }
            #expect(connects == 1)
            #expect(node.connectionCount == 0)
        }
    }

    @Test func closeCodesThatEndReconnecting() {
        #expect(HeraldClient.isFinal(closeCode: 4001, canRefresh: true))
        #expect(HeraldClient.isFinal(closeCode: 4003, canRefresh: true))
        #expect(HeraldClient.isFinal(closeCode: 4002, canRefresh: false))
        #expect(!HeraldClient.isFinal(closeCode: 4002, canRefresh: true))
        #expect(!HeraldClient.isFinal(closeCode: 1001, canRefresh: false))
        #expect(!HeraldClient.isFinal(closeCode: nil, canRefresh: false))
    }

    @Test func rejectsNonWebSocketURLs() {
        #expect(throws: HeraldClient.ClientError.self) { try HeraldClient(url: "http://example.com") }
    }
}

struct ClientsList: Decodable {
    var clients: [ClientInfo]
}

import Foundation
import HeraldClient
import HeraldCore
import HeraldServer
import HeraldTesting
import Testing

/// The client library against real nodes, restarted under it.
@Suite struct HeraldClientTests {
    /// Reads events until `predicate` matches one.
    func next(_ events: inout AsyncStream<HeraldClient.Event>.Iterator, _ what: String,
              where predicate: (HeraldClient.Event) -> Bool) async throws -> HeraldClient.Event {
        while let event = await events.next() {
            if predicate(event) { return event }
        }
        throw TimeoutError(what: what)
    }

    @Test func reconnectsAfterARestartAndRestoresNameAndSubscriptions() async throws {
        let port = try freePort()
        var configuration = HeraldClient.Configuration()
        configuration.backoffBase = .milliseconds(50)
        configuration.backoffCap = .milliseconds(300)
        let client = try HeraldClient(url: "ws://127.0.0.1:\(port)/ws", configuration: configuration)
        var events = client.events.makeAsyncIterator()
        let running = Task { await client.run() }
        defer { client.close() }

        let firstID = try await withNode({ $0.port = port; $0.nodeID = "first" }) { node in
            guard case .state(.connected(let id, "first")) = try await next(&events, "connected", where: {
                if case .state(.connected) = $0 { true } else { false }
            }) else { throw TimeoutError(what: "first connection") }
            try await client.setName("Carol")
            try await client.subscribe("restart")
            _ = try await next(&events, "subscribed") { if case .message(.subscribed("restart", _)) = $0 { true } else { false } }
            _ = try await node.request(.POST, "/api/notify/restart", body: #"{"title":"before"}"#)
            _ = try await next(&events, "before") { if case .message(.notification(let n)) = $0 { n.title == "before" } else { false } }
            return id
        }
        // The node shut down: the client saw server_shutdown and started reconnecting.
        _ = try await next(&events, "reconnecting") { if case .state(.reconnecting) = $0 { true } else { false } }

        try await withNode({ $0.port = port; $0.nodeID = "second" }) { node in
            guard case .state(.connected(let secondID, "second")) = try await next(&events, "reconnected", where: {
                if case .state(.connected) = $0 { true } else { false }
            }) else { throw TimeoutError(what: "second connection") }
            #expect(secondID != firstID)
            // Name and subscription were restored without the caller doing anything.
            _ = try await next(&events, "re-subscribed") { if case .message(.subscribed("restart", _)) = $0 { true } else { false } }
            let clients = try await node.request(.GET, "/api/clients").json(ClientsList.self)
            #expect(clients.clients.first?.name == "Carol")
            #expect(clients.clients.first?.subscriptions == ["restart"])
            _ = try await node.request(.POST, "/api/notify/restart", body: #"{"title":"after"}"#)
            _ = try await next(&events, "after") { if case .message(.notification(let n)) = $0 { n.title == "after" } else { false } }
        }
        client.close()
        await running.value
    }

    @Test func answersServerPingsItself() async throws {
        try await withNode({ $0.pingInterval = .milliseconds(100); $0.pingTimeout = .milliseconds(500) }) { node in
            let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws")
            var events = client.events.makeAsyncIterator()
            let running = Task { await client.run() }
            var pings = 0
            while pings < 10 {
                if case .message(.ping) = try await next(&events, "ping", where: { if case .message(.ping) = $0 { true } else { false } }) {
                    pings += 1
                }
            }
            // Ten pings (1 s) is twice the timeout: still connected, never reconnected.
            #expect(node.hub.connectionCount == 1)
            client.close()
            await running.value
        }
    }

    @Test func givesUpAfterMaxAttempts() async throws {
        var configuration = HeraldClient.Configuration()
        configuration.maxAttempts = 3
        configuration.backoffBase = .milliseconds(10)
        configuration.backoffCap = .milliseconds(20)
        let client = try HeraldClient(url: "ws://127.0.0.1:\(try freePort())/ws", configuration: configuration)
        var states: [HeraldClient.State] = []
        let running = Task { await client.run() }
        for await event in client.events {
            if case .state(let state) = event { states.append(state) }
        }
        await running.value
        #expect(states.last == .closed)
        #expect(states.filter { if case .connecting = $0 { true } else { false } }.count == 3)
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
            let running = Task { await client.run() }
            var events = client.events.makeAsyncIterator()
            _ = try await next(&events, "authenticated") { if case .message(.authenticated("dora", _)) = $0 { true } else { false } }
            _ = try await next(&events, "subscribed") { if case .message(.subscribed("private:ops", _)) = $0 { true } else { false } }
            client.close()
            await running.value

            // Without a token the node closes with 4001: the client does not hammer it.
            var anonymous = HeraldClient.Configuration()
            anonymous.backoffBase = .milliseconds(1)
            let refused = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: anonymous)
            try await refused.subscribe("news")
            let refusedRun = Task { await refused.run() }
            var connects = 0
            for await event in refused.events {
                if case .state(.connected) = event { connects += 1 }
            }
            await refusedRun.value
            #expect(connects == 1)
        }
    }

    @Test func closeCodesThatEndReconnecting() {
        #expect(HeraldClient.isFinal(closeCode: 4001, canRefresh: true))
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

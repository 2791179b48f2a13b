import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Synchronization
import Testing

/// The backend hooks against a real HTTP backend (``TestBackend``) and real sockets.
@Suite struct BackendHookTests {
    /// A node whose hooks point at `backend`, with `chat` (subscribe and publish hooks, history,
    /// join/leave) and `ticker` (no history, no client publishing).
    func withHookedNode<T: Sendable>(
        _ backend: TestBackend, timeout: TimeAmount = .seconds(5), _ body: (RunningNode) async throws -> T
    ) async throws -> T {
        try await withNode({ config in
            config.hooks.connectURL = backend.url("connect")
            config.hooks.subscribeURL = backend.url("subscribe")
            config.hooks.publishURL = backend.url("publish")
            config.hooks.secret = "hook-secret"
            config.hooks.timeout = timeout
            var chat = NamespacePolicy(history: HistoryPolicy(size: 50), joinLeave: true, subscribeHook: true, publishHook: true)
            chat.presence = true
            config.namedNamespaces = [
                "chat": chat,
                "ticker": NamespacePolicy(history: HistoryPolicy(size: 0), clientPublish: false),
            ]
        }, body)
    }

    static let ada = #"{"result":{"user":"ada","channels":["news"]}}"#

    @Test func aSessionCookieConnectsThroughTheConnectHookAndAWrongOneGetsTheBackendsCloseCode() async throws {
        try await withTestBackend { backend in
            backend.answer { call in
                call.hook == "connect" && call.body["headers"] == .object(["Cookie": .string("session=good")])
                    ? (200, Self.ada) : (200, #"{"error":{"code":4403,"message":"no such session"}}"#)
            }
            try await withHookedNode(backend) { node in
                let client = try await node.connect(headers: [("Cookie", "session=good")])
                guard case .subscribed("news", _, _, _) = try await client.nextMessage() else {
                    Issue.record("not auto-subscribed to news")
                    return
                }
                _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"hi"}"#)
                #expect(try await client.nextNotification().title == "hi")
                let connect = try #require(backend.calls("connect").first)
                #expect(connect.body["transport"] == .string("websocket"))
                #expect(connect.body["client"] == .string(client.clientID ?? ""))
                #expect(connect.body["headers"] == .object(["Cookie": .string("session=good")]))
                // Signed with the hook secret.
                #expect(connect.header("X-Herald-Signature") == BackendHooks.signature(of: connect.rawBody, secret: "hook-secret"))
                // The user is known: /api/users/ada reaches the connection.
                _ = try await node.request(.POST, "/api/users/ada/notify", body: #"{"title":"for ada"}"#)
                #expect(try await client.nextNotification().title == "for ada")

                let refused = try await node.connect(headers: [("Cookie", "session=bad")], readWelcome: false)
                let error = try await refused.nextError()
                #expect(error.code == .forbidden && error.error == "no such session")
                #expect(try await refused.nextClose().code == 4403)
            }
        }
    }

    @Test func theSubscribeHookAllowsAndDeniesOnlyInItsNamespace() async throws {
        try await withTestBackend { backend in
            backend.answer { call in
                switch call.hook {
                case "subscribe" where call.body["channel"] == .string("chat:2"): (200, #"{"error":{"message":"not a member of chat:2"}}"#)
                case "connect": (200, #"{"result":{"user":"ada"}}"#)
                default: (200, #"{"result":{}}"#)
                }
            }
            try await withHookedNode(backend) { node in
                let client = try await node.connect(headers: [("Cookie", "session=good")])
                try await client.send(.subscribe(channel: "chat:1"))
                guard case .subscribed("chat:1", _, let position, _) = try await client.nextMessage() else {
                    Issue.record("chat:1 not subscribed")
                    return
                }
                #expect(position != nil, "chat keeps history")
                try await client.send(.subscribe(channel: "chat:2"))
                let denied = try await client.nextError()
                #expect(denied == ProtocolError(.forbidden, "not a member of chat:2", channel: "chat:2"))
                try await client.send(.subscribe(channel: "ticker:aapl"))
                guard case .subscribed("ticker:aapl", _, let tickerPosition, _) = try await client.nextMessage() else {
                    Issue.record("ticker not subscribed")
                    return
                }
                #expect(tickerPosition == nil, "ticker keeps no history")
                let asked = backend.calls("subscribe").compactMap { call -> String? in
                    if case .string(let channel) = call.body["channel"] { channel } else { nil }
                }
                #expect(asked == ["chat:1", "chat:2"], "the hook is asked for chat only")
                try await client.send(.listSubscriptions)
                #expect(try await client.nextMessage() == .subscriptions(channels: ["chat:1", "ticker:aapl"]))
            }
        }
    }

    @Test func thePublishHookRewritesAndVetoesAndClientPublishFalseRefusesWithoutAsking() async throws {
        try await withTestBackend { backend in
            backend.answer { call in
                switch (call.hook, call.body["text"]) {
                case ("connect", _): (200, #"{"result":{"user":"ada"}}"#)
                case ("publish", .string("spam")): (200, #"{"error":{"message":"no spam here"}}"#)
                case ("publish", _): (200, #"{"result":{"text":"HELLO","data":{"checked":true}}}"#)
                default: (200, #"{"result":{}}"#)
                }
            }
            try await withHookedNode(backend) { node in
                let sender = try await node.connect(headers: [("Cookie", "session=good")])
                let reader = try await node.connect(headers: [("Cookie", "session=good")])
                for client in [sender, reader] {
                    try await client.send(.subscribe(channel: "chat:1"))
                    _ = try await client.next { if case .subscribed("chat:1", _, _, _) = $0 { true } else { false } }
                    try await client.send(.subscribe(channel: "ticker:aapl"))
                    _ = try await client.next { if case .subscribed("ticker:aapl", _, _, _) = $0 { true } else { false } }
                }
                try await sender.send(.message(channel: "chat:1", text: "spam"))
                #expect(try await sender.nextError() == ProtocolError(.forbidden, "no spam here", channel: "chat:1"))
                try await sender.send(.message(channel: "chat:1", text: "hello"))
                let delivered = try await reader.next { if case .notification = $0 { true } else { false } }
                guard case .notification(let notification) = delivered else { return }
                #expect(notification.body == "HELLO" && notification.data == .object(["checked": .bool(true)]))
                #expect(notification.fromUser == "ada")
                let publishCalls = backend.calls("publish").count
                try await sender.send(.message(channel: "ticker:aapl", text: "buy"))
                let refused = try await sender.nextError()
                #expect(refused.code == .forbidden)
                #expect(backend.calls("publish").count == publishCalls, "client_publish: false asked the hook")
                // Neither the vetoed nor the refused message reached anyone: the next one is the rewritten one.
                try await sender.send(.message(channel: "chat:1", text: "again"))
                let next = try await reader.next { if case .notification = $0 { true } else { false } }
                guard case .notification(let second) = next else { return }
                #expect(second.channel == "chat:1" && second.body == "HELLO")
            }
        }
    }

    @Test func aStoppedBackendGetsRetryableAnswersAndTheSameClientsSucceedOnceItIsBack() async throws {
        try await withTestBackend { backend in
            backend.answer { call in call.hook == "connect" ? (200, #"{"result":{"user":"ada"}}"#) : (200, #"{"result":{}}"#) }
            try await withHookedNode(backend, timeout: .milliseconds(500)) { node in
                let client = try await node.connect(headers: [("Cookie", "session=good")])
                await backend.stop()
                let start = ContinuousClock.now
                try await client.send(.subscribe(channel: "chat:1"))
                let error = try await client.nextError()
                #expect(error.code == .temporarilyUnavailable && error.channel == "chat:1")
                let refused = try await node.connect(headers: [("Cookie", "session=good")], readWelcome: false)
                #expect(try await refused.nextError().code == .temporarilyUnavailable)
                #expect(try await refused.nextClose().code == 4503)
                #expect(ContinuousClock.now - start < .seconds(3))
                try await backend.restart()
                // As a client library does: subscribe again until the backend answers (the
                // node's first call may still land before the restarted backend listens).
                try await waitUntil("the subscribe to succeed once the backend is back", timeout: .seconds(15)) {
                    try await client.send(.subscribe(channel: "chat:1"))
                    let answer = try await client.next {
                        if case .subscribed("chat:1", _, _, _) = $0 { true } else if case .error = $0 { true } else { false }
                    }
                    guard case .error(let error) = answer else { return true }
                    #expect(error.code == .temporarilyUnavailable)
                    return false
                }
                _ = try await node.connect(headers: [("Cookie", "session=good")])
            }
        }
    }

    @Test func aSlowBackendHoldsNoEventLoop() async throws {
        try await withTestBackend { backend in
            backend.answer { call in
                if call.hook == "subscribe" { try? await Task.sleep(for: .seconds(3)) }
                return call.hook == "connect" ? (200, #"{"result":{"user":"ada"}}"#) : (200, #"{"result":{}}"#)
            }
            // One event-loop thread: a blocked loop would stall every client.
            try await withNode({ config in
                config.threads = 1
                config.hooks.connectURL = backend.url("connect")
                config.hooks.subscribeURL = backend.url("subscribe")
                config.hooks.timeout = .seconds(2)
                config.namedNamespaces = ["chat": NamespacePolicy(subscribeHook: true)]
            }) { node in
                let waiting = try await node.connect(headers: [("Cookie", "a")])
                let listener = try await node.subscriber("news")
                try await waiting.send(.subscribe(channel: "chat:1"))
                try await waitUntil("the subscribe hook to be called", timeout: .seconds(5)) { !backend.calls("subscribe").isEmpty }
                var worst = Duration.zero
                for index in 0..<10 {
                    let sent = ContinuousClock.now
                    _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"\#(index)"}"#)
                    _ = try await listener.notification(titled: "\(index)")
                    worst = max(worst, ContinuousClock.now - sent)
                }
                #expect(worst < .milliseconds(500), "a notification took \(worst) while the hook was slow")
                let error = try await waiting.nextError(timeout: .seconds(5))
                #expect(error.code == .temporarilyUnavailable)
            }
        }
    }

    @Test func joinAndLeaveOnlyWhereTheNamespaceSaysSo() async throws {
        try await withTestBackend { backend in
            backend.answer { call in call.hook == "connect" ? (200, #"{"result":{"user":"ada"}}"#) : (200, #"{"result":{}}"#) }
            try await withHookedNode(backend) { node in
                let first = try await node.connect(headers: [("Cookie", "a")])
                for channel in ["chat:1", "ticker:aapl"] {
                    try await first.send(.subscribe(channel: channel))
                    _ = try await first.next { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
                }
                let second = try await node.connect(headers: [("Cookie", "b")])
                try await second.send(.subscribe(channel: "ticker:aapl"))
                _ = try await second.next { if case .subscribed("ticker:aapl", _, _, _) = $0 { true } else { false } }
                try await second.send(.subscribe(channel: "chat:1"))
                _ = try await second.next { if case .subscribed("chat:1", _, _, _) = $0 { true } else { false } }
                let join = try await first.next { if case .join = $0 { true } else { false } }
                guard case .join(let channel, _) = join else { return }
                #expect(channel == "chat:1", "join for \(channel), which has no join_leave")
            }
        }
    }

    @Test func anUnknownNamespaceIsRefusedWhenTheFileSaysReject() async throws {
        try await withNode({ config in
            config.namedNamespaces = ["chat": NamespacePolicy()]
            config.unknownNamespaces = .reject
        }) { node in
            let client = try await node.connect()
            try await client.send(.subscribe(channel: "orders:1"))
            #expect(try await client.nextError().code == .unknownNamespace)
            try await client.send(.subscribe(channel: "chat:1"))
            _ = try await client.next { if case .subscribed("chat:1", _, _, _) = $0 { true } else { false } }
            try await client.send(.subscribe(channel: "plain"))
            _ = try await client.next { if case .subscribed("plain", _, _, _) = $0 { true } else { false } }
            let sse = try await node.request(.GET, "/sse?channel=orders:1")
            #expect(sse.status == 400 && sse.text.contains("unknown_namespace"))
        }
    }

    @Test func theConnectHookGetsTheForwardedHeadersAndAnAnswerThatIsNotTheDocumentedJSONIsUnavailable() async throws {
        try await withTestBackend { backend in
            backend.answer { _ in (200, #"{"result":{"user":"ada"}}"#) }
            try await withNode({ config in
                config.hooks.connectURL = backend.url("connect")
                config.hooks.forwardHeaders = ["X-Tenant"]
            }) { node in
                _ = try await node.connect(headers: [("Cookie", "s=1"), ("X-Tenant", "acme"), ("X-Other", "no")])
                #expect(backend.calls("connect").last?.body["headers"] == .object(["Cookie": .string("s=1"), "X-Tenant": .string("acme")]))
                for (status, body) in [(200, "not json"), (200, #"{"result":{}}"#), (200, #"{"result":{"user":"a"},"error":{}}"#), (500, #"{"result":{"user":"a"}}"#)] {
                    backend.answer { _ in (status, body) }
                    let refused = try await node.connect(readWelcome: false)
                    #expect(try await refused.nextError().code == .temporarilyUnavailable, "\(status) \(body)")
                    #expect(try await refused.nextClose().code == CloseCode.backendUnavailable.rawValue)
                }
            }
        }
    }

    // MARK: HeraldClient against a backend that comes and goes

    @Test func heraldClientRetriesAConnectAndASubscribeTheBackendCouldNotJudgeAndSucceedsOnceItIsBack() async throws {
        try await withTestBackend { backend in
            backend.answer { call in call.hook == "connect" ? (200, #"{"result":{"user":"ada"}}"#) : (200, #"{"result":{}}"#) }
            try await withHookedNode(backend, timeout: .milliseconds(300)) { node in
                await backend.stop()
                var configuration = HeraldClient.Configuration()
                configuration.headers = [("Cookie", "session=good")]
                configuration.backoffBase = .milliseconds(50)
                configuration.backoffCap = .milliseconds(400)
                let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: configuration)
                try await client.subscribe("chat:1")
                try await withRunning(client) { events in
                    // Closed with 4503 instead of welcome, and tried again.
                    try await events.next("a second attempt after 4503") { event in
                        if case .state(.connecting(let attempt)) = event { attempt >= 2 } else { false }
                    }
                    try await backend.restart()
                    try await events.next("welcome once the backend is back") { event in
                        if case .state(.connected) = event { true } else { false }
                    }
                    try await events.next("chat:1 subscribed") { event in
                        if case .message(.subscribed("chat:1", _, _, _)) = event { true } else { false }
                    }
                    // The subscribe hook goes away: the next subscribe is refused for now, and
                    // the client sends it again by itself until the backend answers.
                    await backend.stop()
                    try await client.subscribe("chat:2")
                    try await events.next("temporarily_unavailable for chat:2") { event in
                        if case .message(.error(let error)) = event { error.code == .temporarilyUnavailable && error.channel == "chat:2" } else { false }
                    }
                    try await backend.restart()
                    try await events.next("chat:2 subscribed without the application asking again") { event in
                        if case .message(.subscribed("chat:2", _, _, _)) = event { true } else { false }
                    }
                }
            }
        }
    }

    @Test func heraldClientStopsWhenTheBackendRefusesTheConnection() async throws {
        try await withTestBackend { backend in
            backend.answer { _ in (200, #"{"error":{"code":4418,"message":"banned"}}"#) }
            try await withHookedNode(backend) { node in
                var configuration = HeraldClient.Configuration()
                configuration.backoffBase = .milliseconds(50)
                let client = try HeraldClient(url: "ws://127.0.0.1:\(node.port)/ws", configuration: configuration)
                try await withRunning(client) { events in
                    let all = try await events.untilClosed(timeout: .seconds(10))
                    let attempts = all.filter { if case .state(.connecting) = $0 { true } else { false } }.count
                    #expect(attempts == 1, "the client tried again after the backend refused it")
                }
                #expect(backend.calls("connect").count == 1)
            }
        }
    }

    // MARK: Refresh

    @Test func theRefreshHookExtendsAConnectionAndItsRefusalClosesWith4002() async throws {
        try await withTestBackend { backend in
            let refusals = Mutex(false)
            backend.answer { call in
                let now = Int64(Date().timeIntervalSince1970)
                switch call.hook {
                // One second to live: the expiry passes during the test.
                case "connect": return (200, #"{"result":{"user":"ada","expires_at":\#(now + 1)}}"#)
                case "refresh":
                    return refusals.withLock { $0 }
                        ? (200, #"{"error":{"message":"session ended"}}"#) : (200, #"{"result":{"expires_at":\#(now + 2)}}"#)
                default: return (200, #"{"result":{}}"#)
                }
            }
            try await withNode({ config in
                config.hooks.connectURL = backend.url("connect")
                config.hooks.refreshURL = backend.url("refresh")
            }) { node in
                let client = try await node.subscriber("news")
                try await waitUntil("the refresh hook to be asked", timeout: .seconds(5)) { !backend.calls("refresh").isEmpty }
                let refresh = try #require(backend.calls("refresh").first)
                #expect(refresh.body["user"] == .string("ada") && refresh.body["client"] == .string(client.clientID ?? ""))
                // Extended: still open past the first expiry.
                _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"still here"}"#)
                #expect(try await client.nextNotification().title == "still here")
                refusals.withLock { $0 = true }
                let error = try await client.nextError(timeout: .seconds(5))
                #expect(error == ProtocolError(.tokenExpired, "session ended"))
                #expect(try await client.nextClose().code == CloseCode.tokenExpired.rawValue)
            }
        }
    }

    // MARK: Server-Sent Events

    @Test func anEventStreamGoesThroughTheConnectAndSubscribeHooks() async throws {
        try await withTestBackend { backend in
            backend.answer { call in
                switch call.hook {
                case "connect" where call.body["headers"] == .object(["Cookie": .string("session=good")]):
                    (200, #"{"result":{"user":"ada"}}"#)
                case "connect": (200, #"{"error":{"code":4418,"message":"who are you?"}}"#)
                case "subscribe" where call.body["channel"] == .string("chat:2"): (200, #"{"error":{"message":"not a member"}}"#)
                default: (200, #"{"result":{}}"#)
                }
            }
            // Not a short timeout: in the full suite on two cores a hook answer took over 300 ms,
            // and the stream got the retryable answer instead of `welcome` (2 runs in 6).
            try await withHookedNode(backend, timeout: .seconds(2)) { node in
                let good = [("Cookie", "session=good")]
                try await withEventStream(node.baseURL + "/sse?channel=chat:1", headers: good) { stream, _ in
                    #expect(stream.status == 200)
                    #expect(try await stream.nextEvent().name == "welcome")
                    #expect(try await stream.nextEvent().name == "subscribed")
                    _ = try await node.request(.POST, "/api/users/ada/notify", body: #"{"title":"for ada"}"#)
                    #expect(try await stream.nextNotification().0.title == "for ada")
                }
                #expect(backend.calls("connect").last?.body["transport"] == .string("sse"))
                #expect(backend.calls("subscribe").last?.body["channel"] == .string("chat:1"))
                try await withEventStream(node.baseURL + "/sse?channel=chat:2", headers: good) { stream, body in
                    #expect(stream.status == 403 && body.contains("not a member"))
                }
                // Refused by the connect hook: its message, then `disconnect` with its code.
                try await withEventStream(node.baseURL + "/sse?channel=news", headers: [("Cookie", "session=bad")]) { stream, _ in
                    let error = try await stream.nextEvent()
                    #expect(error.name == "error" && error.data.contains("who are you?"))
                    let disconnect = try await stream.nextEvent()
                    #expect(try disconnect.message() == .disconnect(code: 4418, reason: "forbidden"))
                    try await stream.waitForEnd()
                }
                // The backend away: `retry:` and temporarily_unavailable, so EventSource comes back.
                await backend.stop()
                try await withEventStream(node.baseURL + "/sse?channel=news", headers: good) { stream, _ in
                    guard case .retry = try await stream.nextItem() else {
                        Issue.record("no retry: first")
                        return
                    }
                    let error = try await stream.nextEvent()
                    #expect(try error.message() == .error(ProtocolError(.temporarilyUnavailable, "the backend could not be asked; try again")))
                    try await stream.waitForEnd()
                }
            }
        }
    }
}

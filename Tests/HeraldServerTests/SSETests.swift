import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// `GET /sse` against real sockets: framing, resume, limits and errors.
@Suite struct SSETests {
    func publish(_ node: RunningNode, _ channel: String, _ title: String) async throws {
        let response = try await node.request(.POST, "/api/notify/\(channel)", body: #"{"title":"\#(title)"}"#)
        #expect(response.status == 200, "\(response.text)")
    }

    /// Reads the welcome and one `subscribed` event per channel; returns the last id.
    func opening(_ stream: TestEventStream, channels: Int) async throws -> String? {
        #expect(stream.status == 200)
        #expect(stream.headers.first(name: "Content-Type") == "text/event-stream")
        #expect(stream.headers.first(name: "Cache-Control") == "no-cache")
        let welcome = try await stream.nextEvent()
        #expect(welcome.name == "welcome")
        guard case .welcome = try welcome.message() else {
            Issue.record("not a welcome: \(welcome.data)")
            return nil
        }
        var id: String?
        for _ in 0..<channels {
            let subscribed = try await stream.nextEvent()
            #expect(subscribed.name == "subscribed")
            id = subscribed.id
        }
        return id
    }

    @Test func notificationsArriveAsUnnamedEventsWithTheWebSocketJSON() async throws {
        try await withNode { node in
            let socket = try await node.subscriber("a")
            try await withEventStream(node.baseURL + "/sse?channel=a&channel=b") { stream, _ in
                _ = try await opening(stream, channels: 2)
                try await publish(node, "a", "first")
                try await publish(node, "b", "second")
                let first = try await stream.nextEvent()
                #expect(first.name == nil)
                // Exactly the bytes a WebSocket subscriber of the channel gets.
                let frame = try await socket.nextFrame()
                #expect(first.data == String(buffer: frame.unmaskedData))
                let (second, id) = try await stream.nextNotification()
                #expect(second.title == "second")
                // The id covers both channels.
                let positions = try #require(id.flatMap(ResumeToken.decode))
                #expect(Set(positions.keys) == ["a", "b"])
                #expect(positions["b"]?.offset == 1)
                #expect(positions["a"]?.offset == 1)
                #expect(node.connectionCount == 2)
            }
        }
    }

    @Test func lastEventIDReplaysWhatWasMissedOnEveryChannelOnceAndInOrder() async throws {
        try await withNode { node in
            let id = try await withEventStream(node.baseURL + "/sse?channel=x&channel=y") { stream, _ in
                _ = try await opening(stream, channels: 2)
                try await publish(node, "x", "x1")
                return try await stream.nextNotification().id
            }
            let resumeFrom = try #require(id)
            for index in 2...4 { try await publish(node, "x", "x\(index)") }
            for index in 1...2 { try await publish(node, "y", "y\(index)") }
            for form in ["header", "query"] {
                let url = node.baseURL + "/sse?channel=x&channel=y" + (form == "query" ? "&lastEventId=\(resumeFrom)" : "")
                let headers = form == "header" ? [("Last-Event-ID", resumeFrom)] : []
                try await withEventStream(url, headers: headers) { stream, _ in
                    _ = try await stream.nextEvent()  // welcome
                    var titles: [String] = []
                    var recoveries: [String: Bool] = [:]
                    // The second form also missed the live notification of the first.
                    let expected = ["x2", "x3", "x4", "y1", "y2"] + (form == "query" ? ["live-header"] : [])
                    while titles.count < expected.count {
                        let event = try await stream.nextEvent()
                        switch event.name {
                        case "recovery":
                            let fields = try JSONDecoder().decode([String: JSONValue].self, from: Data(event.data.utf8))
                            if case .string(let channel) = fields["channel"], case .bool(let recovered) = fields["recovered"] {
                                recoveries[channel] = recovered
                            }
                        case nil:
                            if case .notification(let notification) = try event.message() { titles.append(notification.title ?? "") }
                        default:
                            break
                        }
                    }
                    #expect(titles == expected, "\(form)")
                    #expect(recoveries == ["x": true, "y": true], "\(form)")
                    // Nothing more: the live stream goes on from there.
                    try await publish(node, "y", "live-\(form)")
                    #expect(try await stream.nextNotification().0.title == "live-\(form)")
                }
            }
        }
    }

    @Test func aPositionThatCannotBeRecoveredIsReportedAsSuch() async throws {
        try await withNode { node in
            try await publish(node, "gone", "before")
            let stale = ResumeToken.encode(["gone": StreamPosition(offset: 1, epoch: "0000000000000000")])
            try await withEventStream(node.baseURL + "/sse?channel=gone", headers: [("Last-Event-ID", stale)]) { stream, _ in
                _ = try await stream.nextEvent()
                _ = try await stream.nextEvent()  // subscribed
                let recovery = try await stream.nextEvent()
                #expect(recovery.name == "recovery")
                #expect(recovery.data.contains(#""recovered":false"#))
                try await publish(node, "gone", "after")
                #expect(try await stream.nextNotification().0.title == "after")
            }
        }
    }

    @Test func badRequestsAreRefusedWithAJSONErrorBeforeTheStreamStarts() async throws {
        try await withNode({
            $0.allowedOrigins = ["https://app.example"]
            $0.sessionLimits.maxSubscriptions = 2
            $0.pingInterval = .milliseconds(200)
        }) { node in
            let cases: [(String, [(String, String)], Int, String)] = [
                ("/sse", [], 400, "missing_field"),
                ("/sse?channel=bad%20name", [], 400, "invalid_channel"),
                ("/sse?channel=a&channel=b&channel=c", [], 400, "too_many_subscriptions"),
                ("/sse?channel=a", [("Last-Event-ID", "not a token")], 400, "invalid_field"),
                ("/sse?channel=a", [("Origin", "https://evil.example")], 403, "forbidden"),
            ]
            for (path, headers, status, code) in cases {
                try await withEventStream(node.baseURL + path, headers: headers) { stream, body in
                    #expect(stream.status == status, "\(path)")
                    #expect(body.contains(#""code":"\#(code)""#), "\(path): \(body)")
                }
            }
            // An allowed origin gets the CORS header a browser needs.
            try await withEventStream(node.baseURL + "/sse?channel=a", headers: [("Origin", "https://app.example")]) { stream, _ in
                #expect(stream.status == 200)
                #expect(stream.headers.first(name: "Access-Control-Allow-Origin") == "https://app.example")
                #expect(node.connectionCount == 1)
            }
            // The client hung up: the node notices at its next write (a keep-alive at the latest).
            try await waitUntil("the stream's slot to be given back", timeout: .seconds(3)) { node.connectionCount == 0 }
        }
    }

    @Test func tokensAndGrantsApplyAsForWebSockets() async throws {
        let secret = Array("sse-test-secret-long-enough-for-hs256!!!".utf8)
        try await withNode({ $0.auth = AuthConfiguration(secret: secret, allowAnonymous: false) }) { node in
            let token = try await TokenMinter.mint(
                ConnectionClaims(subject: "sam", expires: Date().addingTimeInterval(60), channels: ["private:ops"]),
                with: .hs256(secret: secret))
            for (path, status, code) in [
                ("/sse?channel=news", 401, "unauthorized"),
                ("/sse?channel=news&token=forged.token.value", 401, "invalid_token"),
                ("/sse?channel=private:other&token=\(token)", 403, "forbidden"),
            ] {
                try await withEventStream(node.baseURL + path) { stream, body in
                    #expect(stream.status == status, "\(path)")
                    #expect(body.contains(#""code":"\#(code)""#), "\(path): \(body)")
                }
            }
            try await withEventStream(node.baseURL + "/sse?channel=private:ops&token=\(token)") { stream, _ in
                _ = try await opening(stream, channels: 1)
                try await publish(node, "private:ops", "granted")
                #expect(try await stream.nextNotification().0.title == "granted")
                let clients = try await node.request(.GET, "/api/clients").object()
                #expect(clients["total"] == .integer(1))
            }
        }
    }

    /// `exp` is enforced while a stream is open, as for a WebSocket: an `error` event
    /// (`token_expired`), a `disconnect` event with 4002, then the end of the stream — and the
    /// node gives the stream's place back.
    @Test func aStreamEndsWhenItsTokenExpires() async throws {
        try await withNode(AuthTests.secured(anonymous: false)) { node in
            let token = try await AuthTests.token(expiresIn: 1.2)
            try await withEventStream(node.baseURL + "/sse?channel=news&token=\(token)") { stream, _ in
                _ = try await opening(stream, channels: 1)
                // Still delivering until the token expires.
                try await publish(node, "news", "before expiry")
                #expect(try await stream.nextNotification().0.title == "before expiry")
                let error = try await stream.nextEvent(timeout: .seconds(4))
                #expect(error.name == "error")
                guard case .error(let refusal) = try error.message() else {
                    Issue.record("not an error: \(error.data)")
                    return
                }
                #expect(refusal.code == .tokenExpired)
                let disconnect = try await stream.nextEvent()
                #expect(disconnect.name == "disconnect")
                #expect(try disconnect.message() == .disconnect(code: Int(CloseCode.tokenExpired.rawValue), reason: "token_expired"))
                try await stream.waitForEnd()
            }
            try await waitUntil("the stream's slot to be given back", timeout: .seconds(3)) { node.connectionCount == 0 }
            // The same token cannot open a new stream.
            try await withEventStream(node.baseURL + "/sse?channel=news&token=\(token)") { stream, body in
                #expect(stream.status == 401)
                #expect(body.contains(#""code":"token_expired""#), "\(body)")
            }
        }
    }

    @Test func keepAliveCommentsFlowAtTheHeartbeatInterval() async throws {
        try await withNode({ $0.pingInterval = .milliseconds(100); $0.pingTimeout = .milliseconds(400) }) { node in
            try await withEventStream(node.baseURL + "/sse?channel=quiet") { stream, _ in
                _ = try await opening(stream, channels: 1)
                var comments = 0
                while comments < 3 {
                    if case .comment(let text) = try await stream.nextItem(timeout: .seconds(2)) {
                        #expect(text == "keep-alive")
                        comments += 1
                    }
                }
                // A stream is not closed for silence: the client cannot answer.
                #expect(node.connectionCount == 1)
            }
        }
    }

    @Test func aNodeShuttingDownSaysSoAndEndsTheStream() async throws {
        try await withNode { node in
            try await withEventStream(node.baseURL + "/sse?channel=s") { stream, _ in
                _ = try await opening(stream, channels: 1)
                async let stopped: Void = node.stop()
                // The goodbye's delay hint, as EventSource's reconnection delay.
                var item = try await stream.nextItem(timeout: .seconds(10))
                while case .comment = item { item = try await stream.nextItem() }
                guard case .retry(let delay) = item else {
                    Issue.record("expected a retry hint before the goodbye, got \(item)")
                    return
                }
                #expect((50..<2000).contains(delay))
                let event = try await stream.nextEvent()
                #expect(event.name == "server_shutdown")
                #expect(try event.message().essentials == .serverShutdown(message: "Server is shutting down"))
                try await stream.waitForEnd()
                try await stopped
            }
        }
    }

    @Test func anEventSourceRefusedForAMomentIsToldToRetryInsteadOfGivingUp() async throws {
        try await withNode({ $0.maxConnections = 1 }) { node in
            try await withEventStream(node.baseURL + "/sse?channel=full") { first, _ in
                _ = try await opening(first, channels: 1)
                // EventSource stops for good on any status but 200: a 200 stream that says
                // "retry in a moment" and ends keeps it reconnecting.
                try await withEventStream(node.baseURL + "/sse?channel=full") { refused, _ in
                    #expect(refused.status == 200)
                    guard case .retry(let delay) = try await refused.nextItem() else {
                        Issue.record("no retry hint")
                        return
                    }
                    #expect((1000..<3000).contains(delay))
                    let error = try await refused.nextEvent()
                    #expect(error.name == "error")
                    guard case .error(let reason) = try error.message() else {
                        Issue.record("not an error: \(error.data)")
                        return
                    }
                    #expect(reason.code == .unavailable)
                    try await refused.waitForEnd()
                }
                // Other clients (curl) get the JSON error and its status.
                try await withEventStream(node.baseURL + "/sse?channel=full", acceptsEventStream: false) { refused, body in
                    #expect(refused.status == 503)
                    #expect(body.contains(#""code":"unavailable""#), "\(body)")
                }
                // A permanent refusal stays an error status, so EventSource stops.
                try await withEventStream(node.baseURL + "/sse?channel=bad%20name") { refused, _ in
                    #expect(refused.status == 400)
                }
                #expect(node.connectionCount == 1)
            }
        }
    }

    @Test func aReaderThatStopsReadingIsDropped() async throws {
        try await withNode({
            $0.sendQueueBytes = 64 * 1024
            $0.slowConsumer = .disconnect
        }) { node in
            // A raw client that sends the request and then never reads.
            let channel = try await Self.stalledStream(node, "flood")
            defer { channel.close(promise: nil) }
            let big = String(repeating: "x", count: 16_000)
            var published = 0
            while node.connectionCount == 1, published < 2000 {
                _ = try await node.request(.POST, "/api/notify/flood", body: #"{"body":"\#(big)"}"#)
                published += 1
            }
            #expect(node.connectionCount == 0, "the stalled reader was dropped after \(published) publications")
        }
    }
}

/// Collects every byte a raw client channel reads.
private final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let text = NIOLockedValueBox("")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        text.withLockedValue { $0 += String(buffer: buffer) }
    }
}

extension SSETests {
    /// A raw client that opens `/sse?channel=` and then does not read (a small receive buffer:
    /// the kernel absorbs little); `collector` gets what it reads once reading is turned on.
    fileprivate static func stalledStream(_ node: RunningNode, _ channel: String, collector: ByteCollector? = nil) async throws -> any Channel {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.autoRead, value: false)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4096)
            .channelInitializer { channel in
                guard let collector else { return channel.eventLoop.makeSucceededVoidFuture() }
                return channel.pipeline.addHandler(collector)
            }
            .connect(host: "127.0.0.1", port: node.port).get()
        do {
            try await client.writeAndFlush(ByteBuffer(string: "GET /sse?channel=\(channel) HTTP/1.1\r\nHost: x\r\n\r\n"))
            try await waitUntil("the stream to open") { node.connectionCount == 1 }
        } catch {
            try? await client.close()
            throw error
        }
        return client
    }

    @Test func aStreamThatStopsReadingIsCaughtUpFromHistoryWhenItReadsAgain() async throws {
        try await withNode({
            $0.sendQueueBytes = 64 * 1024
            $0.history.size = 1000
        }) { node in
            let collector = ByteCollector()
            let channel = try await Self.stalledStream(node, "flood", collector: collector)
            defer { channel.close(promise: nil) }
            let big = String(repeating: "x", count: 16_000)
            var published = 0
            while true {
                // At least once: the writer may hand a few events on to the socket's own buffer and
                // the stream lag again.
                let metrics = try await node.request(.GET, "/metrics").text
                let lagged = metrics.split(separator: "\n").first { $0.hasPrefix(#"herald_slow_consumers_total{policy="catch_up"} "#) }
                if let lagged, (Double(lagged.split(separator: " ").last ?? "0") ?? 0) >= 1 { break }
                guard published < 1000 else { throw TimeoutError(what: "the stream to lag") }
                for _ in 0..<10 {
                    _ = try await node.request(.POST, "/api/notify/flood", body: #"{"title":"\#(published)","body":"\#(big)"}"#)
                    published += 1
                }
            }
            // Some more while it lags, then it reads again.
            for _ in 0..<10 {
                _ = try await node.request(.POST, "/api/notify/flood", body: #"{"title":"\#(published)","body":"\#(big)"}"#)
                published += 1
            }
            #expect(node.connectionCount == 1, "a catch_up stream is not dropped")
            try await channel.setOption(ChannelOptions.autoRead, value: true).get()
            channel.read()
            let last = #""title":"\#(published - 1)""#
            try await waitUntil("the last notification", timeout: .seconds(30)) { collector.text.withLockedValue { $0.contains(last) } }
            let text = collector.text.withLockedValue { $0 }
            let titles = text.split(separator: "\n").filter { $0.hasPrefix("data: {\"type\":\"notification\"") }.compactMap { line -> Int? in
                guard let range = line.range(of: #""title":""#) else { return nil }
                return Int(line[range.upperBound...].prefix { $0 != "\"" })
            }
            #expect(titles == Array(0..<published), "every notification once, in order")
        }
    }
}

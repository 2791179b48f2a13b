import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Every connection has a deadline until it is useful: half-sent requests, idle keep-alive
/// connections and one address's crowd of pending sockets, against real sockets.
@Suite struct RequestDeadlineTests {
    /// Raw TCP connections to a node, each closed when the scope ends however it ends.
    final class RawConnections: Sendable {
        struct Connection: Sendable {
            let channel: any Channel
            let inbox: Inbox<ByteBuffer>
            /// Taken before connecting.
            let opened: NIODeadline
        }

        private let connections = NIOLockedValueBox<[Connection]>([])
        /// When each connection was closed by the server, by index.
        private let closedAt = NIOLockedValueBox<[Int: NIODeadline]>([:])
        let port: Int

        init(port: Int) {
            self.port = port
        }

        /// Opens a connection and writes `bytes` (half a request, say).
        @discardableResult
        func open(writing bytes: String) async throws -> Int {
            let inbox = Inbox<ByteBuffer>()
            // Before connecting: the node cannot have accepted the connection (and started
            // its deadline) earlier than this.
            let opened = NIODeadline.now()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox)) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            let index = connections.withLockedValue { connections in
                connections.append(Connection(channel: channel, inbox: inbox, opened: opened))
                return connections.count - 1
            }
            channel.closeFuture.whenComplete { [closedAt] _ in closedAt.withLockedValue { $0[index] = .now() } }
            if !bytes.isEmpty { try await channel.writeAndFlush(ByteBuffer(string: bytes)) }
            return index
        }

        subscript(index: Int) -> Connection { connections.withLockedValue { $0[index] } }
        var count: Int { connections.withLockedValue { $0.count } }
        var closedCount: Int { closedAt.withLockedValue { $0.count } }
        func closed(_ index: Int) -> NIODeadline? { closedAt.withLockedValue { $0[index] } }

        /// Reads from connection `index` until `marker` has arrived; returns what was read.
        func read(_ index: Int, until marker: String, timeout: TimeAmount = .seconds(5)) async throws -> String {
            var text = ""
            while !text.contains(marker) {
                switch await self[index].inbox.next(timeout: timeout) {
                case .element(let chunk): text += String(buffer: chunk)
                case .finished: throw TimeoutError(what: "'\(marker)' before the connection closed; got: \(text)")
                case .timedOut: throw TimeoutError(what: "'\(marker)'; got: \(text)")
                }
            }
            return text
        }

        func closeAll() {
            for connection in connections.withLockedValue({ $0 }) { connection.channel.close(promise: nil) }
        }
    }

    static func withConnections<T>(_ port: Int, _ body: (RawConnections) async throws -> T) async throws -> T {
        let connections = RawConnections(port: port)
        do {
            let result = try await body(connections)
            connections.closeAll()
            return result
        } catch {
            connections.closeAll()
            throw error
        }
    }

    static let halfRequest = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    static let fullRequest = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    @Test func halfOpenRequestsAreClosedAfterTheHeaderTimeoutWhileOthersAreServed() async throws {
        _ = FileDescriptorLimit.raiseToHardLimit()
        let timeout = TimeAmount.seconds(2)
        try await withNode({
            $0.connectionLimits.headerTimeout = timeout
            $0.connectionLimits.maxPendingPerAddress = 0
        }) { node in
            try await Self.withConnections(node.port) { raw in
                for _ in 0..<1000 { try await raw.open(writing: Self.halfRequest) }
                // Everyone else is served meanwhile: REST, and a WebSocket subscriber.
                let health = try await node.request(.GET, "/health")
                #expect(health.status == 200)
                let subscriber = try await node.subscriber("still-served")
                let published = try await node.request(.POST, "/api/notify/still-served", body: #"{"title":"hi"}"#)
                #expect(published.status == 200)
                #expect(try await subscriber.nextNotification().title == "hi")
                #expect(raw.closedCount < 1000)

                try await waitUntil("every half-open request to be closed", timeout: .seconds(10), every: .milliseconds(50)) {
                    raw.closedCount == 1000
                }
                // Each was closed by its deadline, not before it.
                let early = (0..<1000).filter { index in
                    guard let closed = raw.closed(index) else { return true }
                    return closed - raw[index].opened < timeout - .milliseconds(100)
                }
                #expect(early.isEmpty, "closed before the header timeout: \(early.count)")
                await subscriber.close()
            }
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAndABusyOneIsNot() async throws {
        let idle = TimeAmount.milliseconds(1500)
        try await withNode({ $0.connectionLimits.idleTimeout = idle }) { node in
            try await Self.withConnections(node.port) { raw in
                let index = try await raw.open(writing: Self.fullRequest)
                _ = try await raw.read(index, until: "\r\n\r\n{")
                // A second request within the idle timeout is answered on the same connection.
                // Taken before the write: the answer, and so the idle deadline's start, comes
                // after it (a moment taken after the write could already be after the answer).
                let sent = NIODeadline.now()
                try await raw[index].channel.writeAndFlush(ByteBuffer(string: Self.fullRequest))
                _ = try await raw.read(index, until: "\r\n\r\n{")
                try await waitUntil("the idle connection to be closed", timeout: .seconds(5)) { raw.closed(index) != nil }
                let closed = try #require(raw.closed(index))
                #expect(closed - sent >= idle)
            }
        }
    }

    @Test func oneAddressHoldsOnlySoManyPendingConnections() async throws {
        try await withNode({
            $0.connectionLimits.maxPendingPerAddress = 10
            $0.connectionLimits.headerTimeout = .seconds(30)
        }) { node in
            try await Self.withConnections(node.port) { raw in
                for _ in 0..<10 { try await raw.open(writing: Self.halfRequest) }
                let refused = try await raw.open(writing: "")
                // Closed at once, long before the header timeout.
                try await waitUntil("the 11th pending connection to be closed", timeout: .seconds(5)) { raw.closed(refused) != nil }
                #expect(raw.closedCount == 1)
                // One of the ten completes its request: it is answered and no longer pending,
                // so a new connection gets its place and is answered too.
                try await raw[0].channel.writeAndFlush(ByteBuffer(string: "1\r\n\r\n"))
                _ = try await raw.read(0, until: "200 OK")
                let next = try await raw.open(writing: Self.fullRequest)
                #expect(try await raw.read(next, until: "\r\n\r\n{").contains("200 OK"))
                #expect(raw.closed(next) == nil)
            }
        }
    }

    @Test func webSocketsAndStreamsOutliveTheHTTPDeadlines() async throws {
        try await withNode({
            $0.connectionLimits.headerTimeout = .milliseconds(300)
            $0.connectionLimits.idleTimeout = .milliseconds(300)
        }) { node in
            let subscriber = try await node.subscriber("long")
            try await withEventStream(node.baseURL + "/sse?channel=long") { stream, _ in
                #expect(try await stream.nextEvent().name == "welcome")
                #expect(try await stream.nextEvent().name == "subscribed")
                // A connection opened after both, idle and silent, shows the deadlines have
                // passed: once the node closed it, the upgraded socket and the stream being
                // served — older still — are past theirs too, and must still be open.
                try await Self.withConnections(node.port) { raw in
                    let idle = try await raw.open(writing: "")
                    try await waitUntil("the idle connection's deadline", timeout: .seconds(5)) { raw.closed(idle) != nil }
                }
                let published = try await node.request(.POST, "/api/notify/long", body: #"{"title":"later"}"#)
                #expect(published.status == 200)
                #expect(try await subscriber.nextNotification().title == "later")
                #expect(try await stream.nextNotification().0.title == "later")
            }
            await subscriber.close()
        }
    }
}

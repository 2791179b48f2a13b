import Foundation
import HeraldProtocol
import HeraldSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// A typed, reconnecting client for a Herald node's `/ws`.
///
/// Received server messages and connection-state changes arrive on ``events``. The client
/// answers the server's `ping` with `pong` itself, and after a drop it reconnects with
/// exponential backoff plus jitter (or after the delay a `server_shutdown` suggested), then
/// re-sends its name and every subscription it holds — each with `since`, the position of the
/// last notification it received on that channel, so that what was published meanwhile is
/// replayed once and in order, or `subscribed` says `recovered: false`. The caller does
/// nothing. ``run()`` drives it until ``close()`` or until the attempts allowed by
/// ``Configuration/maxAttempts`` are used up.
public final class HeraldClient: Sendable {
    public struct Configuration: Sendable {
        /// First reconnect delay; doubles per failed attempt up to ``backoffCap``.
        public var backoffBase: Duration = .milliseconds(200)
        public var backoffCap: Duration = .seconds(10)
        /// Consecutive failed attempts before giving up; `nil` retries forever.
        public var maxAttempts: Int? = nil
        /// Extra handshake headers.
        public var headers: [(String, String)] = []
        /// Connection token, sent as the first message (`auth`) of every connection. Sent as
        /// a message rather than `?token=` so that it never lands in a proxy's access log.
        public var token: String? = nil
        /// Fetches a fresh token before every connection (instead of ``token``), so a
        /// connection closed because its token expired (4002) comes back with a new one.
        /// Without it, a 4002 close ends ``run()`` like a 4001: the same token cannot succeed.
        public var tokenProvider: (@Sendable () async throws -> String)? = nil
        /// TLS settings for `wss://` URLs (default: the system's trust roots).
        public var tls: TLSConfiguration? = nil

        public init() {}
    }

    /// What happened to the connection.
    public enum State: Sendable, Equatable {
        case connecting(attempt: Int)
        /// Connected; `clientId` and `node` come from the server's `welcome`.
        case connected(clientId: String, node: String)
        /// Lost; trying again after `delay`.
        case reconnecting(attempt: Int, delay: Duration)
        /// Closed by ``close()``, or attempts exhausted.
        case closed
    }

    public enum Event: Sendable {
        case state(State)
        case message(ServerMessage)
    }

    public enum ClientError: Error, CustomStringConvertible {
        case notConnected
        case invalidURL(String)

        public var description: String {
            switch self {
            case .notConnected: "not connected"
            case .invalidURL(let url): "not a ws:// URL: \(url)"
            }
        }
    }

    private struct Session {
        var channel: (any Channel)?
        var subscriptions: [String] = []
        /// Per channel, the position of the last notification received (or where the
        /// subscription started): what a resubscribe asks to continue from.
        var positions: [String: StreamPosition] = [:]
        var name: String?
        var closed = false
        /// The delay a `server_shutdown` suggested for the next reconnect.
        var reconnectHint: Duration?
    }

    public let host: String
    public let port: Int
    public let path: String
    /// Set for `wss://`.
    private let tls: TLSConfiguration?
    public let configuration: Configuration
    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let session = Mutex(Session())
    private let group: any EventLoopGroup

    /// - Parameter url: `ws://` or `wss://host[:port][/path]` (path defaults to `/ws`).
    public init(url: String, configuration: Configuration = .init(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        guard let components = URLComponents(string: url), components.scheme == "ws" || components.scheme == "wss",
            let host = components.host
        else {
            throw ClientError.invalidURL(url)
        }
        let secure = components.scheme == "wss"
        self.host = host
        self.port = components.port ?? (secure ? 443 : 80)
        self.tls = secure ? (configuration.tls ?? .makeClientConfiguration()) : nil
        self.path = components.path.isEmpty ? "/ws" : components.path + (components.query.map { "?\($0)" } ?? "")
        self.configuration = configuration
        self.group = group
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(10_000))
    }

    // MARK: Commands

    /// Subscribes now if connected, and on every (re)connection: while disconnected the
    /// subscription is only recorded, not an error.
    public func subscribe(_ channel: String) async throws {
        let connection = session.withLock { session -> (any Channel)? in
            if !session.subscriptions.contains(channel) { session.subscriptions.append(channel) }
            return session.channel
        }
        if let connection { try await Self.write(.subscribe(channel: channel), to: connection) }
    }

    public func unsubscribe(_ channel: String) async throws {
        let connection = session.withLock { session -> (any Channel)? in
            session.subscriptions.removeAll { $0 == channel }
            session.positions[channel] = nil
            return session.channel
        }
        if let connection { try await Self.write(.unsubscribe(channel: channel), to: connection) }
    }

    /// Sets the name now if connected, and on every (re)connection.
    public func setName(_ name: String) async throws {
        let connection = session.withLock { session -> (any Channel)? in
            session.name = name
            return session.channel
        }
        if let connection { try await Self.write(.setName(name), to: connection) }
    }

    /// Sends one message; throws ``ClientError/notConnected`` while disconnected.
    public func send(_ message: ClientMessage) async throws {
        guard let channel = session.withLock({ $0.channel }) else { throw ClientError.notConnected }
        try await Self.write(message, to: channel)
    }

    /// The channels the client holds (and restores after a reconnect).
    public var subscriptions: [String] { session.withLock { $0.subscriptions } }

    /// The position the client would resume `channel` from.
    public func position(of channel: String) -> StreamPosition? {
        session.withLock { $0.positions[channel] }
    }

    /// Keeps the positions up to date from what the server sends.
    private func observe(_ message: ServerMessage) {
        session.withLock { session in
            switch message {
            case .notification(let notification):
                if let position = notification.position { session.positions[notification.channel] = position }
            case .subscribed(let channel, _, let position, let recovery):
                // A recovered subscription continues from where the client was: the replayed
                // notifications move the position on. Otherwise it starts at the channel's
                // latest position (a fresh subscription, or one that could not be recovered).
                if recovery?.recovered != true, let position { session.positions[channel] = position }
            case .serverShutdown(_, let reconnectAfter):
                session.reconnectHint = reconnectAfter.map { .milliseconds($0) }
            default:
                break
            }
        }
    }

    /// Stops for good: closes the connection and ends ``run()`` and ``events``.
    public func close() {
        let channel = session.withLock { session -> (any Channel)? in
            session.closed = true
            return session.channel
        }
        channel?.close(promise: nil)
    }

    // MARK: Connection loop

    /// Connects and keeps reconnecting until ``close()`` or the attempts run out.
    public func run() async {
        var failures = 0
        var attempt = 0
        var backoff = Backoff(base: configuration.backoffBase, cap: configuration.backoffCap)
        while !isClosed, !Task.isCancelled {
            attempt += 1
            continuation.yield(.state(.connecting(attempt: attempt)))
            var refused = false
            do {
                let (channel, closed, handler) = try await connect()
                failures = 0
                attempt = 0
                backoff.reset()
                await withTaskCancellationHandler {
                    try? await closed.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                session.withLock { $0.channel = nil }
                refused = Self.isFinal(closeCode: handler.closeCode, canRefresh: configuration.tokenProvider != nil)
            } catch {
                failures += 1
            }
            if isClosed || Task.isCancelled || refused { break }
            if let maxAttempts = configuration.maxAttempts, failures >= maxAttempts { break }
            let hint = session.withLock { session -> Duration? in
                defer { session.reconnectHint = nil }
                return session.reconnectHint
            }
            let delay = hint ?? backoff.next()
            continuation.yield(.state(.reconnecting(attempt: failures + 1, delay: delay)))
            try? await Task.sleep(for: delay)
        }
        continuation.yield(.state(.closed))
        continuation.finish()
    }

    private var isClosed: Bool { session.withLock { $0.closed } }

    /// Whether the server's close code says that reconnecting cannot succeed, or must not be
    /// tried: 4001 (no valid token), 4003 (the application disconnected this user), or 4002
    /// (token expired) when there is no way to get a fresh one.
    public static func isFinal(closeCode: UInt16?, canRefresh: Bool) -> Bool {
        switch closeCode {
        case CloseCode.unauthorized.rawValue, CloseCode.disconnectedByServer.rawValue: true
        case CloseCode.tokenExpired.rawValue: !canRefresh
        default: false
        }
    }

    /// One connection: handshake, wait for `welcome`, restore name and subscriptions.
    private func connect() async throws -> (any Channel, EventLoopFuture<Void>, ClientConnectionHandler) {
        let handler = ClientConnectionHandler(continuation: continuation) { [weak self] message in self?.observe(message) }
        let channel = try await WebSocketDialer.connect(
            host: host, port: port, path: path, headers: configuration.headers, tls: tls, group: group
        ) { pipeline in
            try pipeline.addHandler(handler)
        }
        let greeting = try await handler.welcome(timeout: .seconds(10), on: channel.eventLoop)
        guard case .welcome(let clientId, let node, _) = greeting else { throw ClientError.notConnected }
        let (name, subscriptions, positions) = session.withLock { session in
            session.channel = channel
            return (session.name, session.subscriptions, session.positions)
        }
        continuation.yield(.state(.connected(clientId: clientId, node: node)))
        continuation.yield(.message(greeting))
        // The node holds later messages until it has verified the token, so subscriptions can
        // follow at once.
        let token = try await configuration.tokenProvider?() ?? configuration.token
        if let token { try await Self.write(.auth(token: token), to: channel) }
        if let name { try await Self.write(.setName(name), to: channel) }
        for name in subscriptions { try await Self.write(.subscribe(channel: name, since: positions[name]), to: channel) }
        if isClosed { channel.close(promise: nil) }
        return (channel, channel.closeFuture, handler)
    }

    static func write(_ message: ClientMessage, to channel: any Channel) async throws {
        let data = try JSONEncoder().encode(message)
        let frame = WebSocketFrame(
            fin: true, opcode: .text, maskKey: .random(), data: channel.allocator.buffer(bytes: data))
        try await channel.writeAndFlush(frame)
    }
}

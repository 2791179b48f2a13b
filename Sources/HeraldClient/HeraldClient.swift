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
/// nothing. A subscribe the server's backend could not be asked about (`error`
/// `temporarily_unavailable` with the channel) is sent again with the same backoff, and a
/// connection the backend could not judge (close 4503) is retried like a drop; one the backend
/// refused (another code in 4000–4999) ends ``run()``. ``run()`` drives it until ``close()``
/// or until the attempts allowed by ``Configuration/maxAttempts`` are used up.
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
        /// Acknowledge every notification once it reached ``HeraldClient/events`` (`ack`,
        /// gathered per channel and sent once per ``ackInterval``). `false`: call ``ack(_:)``
        /// once the application has handled one — in a `durable` namespace the server keeps the
        /// user's position there, and the user's other connections resume after it.
        public var autoAck = true
        public var ackInterval: Duration = .seconds(1)

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
        /// Subscribes to send again because the backend could not be asked, with their backoff.
        var resubscribes: [String: Backoff] = [:]
        /// The highest position per channel not yet acknowledged, and whether a flush is due.
        var acks: [String: StreamPosition] = [:]
        var ackScheduled = false
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

    /// Acknowledges `notification`'s channel up to it (cumulative): with
    /// ``Configuration/autoAck`` off, call it once the application has handled it.
    public func ack(_ notification: HeraldNotification) {
        guard let position = notification.position else { return }
        session.withLock { scheduleAck(notification.channel, position, &$0) }
    }

    private func scheduleAck(_ channel: String, _ position: StreamPosition, _ session: inout Session) {
        if let pending = session.acks[channel], pending.epoch == position.epoch, pending.offset >= position.offset { return }
        session.acks[channel] = position
        guard !session.ackScheduled, let connection = session.channel else { return }
        session.ackScheduled = true
        let nanoseconds = configuration.ackInterval.components.seconds * 1_000_000_000 + configuration.ackInterval.components.attoseconds / 1_000_000_000
        connection.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { self.flushAcks() }
    }

    /// Sends the gathered acks (each channel's highest), one message per channel.
    private func flushAcks() {
        let (connection, acks) = session.withLock { session in
            session.ackScheduled = false
            defer { session.acks = [:] }
            return (session.channel, session.acks.filter { session.subscriptions.contains($0.key) })
        }
        guard let connection else { return }
        for (channel, position) in acks.sorted(by: { $0.key < $1.key }) {
            guard let frame = try? Self.frame(.ack(channel: channel, offset: position.offset, epoch: position.epoch), allocator: connection.allocator) else { continue }
            connection.writeAndFlush(frame, promise: nil)
        }
    }

    /// Keeps the positions up to date from what the server sends.
    private func observe(_ message: ServerMessage) {
        let retry = session.withLock { session -> (channel: any Channel, name: String, delay: Duration)? in
            switch message {
            case .notification(let notification):
                if let position = notification.position {
                    session.positions[notification.channel] = position
                    if configuration.autoAck { scheduleAck(notification.channel, position, &session) }
                }
            case .subscribed(let channel, _, let position, let recovery):
                // A recovered subscription continues from where the client was: the replayed
                // notifications move the position on. Otherwise it starts at the channel's
                // latest position (a fresh subscription, or one that could not be recovered).
                if recovery?.recovered != true, let position { session.positions[channel] = position }
                session.resubscribes[channel] = nil
            case .serverShutdown(_, let reconnectAfter):
                session.reconnectHint = reconnectAfter.map { .milliseconds($0) }
            case .error(let error):
                guard error.code == .temporarilyUnavailable, let name = error.channel, session.subscriptions.contains(name),
                    let channel = session.channel
                else { return nil }
                var backoff = session.resubscribes[name] ?? Backoff(base: configuration.backoffBase, cap: configuration.backoffCap)
                let delay = backoff.next()
                session.resubscribes[name] = backoff
                return (channel, name, delay)
            default:
                break
            }
            return nil
        }
        guard let retry else { return }
        // On the connection's loop, so a connection that is gone by then is simply skipped.
        retry.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(retry.delay / .nanoseconds(1)))) { [weak self] in
            guard let self, self.session.withLock({ $0.channel === retry.channel && $0.subscriptions.contains(retry.name) }) else {
                return
            }
            let message = ClientMessage.subscribe(channel: retry.name, since: self.position(of: retry.name))
            if let frame = try? Self.frame(message, allocator: retry.channel.allocator) {
                retry.channel.writeAndFlush(frame, promise: nil)
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
            let handler = ClientConnectionHandler(continuation: continuation) { [weak self] message in self?.observe(message) }
            do {
                let (channel, closed) = try await connect(handler)
                failures = 0
                attempt = 0
                backoff.reset()
                await withTaskCancellationHandler {
                    try? await closed.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                session.withLock { $0.channel = nil }
            } catch {
                failures += 1
            }
            // Also when the close came instead of `welcome` (a connect hook's refusal).
            refused = Self.isFinal(closeCode: handler.closeCode, canRefresh: configuration.tokenProvider != nil)
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
    /// tried: 4001 (no valid token), 4003 (the application disconnected this user), a code the
    /// backend's connect hook refused with (the rest of 4000–4999, but 4503: the backend could
    /// not be asked, try again), or 4002 (token expired) when there is no way to get a fresh one.
    public static func isFinal(closeCode: UInt16?, canRefresh: Bool) -> Bool {
        switch closeCode {
        case CloseCode.tokenExpired.rawValue: !canRefresh
        case CloseCode.backendUnavailable.rawValue: false
        case .some(4000...4999): true
        default: false
        }
    }

    /// One connection: handshake, wait for `welcome`, restore name and subscriptions.
    private func connect(_ handler: ClientConnectionHandler) async throws -> (any Channel, EventLoopFuture<Void>) {
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
        return (channel, channel.closeFuture)
    }

    static func write(_ message: ClientMessage, to channel: any Channel) async throws {
        try await channel.writeAndFlush(try frame(message, allocator: channel.allocator))
    }

    /// A client message as a masked text frame.
    static func frame(_ message: ClientMessage, allocator: ByteBufferAllocator) throws -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: allocator.buffer(bytes: try JSONEncoder().encode(message)))
    }
}

import HeraldProtocol
import NIOCore

/// The lifecycle of one WebSocket connection, as a pure state machine: open, closing, closed;
/// the messages held while an operation is in flight (an `auth` token being verified, a
/// `subscribe` waiting for the broker), so that a client's messages are answered in the order
/// it sent them; the deadlines (auth, token expiry, the close handshake) and the heartbeat.
///
/// It performs no I/O and reads no clock: every event passes the time in, and every decision
/// comes back as an ``Action`` that the connection handler carries out. The handler keeps one
/// timer, armed for ``nextDeadline`` after every event. What a message *means* is
/// ``ClientSession``'s business; this machine decides when messages may be handled at all.
public struct ConnectionStateMachine: Sendable {
    public struct Configuration: Sendable {
        /// Server `ping` interval; `nil` turns the heartbeat off (the echo endpoint).
        public var pingInterval: TimeAmount?
        /// Silence after which the connection is closed with 1000/`timeout`.
        public var pingTimeout: TimeAmount
        /// How long a connection that must authenticate may take to send `auth`.
        public var authTimeout: TimeAmount
        /// How long we wait for the peer's close frame after sending ours.
        public var closeTimeout: TimeAmount
        /// Messages a client may send behind its `auth` before the verdict; more is a flood.
        public var maxHeldBehindAuth: Int
        /// Messages held behind any other operation. The handler stops reading while one is in
        /// flight, so only what one read brought can pile up; this bounds even that.
        public var maxHeld: Int

        public init(
            pingInterval: TimeAmount?, pingTimeout: TimeAmount, authTimeout: TimeAmount = .seconds(10),
            closeTimeout: TimeAmount = .seconds(2), maxHeldBehindAuth: Int = 64, maxHeld: Int = 4096
        ) {
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
            self.authTimeout = authTimeout
            self.closeTimeout = closeTimeout
            self.maxHeldBehindAuth = maxHeldBehindAuth
            self.maxHeld = maxHeld
        }
    }

    public enum Action: Equatable, Sendable {
        case none
        /// Send this message.
        case send(ServerMessage)
        /// Send `error` (if any), then a close frame with `code`; the TCP connection closes when
        /// the peer answers or at the close deadline.
        case close(CloseCode, reason: String, error: ProtocolError?)
        /// Echo the peer's close frame, then close the TCP connection.
        case answerClose(code: UInt16?)
        /// Close the TCP connection at once, without a close frame.
        case closeSocket
        /// The connection's expiry passed and the backend may extend it: ask its refresh hook,
        /// then call ``expiryRefreshed(expiresAtMillis:now:wallClockMillis:)`` or close.
        case refreshExpiry
    }

    /// What to do with a frame that arrived.
    public enum FrameDisposition: Equatable, Sendable {
        /// Hand it to the frame assembler.
        case process
        /// Ignore it (the connection is closing or closed).
        case ignore
        /// The peer answered our close frame: close the TCP connection.
        case closeSocket
    }

    /// What to do with a complete text message.
    public enum TextDisposition: Equatable, Sendable {
        /// Handle it now (``ClientSession``).
        case handle(ByteBuffer)
        /// Kept until the operation in flight is done.
        case held
        /// Do this instead (`.none`: the connection is no longer open, drop the message).
        case perform(Action)
    }

    /// An operation that must finish before the client's next message is handled.
    public enum Operation: Equatable, Sendable {
        /// An `auth` token is being verified.
        case authentication
        /// Anything else with an asynchronous answer (`subscribe`).
        case other
    }

    /// The verdict on an `auth` token.
    public enum AuthenticationOutcome: Equatable, Sendable {
        /// Accepted: reply `authenticated`, then handle the held messages, in order.
        case accepted(ClientIdentity, held: [ByteBuffer])
        case refused(Action)
        /// The connection closed meanwhile.
        case ignore
    }

    enum State: Equatable, Sendable {
        case open
        /// Our close frame went out; waiting for the peer's until the deadline.
        case closing(deadline: NIODeadline)
        case closed
    }

    public let configuration: Configuration
    private(set) var state = State.open
    private var lastHeard: NIODeadline
    private var lastPing: NIODeadline
    /// The operation in flight, if any.
    private(set) var operation: Operation?
    /// Messages that arrived behind it, in order.
    private var held: [ByteBuffer] = []
    /// When a connection that owes a token is closed with 4001.
    private var authDeadline: NIODeadline?
    /// When the connection's token expires (4002).
    private var expiryDeadline: NIODeadline?
    /// The expiry came from the backend's connect hook, and its refresh hook may extend it.
    private var refreshable = false
    private var unregistered = false
    /// Why the connection ended (or is ending): the first cause, for `herald_disconnects_total`.
    public private(set) var disconnectReason: DisconnectReason?

    /// The furthest an expiry deadline is set (100 years): `TimeAmount` counts nanoseconds in
    /// an `Int64` (292 years), so a far-future `exp` would overflow it.
    public static let longestTokenLifetime: TimeAmount = .hours(100 * 365 * 24)

    public init(configuration: Configuration, now: NIODeadline) {
        self.configuration = configuration
        self.lastHeard = now
        self.lastPing = now
    }

    // MARK: Events

    /// The WebSocket handshake completed.
    /// - Parameters:
    ///   - handshake: the verdict on the handshake's `?token=`, if it carried one.
    ///   - awaitsToken: the node requires a token and the handshake brought none.
    ///   - refreshable: the identity's expiry may be extended (``Action/refreshExpiry``) rather
    ///     than end the connection.
    /// - Returns: `.none` to go on (send `welcome`), or the refusal.
    public mutating func opened(
        handshake: Result<ClientIdentity, ProtocolError>?, awaitsToken: Bool, refreshable: Bool = false, now: NIODeadline,
        wallClockMillis: Int64
    ) -> Action {
        self.refreshable = refreshable
        switch handshake {
        case .failure(let error):
            return refuse(error, now: now)
        case .success(let identity):
            expiryDeadline = Self.deadline(of: identity, now: now, wallClockMillis: wallClockMillis)
        case nil:
            if awaitsToken { authDeadline = now + configuration.authTimeout }
        }
        return .none
    }

    /// A frame arrived: the peer is alive.
    public mutating func frameReceived(isClose: Bool, now: NIODeadline) -> FrameDisposition {
        lastHeard = now
        switch state {
        case .open: return .process
        case .closing: return isClose ? .closeSocket : .ignore
        case .closed: return .ignore
        }
    }

    /// A complete text message arrived.
    public mutating func textReceived(_ text: ByteBuffer, now: NIODeadline) -> TextDisposition {
        guard state == .open else { return .perform(.none) }
        guard let operation else { return .handle(text) }
        let limit = operation == .authentication ? configuration.maxHeldBehindAuth : configuration.maxHeld
        guard held.count < limit else {
            let reason = operation == .authentication ? "too many messages before auth completed" : "too many messages in flight"
            return .perform(close(.policyViolation, reason: reason, error: nil, now: now))
        }
        held.append(text)
        return .held
    }

    /// The handler started `operation`: later messages wait until ``operationFinished()``
    /// (or ``authenticationFinished(_:now:wallClockMillis:)``).
    public mutating func operationStarted(_ operation: Operation) {
        precondition(self.operation == nil, "one operation at a time")
        self.operation = operation
    }

    /// The operation is done. Returns the held messages, to be passed to
    /// ``textReceived(_:now:)`` again in order (one of them may start the next operation, and
    /// the rest are held again behind it).
    public mutating func operationFinished() -> [ByteBuffer] {
        operation = nil
        defer { held = [] }
        return state == .open ? held : []
    }

    /// Whether an operation is in flight (the handler stops reading meanwhile).
    public var isBusy: Bool { operation != nil }

    /// The token of an `auth` message was verified (or refused).
    public mutating func authenticationFinished(
        _ verdict: Result<ClientIdentity, ProtocolError>, now: NIODeadline, wallClockMillis: Int64
    ) -> AuthenticationOutcome {
        let messages = operationFinished()
        guard state == .open else { return .ignore }
        switch verdict {
        case .failure(let error):
            return .refused(refuse(error, now: now))
        case .success(let identity):
            authDeadline = nil
            expiryDeadline = Self.deadline(of: identity, now: now, wallClockMillis: wallClockMillis)
            return .accepted(identity, held: messages)
        }
    }

    /// The peer sent a close frame (already validated by ``FrameAssembler``).
    public mutating func peerClosed(code: UInt16?) -> Action {
        guard state == .open else { return .none }
        state = .closed
        disconnectReason = disconnectReason ?? .normal
        return .answerClose(code: code)
    }

    /// The handler (or the rules) decided to close with `code`.
    public mutating func close(
        _ code: CloseCode, reason: String, error: ProtocolError?, now: NIODeadline, cause: DisconnectReason? = nil
    ) -> Action {
        guard state == .open else { return .none }
        state = .closing(deadline: now + configuration.closeTimeout)
        disconnectReason = disconnectReason ?? cause ?? DisconnectReason(closing: code)
        return .close(code, reason: reason, error: error)
    }

    /// The node is shutting down: `server_shutdown` has been queued; close with 1001.
    public mutating func shutdown(now: NIODeadline) -> Action {
        close(.goingAway, reason: "server shutdown", error: nil, now: now)
    }

    /// The periodic heartbeat sweep of the connection's event loop.
    public mutating func heartbeat(now: NIODeadline, wallClockMillis: Int64) -> Action {
        guard state == .open, let interval = configuration.pingInterval else { return .none }
        if now - lastHeard >= configuration.pingTimeout {
            return close(.normal, reason: "timeout", error: nil, now: now, cause: .heartbeatTimeout)
        }
        if now - lastPing >= interval {
            lastPing = now
            return .send(.ping(timestamp: wallClockMillis))
        }
        return .none
    }

    /// The handler's timer fired; ``nextDeadline`` said when.
    public mutating func deadlineReached(now: NIODeadline) -> Action {
        if case .closing(let deadline) = state {
            guard now >= deadline else { return .none }
            state = .closed
            return .closeSocket
        }
        guard state == .open else { return .none }
        if let authDeadline, now >= authDeadline {
            let millis = configuration.authTimeout.nanoseconds / 1_000_000
            return refuse(ProtocolError(.unauthorized, "no auth message within \(millis) ms"), now: now)
        }
        if let expiryDeadline, now >= expiryDeadline {
            guard refreshable else {
                return refuse(ProtocolError(.tokenExpired, "token expired; reconnect with a fresh one"), now: now)
            }
            // No deadline while the backend is asked: its answer sets the next one.
            self.expiryDeadline = nil
            return .refreshExpiry
        }
        return .none
    }

    /// The backend extended the connection to `expiresAtMillis` (Unix milliseconds).
    public mutating func expiryRefreshed(expiresAtMillis: Int64, now: NIODeadline, wallClockMillis: Int64) -> Action {
        guard state == .open else { return .none }
        guard expiresAtMillis > wallClockMillis else {
            return refuse(ProtocolError(.tokenExpired, "the backend extended the connection to a time already past"), now: now)
        }
        expiryDeadline = now + .milliseconds(min(expiresAtMillis - wallClockMillis, Self.longestTokenLifetime.nanoseconds / 1_000_000))
        return .none
    }

    /// NIO reports the outbound queue over its limit: the client is not reading. A close frame
    /// would only queue behind what it has not read, so the TCP connection closes at once.
    public mutating func writabilityLost() -> Action {
        guard state != .closed else { return .none }
        state = .closed
        disconnectReason = disconnectReason ?? .slowConsumer
        return .closeSocket
    }

    /// The TCP connection is gone. `true` exactly once: the moment to leave the Hub.
    public mutating func channelClosed() -> Bool {
        state = .closed
        disconnectReason = disconnectReason ?? .connectionLost
        held = []
        defer { unregistered = true }
        return !unregistered
    }

    // MARK: Queries

    /// Whether frames may still be written (publications, replies).
    public var isOpen: Bool { state == .open }

    /// The earliest moment ``deadlineReached(now:)`` has something to do; `nil` for none.
    public var nextDeadline: NIODeadline? {
        switch state {
        case .closing(let deadline): return deadline
        case .closed: return nil
        case .open: return [authDeadline, expiryDeadline].compactMap { $0 }.min()
        }
    }

    // MARK: Rules

    /// Sends the error, then closes with 4002 for an expired token and 4001 for anything else.
    private mutating func refuse(_ error: ProtocolError, now: NIODeadline) -> Action {
        close(error.code == .tokenExpired ? .tokenExpired : .unauthorized, reason: error.code.rawValue, error: error, now: now)
    }

    /// When a token's `exp` passes, on the monotonic clock.
    static func deadline(of identity: ClientIdentity, now: NIODeadline, wallClockMillis: Int64) -> NIODeadline {
        let remaining = identity.expiresAtMillis.subtractingReportingOverflow(wallClockMillis)
        let millis = remaining.overflow ? Int64.max : remaining.partialValue
        let clamped = min(max(millis, 0), longestTokenLifetime.nanoseconds / 1_000_000)
        return now + .milliseconds(clamped)
    }
}

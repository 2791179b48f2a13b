import HeraldProtocol

/// Why a connection ended, as `herald_disconnects_total` counts it.
///
/// Decided where the end is decided — ``ConnectionStateMachine`` for WebSockets, the stream's
/// writer for SSE — from the first cause: a timeout that leads to a close frame the client
/// then answers is still a timeout.
public enum DisconnectReason: String, Sendable, CaseIterable {
    /// The client closed (close frame, or the stream's reader went away).
    case normal
    /// The TCP connection dropped without a close handshake.
    case connectionLost = "connection_lost"
    /// No frame from the client within `HERALD_PING_TIMEOUT`.
    case heartbeatTimeout = "heartbeat_timeout"
    /// The client stopped reading: its outbound queue passed `HERALD_SEND_QUEUE_BYTES`.
    case slowConsumer = "slow_consumer"
    /// The client sent faster than its rate limit allows, or flooded an operation.
    case rateLimit = "rate_limit"
    /// Malformed frames or messages the connection cannot survive (1002, 1003, 1007, 1009).
    case protocolError = "protocol_error"
    /// No token, a bad one, or none in time (4001).
    case unauthorized
    /// The token's `exp` passed during the session (4002).
    case tokenExpired = "token_expired"
    /// The node is shutting down (1001).
    case shutdown
    /// `POST /api/users/{user}/disconnect` (4003).
    case serverDisconnect = "server_disconnect"
    /// The backend's connect hook could not be asked (4503).
    case backendUnavailable = "backend_unavailable"

    /// The reason behind a close the server decided, from its code.
    public init(closing code: CloseCode) {
        switch code {
        case .goingAway: self = .shutdown
        case .unauthorized: self = .unauthorized
        case .tokenExpired: self = .tokenExpired
        case .disconnectedByServer: self = .serverDisconnect
        case .backendUnavailable: self = .backendUnavailable
        case .policyViolation: self = .rateLimit
        case .normal: self = .normal
        default: self = .protocolError
        }
    }
}

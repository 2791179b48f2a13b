/// WebSocket close codes Herald sends, with the reason each is used for.
///
/// Standard codes come from RFC 6455 §7.4.1. Authentication has no standard code, so Herald
/// uses codes from the private range (4000–4999); the close reason text says more. A client
/// should not reconnect after 4001 or 4003 (after 4002 only with a fresh token).
public enum CloseCode: UInt16, Sendable, Equatable {
    /// Normal closure; also sent with reason `timeout` when the heartbeat gives up on a client.
    case normal = 1000
    /// The node is shutting down (after a `server_shutdown` message).
    case goingAway = 1001
    /// The peer broke RFC 6455 (unmasked frame, reserved bits, bad fragmentation, bad close frame).
    case protocolError = 1002
    /// A binary frame on `/ws`, which speaks JSON text only.
    case unsupportedData = 1003
    /// Reserved: "no status code was present". Never sent, only reported.
    case noStatus = 1005
    /// Reserved: the connection dropped without a close frame. Never sent, only reported.
    case abnormal = 1006
    /// A text message that is not valid UTF-8.
    case invalidPayload = 1007
    /// Policy violation: a client that keeps flooding after `rate_limited` errors.
    case policyViolation = 1008
    /// A frame or message over the configured maximum size.
    case messageTooBig = 1009
    /// Unexpected server condition.
    case internalError = 1011
    /// The node refuses new work right now.
    case tryAgainLater = 1013
    /// No valid connection token where one is required: missing, malformed, forged, or not
    /// sent in time. Reconnecting with the same token will not help.
    case unauthorized = 4001
    /// The connection token's `exp` passed (at connect time or during the session): fetch a
    /// fresh token and reconnect.
    case tokenExpired = 4002
    /// The application disconnected this user (`POST /api/users/{user}/disconnect`): logged out
    /// everywhere, banned. Reconnecting is not expected.
    case disconnectedByServer = 4003

    /// Whether a peer may send `code` in a close frame (RFC 6455 §7.4).
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return true
        default: return false
        }
    }
}

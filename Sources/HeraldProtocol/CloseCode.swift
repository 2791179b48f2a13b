/// WebSocket close codes Herald sends, with the reason each is used for.
///
/// Standard codes come from RFC 6455 §7.4.1. Authentication has no standard code, so Herald
/// uses codes from the private range (4000–4999); the close reason text says more. A client
/// should not reconnect after 4001 or 4003 (after 4002 only with a fresh token).
///
/// A struct rather than an enum: an application's backend chooses its own codes in the private
/// range for the connections its connect hook refuses, and those travel the same way.
public struct CloseCode: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// Normal closure; also sent with reason `timeout` when the heartbeat gives up on a client.
    public static let normal = CloseCode(rawValue: 1000)
    /// The node is shutting down (after a `server_shutdown` message).
    public static let goingAway = CloseCode(rawValue: 1001)
    /// The peer broke RFC 6455 (unmasked frame, reserved bits, bad fragmentation, bad close frame).
    public static let protocolError = CloseCode(rawValue: 1002)
    /// A binary frame on `/ws`, which speaks JSON text only.
    public static let unsupportedData = CloseCode(rawValue: 1003)
    /// Reserved: "no status code was present". Never sent, only reported.
    public static let noStatus = CloseCode(rawValue: 1005)
    /// Reserved: the connection dropped without a close frame. Never sent, only reported.
    public static let abnormal = CloseCode(rawValue: 1006)
    /// A text message that is not valid UTF-8.
    public static let invalidPayload = CloseCode(rawValue: 1007)
    /// Policy violation: a client that keeps flooding after `rate_limited` errors.
    public static let policyViolation = CloseCode(rawValue: 1008)
    /// A frame or message over the configured maximum size.
    public static let messageTooBig = CloseCode(rawValue: 1009)
    /// Unexpected server condition.
    public static let internalError = CloseCode(rawValue: 1011)
    /// The node refuses new work right now.
    public static let tryAgainLater = CloseCode(rawValue: 1013)
    /// No valid connection token where one is required: missing, malformed, forged, or not
    /// sent in time. Reconnecting with the same token will not help.
    public static let unauthorized = CloseCode(rawValue: 4001)
    /// The connection token's `exp` passed (at connect time or during the session): fetch a
    /// fresh token and reconnect.
    public static let tokenExpired = CloseCode(rawValue: 4002)
    /// The application disconnected this user (`POST /api/users/{user}/disconnect`): logged out
    /// everywhere, banned. Reconnecting is not expected.
    public static let disconnectedByServer = CloseCode(rawValue: 4003)
    /// The backend's connect hook could not be asked (down, slow): reconnect later.
    public static let backendUnavailable = CloseCode(rawValue: 4503)
    /// The backend's connect hook refused without a code of its own in 4000–4999.
    public static let refusedByBackend = CloseCode(rawValue: 4403)

    /// A code the backend chose for a refusal: its own when it is in the private range.
    public static func backend(_ code: Int?) -> CloseCode {
        guard let code, (4000...4999).contains(code) else { return .refusedByBackend }
        return CloseCode(rawValue: UInt16(code))
    }

    /// Whether a peer may send `code` in a close frame (RFC 6455 §7.4).
    public static func isValidOnWire(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return true
        default: return false
        }
    }
}

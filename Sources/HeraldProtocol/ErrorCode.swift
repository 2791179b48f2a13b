/// Stable, machine-readable error codes sent in `error` messages and REST error bodies.
///
/// Clients switch on these strings, so a code is never renamed once shipped; the human text
/// that travels beside it may change freely.
public enum ErrorCode: String, Codable, Sendable, CaseIterable {
    /// The frame or body is not JSON.
    case invalidJSON = "invalid_json"
    /// JSON, but not an object with a string `type`.
    case invalidMessage = "invalid_message"
    /// `type` names no known message.
    case unknownType = "unknown_type"
    /// A required field is absent.
    case missingField = "missing_field"
    /// A field has the wrong type or an unacceptable value.
    case invalidField = "invalid_field"
    /// The channel name breaks the rule in ``ChannelName``.
    case invalidChannel = "invalid_channel"
    /// `unsubscribe` or `message` for a channel the connection is not subscribed to.
    case notSubscribed = "not_subscribed"
    /// The connection already holds the maximum number of subscriptions.
    case tooManySubscriptions = "too_many_subscriptions"
    /// `set_name` with a name over the configured length.
    case nameTooLong = "name_too_long"
    /// More messages than the per-connection token bucket allows.
    case rateLimited = "rate_limited"
    /// REST body over the configured size.
    case payloadTooLarge = "payload_too_large"
    /// REST call without a valid API key; WebSocket message before the required `auth`.
    case unauthorized = "unauthorized"
    /// REST call from a non-loopback address while no API key is configured; a WebSocket
    /// handshake from an origin not allowed; a channel the connection's token does not grant.
    case forbidden = "forbidden"
    /// A connection token that is malformed, badly signed, or has unacceptable claims.
    case invalidToken = "invalid_token"
    /// A connection token whose `exp` has passed (at connect time or during the session).
    case tokenExpired = "token_expired"
    /// Too many connections from one address, or opened too fast.
    case tooManyConnections = "too_many_connections"
    /// The node cannot take the request now (shutting down, connection limit, broker down).
    case unavailable = "unavailable"
    /// A publish reached Redis but not `HERALD_REDIS_MIN_REPLICAS` replicas in time: it may
    /// have been delivered; retry it with its `Idempotency-Key`.
    case replicationTimeout = "replication_timeout"
    /// Unknown REST route.
    case notFound = "not_found"
    /// A channel in a namespace the node's configuration does not declare (with
    /// `unknown_namespaces: reject`).
    case unknownNamespace = "unknown_namespace"
    /// The backend's hook did not answer in time (or at all): try again later; herald.js and
    /// HeraldClient retry a subscribe with backoff.
    case temporarilyUnavailable = "temporarily_unavailable"
}

/// A protocol-level error: a stable ``ErrorCode`` and a human-readable description.
public struct ProtocolError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var error: String
    /// The channel of the subscribe (or `message`) refused, when a client needs it to retry
    /// that one: `temporarily_unavailable` and the subscribe hook's `forbidden`.
    public var channel: String?

    public init(_ code: ErrorCode, _ error: String, channel: String? = nil) {
        self.code = code
        self.error = error
        self.channel = channel
    }

    public var description: String { "\(code.rawValue): \(error)" }
}

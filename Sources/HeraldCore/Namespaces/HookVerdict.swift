/// What a backend hook answered, as the session rules need it.
public enum HookVerdict: Sendable, Equatable {
    case allowed
    /// The backend said no, with its message.
    case refused(String)
    /// The backend could not be asked (down, slow, an answer that is not the documented JSON).
    case unavailable(String)
}

/// What the backend's refresh hook answered when a connection's expiry passed.
public enum ExpiryVerdict: Sendable, Equatable {
    /// The connection lives on until then (Unix milliseconds).
    case extended(expiresAtMillis: Int64)
    /// The backend said no (the session ended): close with 4002.
    case refused(String)
    /// The backend could not be asked: close with 4503, so the client reconnects and is asked
    /// about again.
    case unavailable(String)
}

/// An instruction for connections rather than a notification for their clients: its own typed
/// event, sent with ``Broker/send(_:to:)`` to every node with interest in the channel (a user's
/// private channel), in order with the channel's publications; each receiving connection acts
/// on it.
public enum ConnectionSignal: Sendable, Equatable {
    /// Close with 4003 (`POST /api/users/{user}/disconnect`).
    case disconnect
    /// Leave `channel` and tell the client `unsubscribed` (`POST /api/users/{user}/unsubscribe`).
    case unsubscribe(channel: String)
}

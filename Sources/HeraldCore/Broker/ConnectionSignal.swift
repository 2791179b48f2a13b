/// An instruction for connections rather than a notification for their clients: travels like a
/// publication (to every node with interest in the channel, a user's private channel), and
/// makes each receiving connection act.
public enum ConnectionSignal: Sendable, Equatable {
    /// Close with 4003 (`POST /api/users/{user}/disconnect`).
    case disconnect
    /// Leave `channel` and tell the client `unsubscribed` (`POST /api/users/{user}/unsubscribe`).
    case unsubscribe(channel: String)
}

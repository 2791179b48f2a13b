/// The private channel of a user: every connection whose token names the user (`sub`) is in
/// it, on every node, so a user's notifications and signals travel like any publication —
/// through the broker's interest, to exactly the nodes that have the user connected.
///
/// Its name starts with `#`, which no public channel name may contain, so no client can
/// subscribe to it; figures and presence leave it out.
public enum UserChannel {
    static let prefix = "#user:"

    public static func name(of user: String) -> String { prefix + user }

    public static func isPrivate(_ channel: String) -> Bool { channel.utf8.first == UInt8(ascii: "#") }

    /// Longest user id accepted in `/api/users/{user}` (token subjects are usually far shorter).
    public static let maxUserLength = 256
}

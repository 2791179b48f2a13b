/// What a webhook watches for occupancy: a public or private channel, or a user (whose
/// connections all sit on the user's private channel, ``UserChannel``).
public enum OccupancyKey: Hashable, Sendable, Comparable {
    case channel(String)
    case user(String)

    /// The key of one of the Hub's channels: a user's private channel stands for the user.
    public init(hubChannel channel: String) {
        if channel.hasPrefix(UserChannel.prefix) {
            self = .user(String(channel.dropFirst(UserChannel.prefix.count)))
        } else {
            self = .channel(channel)
        }
    }

    /// How the key is written where nodes share it (Redis): `c:<channel>` or `u:<user>`.
    public var encoded: String {
        switch self {
        case .channel(let channel): "c:" + channel
        case .user(let user): "u:" + user
        }
    }

    public init?(encoded: String) {
        let value = String(encoded.dropFirst(2))
        if encoded.hasPrefix("c:") {
            self = .channel(value)
        } else if encoded.hasPrefix("u:") {
            self = .user(value)
        } else {
            return nil
        }
    }
}

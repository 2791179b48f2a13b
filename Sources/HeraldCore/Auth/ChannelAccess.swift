
/// What a connection may do with channels, decided by how it authenticated.
///
/// Channels named `private:…` are never open to everyone: only a token that grants them lets
/// a client in. Everything else is a public channel. The rules, from docs/security.md:
///
/// | connection                          | subscribe                  | post (`message`)  |
/// |-------------------------------------|----------------------------|-------------------|
/// | no JWT key configured (open node)   | public channels            | public channels   |
/// | JWT configured, no token (anonymous)| public channels            | nothing           |
/// | JWT configured, valid token         | public + granted channels  | granted channels  |
public enum ChannelAccess: Sendable, Equatable {
    /// The node verifies no tokens: every client is anonymous and may use public channels.
    case open
    /// The node verifies tokens but this client presented none.
    case anonymous
    /// A verified token.
    case token(ClientIdentity)

    /// Names starting with this need a grant.
    public static let privatePrefix = "private:"

    public static func isPrivate(_ channel: String) -> Bool {
        channel.hasPrefix(privatePrefix)
    }

    public func maySubscribe(_ channel: String) -> Bool {
        switch self {
        case .open, .anonymous: !Self.isPrivate(channel)
        case .token(let identity): !Self.isPrivate(channel) || identity.grant.allows(channel)
        }
    }

    public func mayPost(_ channel: String) -> Bool {
        switch self {
        case .open: !Self.isPrivate(channel)
        case .anonymous: false
        case .token(let identity): identity.grant.allows(channel)
        }
    }

    /// The verified token, when there is one.
    public var identity: ClientIdentity? {
        if case .token(let identity) = self { identity } else { nil }
    }

    /// The token's subject, when there is one.
    public var userID: String? {
        if case .token(let identity) = self { identity.userID } else { nil }
    }
}


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
    /// The backend's connect hook vouched for the client (a session cookie, say): public
    /// channels and what its answer listed; private namespaces go through the subscribe hook.
    case backend(ClientIdentity)

    /// Names starting with this need a grant: the built-in `private` namespace.
    public static let privatePrefix = Namespaces.privateNamespace + ":"

    public static func isPrivate(_ channel: String) -> Bool {
        channel.hasPrefix(privatePrefix)
    }

    public func maySubscribe(_ channel: String) -> Bool {
        maySubscribe(channel, isPrivate: Self.isPrivate(channel))
    }

    /// - Parameter isPrivate: whether the channel's namespace needs a grant.
    public func maySubscribe(_ channel: String, isPrivate: Bool) -> Bool {
        switch self {
        case .open, .anonymous: !isPrivate
        case .token(let identity), .backend(let identity): !isPrivate || identity.grant.allows(channel)
        }
    }

    public func mayPost(_ channel: String) -> Bool {
        mayPost(channel, isPrivate: Self.isPrivate(channel))
    }

    public func mayPost(_ channel: String, isPrivate: Bool) -> Bool {
        switch self {
        case .open: !isPrivate
        case .anonymous: false
        case .token(let identity): identity.grant.allows(channel)
        case .backend(let identity): !isPrivate || identity.grant.allows(channel)
        }
    }

    /// The verified token (or the backend's answer), when there is one.
    public var identity: ClientIdentity? {
        switch self {
        case .token(let identity), .backend(let identity): identity
        case .open, .anonymous: nil
        }
    }

    /// Whether the backend's connect hook vouched for the connection.
    public var isBackend: Bool {
        if case .backend = self { true } else { false }
    }

    /// The token's subject (or the user the backend named), when there is one.
    public var userID: String? { identity?.userID }
}

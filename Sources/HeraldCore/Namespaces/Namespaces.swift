/// Every namespace's rules at one moment: the default namespace (the global settings), the
/// named ones, and what a channel of an undeclared namespace gets.
///
/// A channel's namespace is the part of its name before the first `:` (`chat:42` → `chat`);
/// a name without `:` is in the default namespace. `private:…` channels keep their old rule
/// (a grant is needed) unless the file declares a `private` namespace. A user's own channel
/// (`#user:…`, never subscribed to by name) always follows the default namespace.
public struct Namespaces: Sendable, Equatable {
    public enum Unknown: String, Sendable, CaseIterable {
        /// A subscribe (or publish) to an undeclared namespace is refused: `unknown_namespace`.
        case reject
        /// Undeclared namespaces follow the default namespace.
        case `default`
    }

    /// The built-in namespace of channels that need a grant.
    public static let privateNamespace = "private"

    public var defaultPolicy: NamespacePolicy
    public var named: [String: NamespacePolicy]
    public var unknown: Unknown
    /// `HERALD_JOIN_LEAVE_CHANNELS`: which channels get `join`/`leave` where a namespace does
    /// not say.
    public var joinLeaveChannels: ChannelPattern

    public init(
        defaultPolicy: NamespacePolicy = NamespacePolicy(), named: [String: NamespacePolicy] = [:], unknown: Unknown = .default,
        joinLeaveChannels: ChannelPattern = .none
    ) {
        self.defaultPolicy = defaultPolicy
        self.named = named
        self.unknown = unknown
        self.joinLeaveChannels = joinLeaveChannels
    }

    /// The namespace `channel` belongs to; `nil` for the default namespace.
    public static func namespace(of channel: String) -> Substring? {
        guard let colon = channel.utf8.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        return channel[..<colon]
    }

    /// The rules `channel` follows; `nil` when its namespace is undeclared and undeclared
    /// namespaces are refused.
    public func policy(for channel: String) -> NamespacePolicy? {
        guard !UserChannel.isPrivate(channel), let name = Self.namespace(of: channel) else { return defaultPolicy }
        if let policy = named[String(name)] { return policy }
        if name == Self.privateNamespace {
            var policy = defaultPolicy
            policy.isPrivate = true
            return policy
        }
        return unknown == .reject ? nil : defaultPolicy
    }

    /// The history `channel` keeps (the default namespace's for an undeclared one: a broker
    /// never refuses, the session does).
    public func history(for channel: String) -> HistoryPolicy {
        policy(for: channel)?.history ?? defaultPolicy.history
    }

    /// Whether subscribers of `channel` get `join` and `leave`.
    public func joinsAndLeaves(_ channel: String) -> Bool {
        guard let policy = policy(for: channel) else { return false }
        return policy.joinLeave ?? joinLeaveChannels.matches(channel)
    }

    /// Whether any channel can get `join`/`leave` (else the node runs no announcer).
    public var announcesJoinLeave: Bool {
        !joinLeaveChannels.isEmpty || named.values.contains { $0.joinLeave == true }
    }
}

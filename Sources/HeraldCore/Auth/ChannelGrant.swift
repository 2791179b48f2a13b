import HeraldProtocol

/// The channels a connection token grants: exact names and prefixes (`orders:*`).
///
/// Parsed once, when the token is verified, so checking a channel on `subscribe` is a few
/// comparisons — no pattern parsing per message. A lone `*` grants every channel.
public struct ChannelGrant: Sendable, Equatable {
    /// Most entries a token's `channels` claim may hold; a bigger claim is refused, not truncated.
    public static let maxEntries = 1000

    private var exact: Set<String> = []
    private var prefixes: [String] = []

    /// The grant of no channel at all.
    public static let none = ChannelGrant()

    private init() {}

    /// Parses a `channels` claim. Each entry is a channel name, or a name prefix followed by `*`.
    public init(_ entries: [String]) throws(ProtocolError) {
        guard entries.count <= Self.maxEntries else {
            throw ProtocolError(.invalidToken, "the channels claim lists more than \(Self.maxEntries) entries")
        }
        for entry in entries {
            if entry.hasSuffix("*") {
                let prefix = String(entry.dropLast())
                guard prefix.isEmpty || ChannelName.isValid(prefix) else {
                    throw ProtocolError(.invalidToken, "the channels claim holds an invalid pattern")
                }
                prefixes.append(prefix)
            } else {
                guard ChannelName.isValid(entry) else {
                    throw ProtocolError(.invalidToken, "the channels claim holds an invalid channel name")
                }
                exact.insert(entry)
            }
        }
    }

    /// Whether `channel` is one of the granted names or starts with a granted prefix.
    public func allows(_ channel: String) -> Bool {
        exact.contains(channel) || prefixes.contains { channel.hasPrefix($0) }
    }
}

/// A list of channel names and prefixes (`orders:*`), as `HERALD_JOIN_LEAVE_CHANNELS` gives it.
public struct ChannelPattern: Sendable, Equatable {
    public let names: Set<String>
    public let prefixes: [String]

    /// Comma-separated names, or prefixes ending in `*`; `*` alone matches every channel.
    public init(_ list: String) {
        var names = Set<String>()
        var prefixes: [String] = []
        // Channel names hold no blanks, so every blank is separator padding.
        for item in list.split(separator: ",").map({ $0.filter { $0 != " " && $0 != "\t" } }) where !item.isEmpty {
            if item.hasSuffix("*") { prefixes.append(String(item.dropLast())) } else { names.insert(item) }
        }
        self.names = names
        self.prefixes = prefixes
    }

    public static let none = ChannelPattern("")

    public var isEmpty: Bool { names.isEmpty && prefixes.isEmpty }

    public func matches(_ channel: String) -> Bool {
        names.contains(channel) || prefixes.contains { channel.hasPrefix($0) }
    }
}

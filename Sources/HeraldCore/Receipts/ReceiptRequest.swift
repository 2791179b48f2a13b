import HeraldSupport

/// A publisher waits for a receipt (`POST /api/notify/{channel}?wait=delivered|acked`): every
/// node that delivers the publication reports to ``origin`` how many sockets it wrote it to
/// (and, with ``wantsAcks``, how many of those clients acknowledged it).
///
/// It travels with the publication between nodes as one token, `d<id>:<origin>` or
/// `a<id>:<origin>` (ids are letters and digits; a node id may hold `:`, so it comes last).
public struct ReceiptRequest: Sendable, Equatable, Hashable {
    public var id: String
    /// The node the publisher waits on.
    public var origin: String
    public var wantsAcks: Bool

    public init(id: String = RandomID.make(), origin: String, wantsAcks: Bool) {
        self.id = id
        self.origin = origin
        self.wantsAcks = wantsAcks
    }

    public var token: String { (wantsAcks ? "a" : "d") + id + ":" + origin }

    public init?(token: Substring) {
        guard let kind = token.first, kind == "a" || kind == "d", let colon = token.firstIndex(of: ":") else { return nil }
        let id = token[token.index(after: token.startIndex)..<colon]
        let origin = token[token.index(after: colon)...]
        guard !id.isEmpty, !origin.isEmpty else { return nil }
        self.init(id: String(id), origin: String(origin), wantsAcks: kind == "a")
    }

    /// The internal channel a node's receipts reach it on (clients cannot name `#` channels).
    public static func channel(of node: String) -> String { "#receipts:" + node }

    public static func isReceiptChannel(_ channel: String) -> Bool { channel.utf8.first == UInt8(ascii: "#") && channel.hasPrefix("#receipts:") }
}

/// What one node reports for one receipt: the sockets it wrote the publication to, or more
/// acknowledgements since its last report.
public struct ReceiptReport: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case written(Int)
        case acked(Int)
    }

    public var id: String
    public var node: String
    public var kind: Kind

    public init(id: String, node: String, kind: Kind) {
        self.id = id
        self.node = node
        self.kind = kind
    }

    /// `w <id> <n> <node>` or `a <id> <n> <node>`.
    public var encoded: String {
        switch kind {
        case .written(let count): "w \(id) \(count) \(node)"
        case .acked(let count): "a \(id) \(count) \(node)"
        }
    }

    public init?(_ text: String) {
        let parts = text.split(separator: " ", maxSplits: 3)
        guard parts.count == 4, let count = Int(parts[2]), count >= 0 else { return nil }
        switch parts[0] {
        case "w": kind = .written(count)
        case "a": kind = .acked(count)
        default: return nil
        }
        id = String(parts[1])
        node = String(parts[3])
    }
}

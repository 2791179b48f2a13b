import HeraldProtocol
import NIOCore

/// A channel's retained history, as a broker keeps it: the seam recovery reads from.
///
/// Contract:
/// - **Offsets** of one epoch are consecutive and never given twice; ``HistoryPage`` answers
///   for one epoch only, and says whether it covers everything after the offset asked for — a
///   page that does not (the history was trimmed or expired meanwhile) must never be taken for
///   a complete one.
/// - **A position is never reused**, even when the store loses writes (a Redis failover with
///   asynchronous replication can leave the new master's latest offset below offsets clients
///   already hold). A broker remembers, per channel it delivers, the newest position it
///   delivered (its floor); when the store's latest offset in that epoch is below the floor,
///   the next publish or read starts a new epoch instead of handing those offsets out again
///   with other content, so clients are told `recovered: false` rather than silently
///   deduplicating a different notification away.
/// - **What a read may change**, and nothing else (it never stores, trims or reorders
///   publications):
///   - a channel with no current epoch (never published to, or forgotten after its TTL) gets
///     one at the read, atomically with it, so the position answered stays valid for the
///     publications that follow (both brokers); so does a channel whose latest offset fell
///     below the reading node's floor (the rule above);
///   - the broker may remember the position answered as the point from which its delivery of
///     the channel to this node must be gap-free (the Redis broker seeds its gap healer with
///     it: a subscriber was just promised everything after it).
public protocol ChannelHistory: Sendable {
    /// The channel's latest position and the publications after `offset` (oldest first, at
    /// most `limit`); with `offset` `nil`, only the latest position.
    func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage
}

/// A slice of a channel's history.
public struct HistoryPage: Sendable {
    /// The latest position of the channel; `nil` when the node keeps no history (size 0).
    /// A channel that never saw a publication has offset 0 in a fresh epoch.
    public var latest: StreamPosition?
    /// Publications after the offset asked for, oldest first, each with its position.
    public var publications: [Publication]
    /// The oldest offset still retained (`latest.offset + 1` when nothing is).
    public var oldest: Int64

    public init(latest: StreamPosition?, publications: [Publication], oldest: Int64) {
        self.latest = latest
        self.publications = publications
        self.oldest = oldest
    }

    /// Whether every publication after `offset` up to ``latest`` is retained.
    public func covers(after offset: Int64) -> Bool {
        guard let latest else { return false }
        return offset <= latest.offset && offset + 1 >= oldest
    }
}

/// History settings, shared by both brokers.
public struct HistoryPolicy: Sendable, Equatable {
    /// Notifications kept per channel; 0 turns history and positions off.
    public var size: Int
    /// How long a channel's history lives after its last publish.
    public var ttl: TimeAmount
    /// The in-memory broker's bound on the bytes of all channels' history together; the
    /// channels published longest ago lose their history first.
    public var maxBytes: Int
    /// How long an idempotency key is remembered.
    public var idempotencyWindow: TimeAmount

    public init(size: Int = 100, ttl: TimeAmount = .seconds(300), maxBytes: Int = 64 << 20, idempotencyWindow: TimeAmount = .seconds(300)) {
        self.size = size
        self.ttl = ttl
        self.maxBytes = maxBytes
        self.idempotencyWindow = idempotencyWindow
    }

    public var isOn: Bool { size > 0 }
}

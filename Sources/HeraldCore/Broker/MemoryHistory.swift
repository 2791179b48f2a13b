import HeraldProtocol
import NIOCore

/// The single node's channel histories and idempotency keys: bounded rings in memory.
///
/// Not thread-safe on its own: ``InMemoryBroker`` keeps it under its lock, so that assigning
/// an offset, storing the publication and handing it to the Hub happen as one step and a
/// channel's publications are delivered in offset order.
///
/// Bounds: at most `size` notifications per channel; all channels' notifications together at
/// most `maxBytes` (over it, the channels published longest ago lose their retained
/// notifications first — their position continues, so a client asking for a dropped range
/// learns that it cannot recover); a channel's state is forgotten `ttl` after its last
/// publish (its next publication starts a new epoch); at most ``maxIdempotencyKeys`` keys.
struct MemoryHistory {
    struct Entry {
        var offset: Int64
        var payload: ByteBuffer
    }

    struct Channel {
        var epoch: String
        var offset: Int64 = 0
        var entries = CircularBuffer<Entry>()
        var bytes = 0
        var touched: NIODeadline
    }

    /// Most idempotency keys remembered at once (oldest forgotten first).
    static let maxIdempotencyKeys = 100_000

    /// Each channel's size and TTL, by namespace.
    let rules: NamespaceRules
    /// The node-wide bounds: bytes of all channels, the idempotency window.
    let policy: HistoryPolicy
    private(set) var channels: [String: Channel] = [:]
    private(set) var bytes = 0
    private var receipts: [String: (receipt: PublishReceipt, expires: NIODeadline)] = [:]
    private var receiptOrder = CircularBuffer<(key: String, expires: NIODeadline)>()

    init(rules: NamespaceRules) {
        self.rules = rules
        self.policy = rules.defaultHistory
    }

    init(policy: HistoryPolicy) {
        self.init(rules: NamespaceRules(history: policy))
    }

    // MARK: Publishing

    /// The receipt of an earlier publish with `key`, if it is still within the window.
    mutating func duplicate(of key: String, now: NIODeadline) -> PublishReceipt? {
        expireReceipts(now: now)
        return receipts[key].map { PublishReceipt(id: $0.receipt.id, position: $0.receipt.position, duplicate: true) }
    }

    /// Remembers `receipt` under `key` for the idempotency window.
    mutating func remember(_ receipt: PublishReceipt, key: String, now: NIODeadline) {
        let expires = now + policy.idempotencyWindow
        receipts[key] = (receipt, expires)
        receiptOrder.append((key, expires))
        while receipts.count > Self.maxIdempotencyKeys, let oldest = receiptOrder.popFirst() {
            receipts[oldest.key] = nil
        }
    }

    /// Gives `payload` the channel's next position and keeps it. Returns the position and the
    /// payload with the position spliced in (what subscribers receive).
    mutating func append(_ payload: ByteBuffer, to name: String, now: NIODeadline) -> (StreamPosition, ByteBuffer) {
        append(payload, to: name, policy: rules.history(for: name), now: now)
    }

    /// - Parameter channelPolicy: the channel's size and TTL, which the caller looked up already.
    mutating func append(
        _ payload: ByteBuffer, to name: String, policy channelPolicy: HistoryPolicy, now: NIODeadline
    ) -> (StreamPosition, ByteBuffer) {
        var channel = current(name, ttl: channelPolicy.ttl, now: now)
        channel.offset += 1
        channel.touched = now
        let position = StreamPosition(offset: channel.offset, epoch: channel.epoch)
        let positioned = PositionedPayload.make(payload, position: position)
        channel.entries.append(Entry(offset: channel.offset, payload: positioned))
        channel.bytes += positioned.readableBytes
        bytes += positioned.readableBytes
        while channel.entries.count > channelPolicy.size, let dropped = channel.entries.popFirst() {
            channel.bytes -= dropped.payload.readableBytes
            bytes -= dropped.payload.readableBytes
        }
        channels[name] = channel
        if bytes > policy.maxBytes { evict(keeping: name) }
        return (position, positioned)
    }

    // MARK: Reading

    /// The channel's latest position and up to `limit` notifications after `offset`. A channel
    /// never published to (or forgotten) gets its epoch now, so the position a subscriber is
    /// given stays valid for what comes next — the one write a read may make
    /// (``ChannelHistory``'s contract).
    mutating func page(of name: String, after offset: Int64?, limit: Int, now: NIODeadline) -> HistoryPage {
        let channel = current(name, ttl: rules.history(for: name).ttl, now: now)
        channels[name] = channel
        let latest = StreamPosition(offset: channel.offset, epoch: channel.epoch)
        let oldest = channel.entries.first?.offset ?? channel.offset + 1
        guard let offset else { return HistoryPage(latest: latest, publications: [], oldest: oldest) }
        var publications: [Publication] = []
        for entry in channel.entries where entry.offset > offset {
            if publications.count == limit { break }
            publications.append(Publication(
                channel: name, payload: entry.payload, position: StreamPosition(offset: entry.offset, epoch: channel.epoch)))
        }
        return HistoryPage(latest: latest, publications: publications, oldest: oldest)
    }

    // MARK: Bounds

    /// Forgets channels whose last publish is older than the TTL.
    mutating func expire(now: NIODeadline) {
        for (name, channel) in channels where now - channel.touched > rules.history(for: name).ttl {
            bytes -= channel.bytes
            channels[name] = nil
        }
        expireReceipts(now: now)
    }

    /// The channel's live state, or a fresh epoch if it expired or never existed.
    private mutating func current(_ name: String, ttl: TimeAmount, now: NIODeadline) -> Channel {
        if let channel = channels[name], now - channel.touched <= ttl { return channel }
        if let stale = channels[name] { bytes -= stale.bytes }
        return Channel(epoch: PositionedPayload.newEpoch(), touched: now)
    }

    /// Drops the retained notifications of the channels published longest ago until the
    /// total is under 90 % of the bound (so that eviction is not repeated at every publish).
    private mutating func evict(keeping current: String) {
        let target = policy.maxBytes / 10 * 9
        for name in channels.filter({ $0.key != current }).sorted(by: { $0.value.touched < $1.value.touched }).map(\.key) {
            guard bytes > target else { return }
            bytes -= channels[name]!.bytes
            channels[name]!.entries.removeAll()
            channels[name]!.bytes = 0
        }
        // Only the channel being published to is left: trim it from the oldest end.
        while bytes > target, var channel = channels[current], let dropped = channel.entries.popFirst() {
            channel.bytes -= dropped.payload.readableBytes
            bytes -= dropped.payload.readableBytes
            channels[current] = channel
        }
    }

    private mutating func expireReceipts(now: NIODeadline) {
        while let oldest = receiptOrder.first, oldest.expires <= now {
            receiptOrder.removeFirst()
            if let receipt = receipts[oldest.key], receipt.expires <= now { receipts[oldest.key] = nil }
        }
    }
}

import HeraldProtocol
import NIOCore

/// What one connection does while its client reads slower than it is sent to, as a pure
/// state machine: the `slow_consumer` policy of each channel (``SlowConsumerPolicy``).
///
/// The transport reports when its outbound queue passed its bound (``lost(subscriptions:policy:)``)
/// and when it drained again (``regained()``). In between the connection *lags*: nothing more of
/// a `catch_up` or `latest` channel is queued for it, so a slow client costs the node its
/// queue bound and no more — the backlog stays in the channel's history, not in the node.
/// - `catch_up`: the first skipped notification's position is remembered; once drained, the
///   history after it is read and merged with what arrives meanwhile (``SubscriptionRecovery``,
///   the same merge as a `subscribe` with `since`), so the client gets every notification once
///   and in order without reconnecting.
/// - `latest`: the newest notification per channel and `conflate_key` is kept, each replacing
///   the older one, and sent once drained, with its real offset.
/// - `disconnect`: the connection ends, as it always did.
///
/// A notification that can be neither read back nor conflated (a user's own notification, which
/// is never stored) ends a lagging connection too: dropping it would lose it silently.
public struct SlowConsumerFlow: Sendable {
    public enum Verdict: Equatable, Sendable {
        /// Write it now.
        case write
        /// Not written now: skipped until the catch-up, kept as the newest of its key
        /// (`replaced`: an older one it replaced is never sent), or dropped (a `join`, `leave`
        /// or `presence_changed` event, which no history keeps).
        case held(Holding)
        /// The connection must end as a slow consumer.
        case disconnect
    }

    public enum Holding: Equatable, Sendable {
        case skipped
        case kept(replaced: Bool)
        case dropped
        /// Buffered for a catch-up read in flight.
        case buffered
    }

    /// One history read to make once the socket drained.
    public struct CatchUp: Equatable, Sendable {
        public var channel: String
        /// The position the client had before the first skipped notification.
        public var since: StreamPosition
        public var query: (after: Int64?, limit: Int)

        public static func == (lhs: CatchUp, rhs: CatchUp) -> Bool {
            lhs.channel == rhs.channel && lhs.since == rhs.since && lhs.query.after == rhs.query.after
                && lhs.query.limit == rhs.query.limit
        }
    }

    /// Most `latest` notifications kept per connection (channels × keys); a client that would
    /// need more is disconnected rather than let a publisher's keys grow the node's memory.
    public static let defaultMaxKept = 1000

    public let maxBuffered: Int
    public let maxKept: Int
    /// Whether the outbound queue is past its bound.
    public private(set) var isLagging = false
    /// `catch_up` channels that skipped something: where the client was before.
    private var missed: [String: StreamPosition] = [:]
    /// `catch_up` channels whose history is being read, each with its merge.
    private var reading: [String: SubscriptionRecovery] = [:]
    /// `latest` notifications waiting for the socket, oldest first.
    private var kept: [(channel: String, key: String?, delivery: Delivery)] = []

    public init(maxBuffered: Int = SubscriptionFlow.defaultMaxBuffered, maxKept: Int = Self.defaultMaxKept) {
        self.maxBuffered = maxBuffered
        self.maxKept = maxKept
    }

    // MARK: Events

    /// The outbound queue passed its bound.
    /// - Returns: `false` when the connection must end instead: one of its channels says
    ///   `disconnect`.
    public mutating func lost(subscriptions: Set<String>, policy: (String) -> SlowConsumerPolicy) -> Bool {
        guard !subscriptions.contains(where: { policy($0) == .disconnect }) else { return false }
        isLagging = true
        return true
    }

    /// A notification for the client (past the subscribe merge and the replay floor).
    public mutating func admit(_ delivery: Delivery, policy: (String) -> SlowConsumerPolicy) -> Verdict {
        // The common case, one branch: nothing is slow.
        guard isLagging || !reading.isEmpty else { return .write }
        if reading[delivery.channel] != nil {
            reading[delivery.channel]!.live(delivery)
            return .held(.buffered)
        }
        guard isLagging else { return .write }
        if case .message = delivery.kind { return .held(.dropped) }
        switch policy(delivery.channel) {
        case .disconnect:
            return .disconnect
        case .catchUp:
            guard let position = delivery.position else { return .disconnect }
            if missed[delivery.channel] == nil {
                missed[delivery.channel] = StreamPosition(offset: position.offset - 1, epoch: position.epoch)
            }
            return .held(.skipped)
        case .latest:
            let key = Self.conflateKey(of: delivery)
            let older = kept.firstIndex { $0.channel == delivery.channel && $0.key == key }
            if let older { kept.remove(at: older) }
            guard kept.count < maxKept else { return .disconnect }
            kept.append((delivery.channel, key, delivery))
            return .held(.kept(replaced: older != nil))
        }
    }

    /// The outbound queue drained below its low mark.
    /// - Parameter historySize: the channel's history size, the most a catch-up can replay.
    /// - Returns: the history reads to make (``caughtUp(_:_:)`` takes each answer), and the kept
    ///   `latest` notifications to write now, oldest first.
    public mutating func regained(historySize: (String) -> Int) -> (reads: [CatchUp], deliveries: [Delivery]) {
        guard isLagging else { return ([], []) }
        isLagging = false
        var reads: [CatchUp] = []
        for (channel, since) in missed.sorted(by: { $0.key < $1.key }) {
            let merge = SubscriptionRecovery(since: since, maxReplay: historySize(channel), maxBuffered: maxBuffered)
            reading[channel] = merge
            reads.append(CatchUp(channel: channel, since: since, query: merge.historyQuery))
        }
        missed = [:]
        defer { kept = [] }
        return (reads, kept.map(\.delivery))
    }

    /// The history read of a catch-up arrived (or failed).
    /// - Returns: what to send: `recovery.recovered` true — only the deliveries, in order;
    ///   false — `subscribed` again with the current position, then what followed it. `nil`
    ///   when the channel was left meanwhile.
    public mutating func caughtUp(_ channel: String, _ page: Result<HistoryPage, BrokerError>) -> SubscriptionRecovery.Outcome? {
        guard var merge = reading.removeValue(forKey: channel) else { return nil }
        switch page {
        case .success(let page): return merge.historyRead(page)
        case .failure: return merge.historyFailed()
        }
    }

    /// The connection left `channel`: nothing of it is owed any more.
    public mutating func left(_ channel: String) {
        missed[channel] = nil
        reading[channel] = nil
        kept.removeAll { $0.channel == channel }
    }

    // MARK: Queries

    /// Nothing is slow and nothing is being caught up: every delivery is written.
    public var isIdle: Bool { !isLagging && reading.isEmpty }

    /// Channels whose catch-up is being read.
    public var channelsCatchingUp: Set<String> { Set(reading.keys) }

    /// `latest` notifications waiting.
    public var keptCount: Int { kept.count }

    /// The `conflate_key` a publisher gave the notification, read from its JSON — only for a
    /// lagging `latest` client, never on the way to a reading one.
    static func conflateKey(of delivery: Delivery) -> String? {
        let view = delivery.payload.readableBytesView
        guard let fields = try? JSONReader.objectFields(view) else { return nil }
        return fields["conflate_key"]?.string
    }
}

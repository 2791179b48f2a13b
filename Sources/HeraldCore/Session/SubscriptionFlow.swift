import HeraldProtocol
import NIOCore

/// The subscribe sequence of one connection, whatever its transport, as a pure state machine:
/// join the live stream, wait for the broker, read the channel's position (and, with `since`,
/// what the client missed), answer, then deliver live again — with no gap and no duplicate
/// where the replay meets the live stream.
///
/// WebSocket and SSE connections both run it; they differ only in how they frame what it
/// returns. It nests ``SubscriptionRecovery`` (the merge of one subscribe in flight — at most
/// one: subscribes are handled one at a time) and ``ReplayFloor`` (what finished subscribes
/// already sent, in case the live stream still brings it).
///
/// The order of events for one channel: ``subscribe(_:since:)`` (the connection has joined
/// the channel in the Hub), then either ``confirmationFailed(_:error:stillSubscribed:)`` or
/// ``historyRead(_:_:stillSubscribed:)``. Every live delivery of every channel goes through
/// ``live(_:)`` meanwhile and after.
public struct SubscriptionFlow: Sendable {
    /// What to do when the broker could not confirm a subscription.
    public enum Failure: Equatable, Sendable {
        /// Leave the channel in the Hub and send `error`; the connection goes on (a WebSocket
        /// client can subscribe again by itself).
        case undo(ProtocolError)
        /// Send `error` and end the connection: its client cannot subscribe to one channel
        /// again without reconnecting (an SSE stream names its channels once), so ending it is
        /// the only honest answer — the client reconnects and resubscribes everything.
        case end(ProtocolError)
        /// The channel was left meanwhile: nothing to say.
        case none
    }

    /// Live publications buffered per subscribe while its history is read; past it the merge
    /// gives up and the client is told it did not recover.
    public static let defaultMaxBuffered = 10_000

    /// Most notifications replayed for one subscribe (`HERALD_MAX_REPLAY`).
    public let maxReplay: Int
    public let maxBuffered: Int
    /// Whether the client can subscribe to a channel again on the same connection.
    public let canResubscribe: Bool
    private var recovering: (channel: String, merge: SubscriptionRecovery, fromAcknowledged: Bool)?
    private var floor = ReplayFloor()

    public init(maxReplay: Int, maxBuffered: Int = Self.defaultMaxBuffered, canResubscribe: Bool) {
        self.maxReplay = maxReplay
        self.maxBuffered = maxBuffered
        self.canResubscribe = canResubscribe
    }

    // MARK: Events

    /// The connection joined `channel` in the Hub; live publications of it are buffered from
    /// now until the history is read.
    /// - Returns: what to ask the channel's history for.
    /// - Parameter fromAcknowledged: `since` is the user's acknowledged position (a `durable`
    ///   channel subscribed without `since`): the answer says how many are unread.
    public mutating func subscribe(_ channel: String, since: StreamPosition?, fromAcknowledged: Bool = false) -> (after: Int64?, limit: Int) {
        let merge = SubscriptionRecovery(since: since, maxReplay: maxReplay, maxBuffered: maxBuffered)
        recovering = (channel, merge, fromAcknowledged)
        return merge.historyQuery
    }

    /// A `subscribe` to a channel the connection is already in: answered again with the
    /// current position, replaying nothing.
    public mutating func resubscribe(_ channel: String) -> (after: Int64?, limit: Int) {
        let merge = SubscriptionRecovery(since: nil, maxReplay: 0, maxBuffered: maxBuffered)
        recovering = (channel, merge, false)
        return merge.historyQuery
    }

    /// A live delivery arrived for the connection.
    /// - Returns: whether to write it now (`false`: buffered for the merge in flight, or
    ///   already sent by a replay).
    public mutating func live(_ delivery: Delivery) -> Bool {
        if recovering?.channel == delivery.channel {
            recovering!.merge.live(delivery)
            return false
        }
        return floor.admits(delivery)
    }

    /// The broker could not confirm the subscription to `channel`.
    /// - Parameter stillSubscribed: whether the session still holds the channel (the
    ///   application may have made the user leave it meanwhile).
    public mutating func confirmationFailed(_ channel: String, error: String, stillSubscribed: Bool) -> Failure {
        if recovering?.channel == channel { recovering = nil }
        floor.remove(channel)
        guard stillSubscribed else { return .none }
        let error = ProtocolError(.unavailable, "could not subscribe to \(channel): \(error)")
        return canResubscribe ? .undo(error) : .end(error)
    }

    /// The channel's history page (or the failure to read it) arrived.
    /// - Returns: what to send after `subscribed`, or `nil` when there is nothing to answer
    ///   (the channel was left meanwhile).
    public mutating func historyRead(
        _ channel: String, _ page: Result<HistoryPage, BrokerError>, stillSubscribed: Bool
    ) -> SubscriptionRecovery.Outcome? {
        guard let current = recovering, current.channel == channel else { return nil }
        var reading = current.merge
        recovering = nil
        guard stillSubscribed else { return nil }
        var outcome: SubscriptionRecovery.Outcome
        switch page {
        case .success(let page): outcome = reading.historyRead(page)
        case .failure: outcome = reading.historyFailed()
        }
        if current.fromAcknowledged, let since = current.merge.since, let latest = outcome.position, latest.epoch == since.epoch {
            outcome.recovery?.unread = Int(max(latest.offset - since.offset, 0))
        }
        floor.set(channel, to: outcome.position)
        return outcome
    }

    /// A catch-up sent `channel`'s notifications up to `position`: the live stream may still
    /// bring some of them (``ReplayFloor``).
    public mutating func sent(_ channel: String, through position: StreamPosition?) {
        floor.set(channel, to: position)
    }

    /// The connection left `channel`: nothing of it is buffered or filtered any more.
    public mutating func left(_ channel: String) {
        if recovering?.channel == channel { recovering = nil }
        floor.remove(channel)
    }

    // MARK: Queries

    /// The channel whose history is being read, if any.
    public var channelInFlight: String? { recovering?.channel }
}

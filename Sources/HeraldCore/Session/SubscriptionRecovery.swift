import HeraldProtocol
import NIOCore

/// The seam between a channel's history and its live stream for one `subscribe`, as a pure
/// state machine: no gap and no duplicate where the replay meets the live publications.
///
/// The connection joins the live stream first, so nothing published from then on can be
/// missed; live publications that arrive while the history is read are buffered here. When
/// the history page comes, the machine decides whether the client's `since` can be honoured,
/// and returns what to send, in order: the `subscribed` reply, the replay, then the buffered
/// live publications the replay did not already contain (by offset). After that the
/// connection delivers the channel's publications directly again.
public struct SubscriptionRecovery: Sendable {
    /// The decision, and everything to send for it.
    public struct Outcome: Sendable {
        /// The channel's latest position when the history was read (for `subscribed`).
        public var position: StreamPosition?
        /// `nil` for a plain subscribe (no `since`).
        public var recovery: ServerMessage.Recovery?
        /// What to write after `subscribed`, in order: replayed notifications, then the
        /// buffered live ones that follow them.
        public var deliveries: [Delivery]
    }

    public let since: StreamPosition?
    /// Most notifications replayed for one subscribe; a longer gap is `recovered: false`.
    public let maxReplay: Int
    /// Most live publications buffered while the history is read.
    public let maxBuffered: Int
    private var buffered: [Delivery] = []
    private var overflowed = false

    public init(since: StreamPosition?, maxReplay: Int, maxBuffered: Int) {
        self.since = since
        self.maxReplay = maxReplay
        self.maxBuffered = maxBuffered
    }

    /// What to ask the history for: everything after `since`, or only the latest position.
    public var historyQuery: (after: Int64?, limit: Int) {
        (since?.offset, since == nil ? 0 : maxReplay + 1)
    }

    /// A live publication of the channel arrived while the history is being read.
    public mutating func live(_ delivery: Delivery) {
        guard !overflowed else { return }
        guard buffered.count < maxBuffered else {
            // Bounded: give up the merge. The client is told it did not recover, and the
            // offsets of what follows show where its view resumes.
            overflowed = true
            buffered = []
            return
        }
        buffered.append(delivery)
    }

    /// The history page arrived.
    public mutating func historyRead(_ page: HistoryPage) -> Outcome {
        defer { buffered = [] }
        let latest = page.latest
        guard let since else {
            return Outcome(position: latest, recovery: nil, deliveries: overflowed ? [] : live(after: latest))
        }
        guard !overflowed, let replay = Self.replay(of: page, after: since, maxReplay: maxReplay) else {
            return Outcome(
                position: latest, recovery: .init(recovered: false, replayed: 0),
                deliveries: overflowed ? [] : live(after: latest))
        }
        let replayed = replay.map(Delivery.init)
        return Outcome(
            position: latest, recovery: .init(recovered: true, replayed: replay.count),
            deliveries: replayed + live(after: latest))
    }

    /// The history could not be read (the broker is down): the subscription stands, but
    /// nothing can be promised about the past.
    public mutating func historyFailed() -> Outcome {
        defer { buffered = [] }
        return Outcome(
            position: nil, recovery: since == nil ? nil : .init(recovered: false, replayed: 0),
            deliveries: overflowed ? [] : buffered)
    }

    /// The publications after `since`, if the page holds every one of them, consecutive and
    /// within the replay bound; `nil` when the client cannot be brought up to date.
    static func replay(of page: HistoryPage, after since: StreamPosition, maxReplay: Int) -> [Publication]? {
        guard let latest = page.latest, latest.epoch == since.epoch, page.covers(after: since.offset) else { return nil }
        let missed = latest.offset - since.offset
        guard missed <= maxReplay, page.publications.count == missed else { return nil }
        for (index, publication) in page.publications.enumerated() {
            guard publication.position == StreamPosition(offset: since.offset + 1 + Int64(index), epoch: since.epoch) else {
                return nil
            }
        }
        return page.publications
    }

    /// Buffered live deliveries that come after `latest` (a live publication the replay
    /// already holds is dropped; one of another epoch is newer than the page and goes out).
    private func live(after latest: StreamPosition?) -> [Delivery] {
        buffered.filter { delivery in
            guard let latest, let position = delivery.position, position.epoch == latest.epoch else { return true }
            return position.offset > latest.offset
        }
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// The seam between history and live stream for one subscribe, without sockets: live
/// publications before, during and after the history read; duplicates; epoch changes.
@Suite struct SubscriptionRecoveryTests {
    let epoch = "e1"

    func publication(_ offset: Int64, epoch: String? = nil) -> Publication {
        Publication(
            channel: "c", payload: ByteBuffer(string: #"{"n":\#(offset)}"#),
            position: StreamPosition(offset: offset, epoch: epoch ?? self.epoch))
    }

    func live(_ offset: Int64, epoch: String? = nil) -> Delivery {
        let publication = publication(offset, epoch: epoch)
        return Delivery(publication)
    }

    func page(latest: Int64, retained: ClosedRange<Int64>?, after: Int64, epoch: String? = nil) -> HistoryPage {
        let epoch = epoch ?? self.epoch
        let publications = (retained.map { Array($0) } ?? []).filter { $0 > after }.map { publication($0, epoch: epoch) }
        return HistoryPage(
            latest: StreamPosition(offset: latest, epoch: epoch), publications: publications,
            oldest: retained?.lowerBound ?? latest + 1)
    }

    /// The offsets in the payloads to send, read back from their JSON.
    func offsets(_ deliveries: [Delivery]) -> [Int64] {
        deliveries.map { delivery in
            Int64(String(buffer: delivery.payload).dropFirst(5).dropLast()) ?? -1
        }
    }

    func recovery(since offset: Int64?, epoch: String? = nil, maxReplay: Int = 100) -> SubscriptionRecovery {
        SubscriptionRecovery(
            since: offset.map { StreamPosition(offset: $0, epoch: epoch ?? self.epoch) }, maxReplay: maxReplay, maxBuffered: 50)
    }

    @Test func missedNotificationsAreReplayedInOrderThenTheLiveOnes() {
        var merge = recovery(since: 41)
        #expect(merge.historyQuery.after == 41)
        // Live publications arrive while the history is read: one the history also holds,
        // and two newer ones.
        merge.live(live(46))
        merge.live(live(47))
        merge.live(live(48))
        let outcome = merge.historyRead(page(latest: 46, retained: 1...46, after: 41))
        #expect(outcome.position == StreamPosition(offset: 46, epoch: epoch))
        #expect(outcome.recovery == .init(recovered: true, replayed: 5))
        #expect(offsets(outcome.deliveries) == [42, 43, 44, 45, 46, 47, 48])
    }

    @Test func liveNotificationsBeforeTheHistoryReadAreNotDuplicated() {
        // Everything live was also in the history: each offset goes out once.
        var merge = recovery(since: 10)
        for offset in 11...13 { merge.live(live(Int64(offset))) }
        let outcome = merge.historyRead(page(latest: 13, retained: 1...13, after: 10))
        #expect(offsets(outcome.deliveries) == [11, 12, 13])
    }

    @Test func nothingMissedIsARecoveryOfNothing() {
        var merge = recovery(since: 7)
        merge.live(live(8))
        let outcome = merge.historyRead(page(latest: 7, retained: 1...7, after: 7))
        #expect(outcome.recovery == .init(recovered: true, replayed: 0))
        #expect(offsets(outcome.deliveries) == [8])
    }

    @Test func anotherEpochCannotBeRecovered() {
        var merge = recovery(since: 41, epoch: "old")
        merge.live(live(3))
        let outcome = merge.historyRead(page(latest: 2, retained: 1...2, after: 41))
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
        #expect(outcome.position == StreamPosition(offset: 2, epoch: epoch))
        // Nothing replayed, but nothing live is lost either.
        #expect(offsets(outcome.deliveries) == [3])
    }

    @Test func anOffsetOlderThanTheRetainedHistoryCannotBeRecovered() {
        var merge = recovery(since: 5)
        let outcome = merge.historyRead(page(latest: 30, retained: 21...30, after: 5))
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
        #expect(outcome.deliveries.isEmpty)
    }

    @Test func aGapLongerThanTheReplayBoundIsNotRecovered() {
        var merge = recovery(since: 0, maxReplay: 3)
        #expect(merge.historyQuery.limit == 4)
        let outcome = merge.historyRead(page(latest: 10, retained: 1...4, after: 0))
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
    }

    @Test func anOffsetAheadOfTheChannelIsNotRecovered() {
        var merge = recovery(since: 50)
        let outcome = merge.historyRead(page(latest: 40, retained: 1...40, after: 50))
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
    }

    @Test func aHoleInThePageIsNotRecovered() {
        var merge = recovery(since: 1)
        var broken = page(latest: 4, retained: 1...4, after: 1)
        broken.publications.remove(at: 1)
        #expect(merge.historyRead(broken).recovery == .init(recovered: false, replayed: 0))
    }

    @Test func anEpochChangeWhileReadingLetsTheNewEpochThrough() {
        var merge = recovery(since: 3)
        merge.live(live(4))
        merge.live(live(1, epoch: "e2"))
        let outcome = merge.historyRead(page(latest: 4, retained: 1...4, after: 3))
        #expect(outcome.recovery == .init(recovered: true, replayed: 1))
        // 4 from the history (the live copy is dropped), then the new epoch's first.
        #expect(offsets(outcome.deliveries) == [4, 1])
    }

    @Test func aPlainSubscribeGetsThePositionAndTheLiveNotificationsAfterIt() {
        var merge = recovery(since: nil)
        #expect(merge.historyQuery.after == nil)
        #expect(merge.historyQuery.limit == 0)
        merge.live(live(9))
        merge.live(live(10))
        let outcome = merge.historyRead(page(latest: 9, retained: nil, after: 9))
        #expect(outcome.recovery == nil)
        #expect(outcome.position == StreamPosition(offset: 9, epoch: epoch))
        #expect(offsets(outcome.deliveries) == [10])
    }

    @Test func anUnreadableHistoryPromisesNothingButLosesNoLiveNotification() {
        var merge = recovery(since: 2)
        merge.live(live(3))
        let outcome = merge.historyFailed()
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
        #expect(outcome.position == nil)
        #expect(offsets(outcome.deliveries) == [3])
    }

    @Test func tooManyLiveNotificationsWhileReadingGiveUpTheMerge() {
        var merge = SubscriptionRecovery(since: StreamPosition(offset: 0, epoch: epoch), maxReplay: 100, maxBuffered: 2)
        for offset in 1...3 { merge.live(live(Int64(offset))) }
        let outcome = merge.historyRead(page(latest: 3, retained: 1...3, after: 0))
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
        #expect(outcome.deliveries.isEmpty)
    }

    @Test func historyOffMeansNoPositionAndNoRecovery() {
        var merge = recovery(since: 1)
        let outcome = merge.historyRead(HistoryPage(latest: nil, publications: [], oldest: 0))
        #expect(outcome.position == nil)
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
    }
}

import HeraldCore
@testable import HeraldRedis
import HeraldProtocol
import NIOCore
import Testing

/// The node's own gap healing, without Redis: which messages go to the Hub, in which order,
/// and when the stream must be read.
@Suite struct GapHealingStateMachineTests {
    func publication(_ offset: Int64, epoch: String = "e", channel: String = "c") -> Publication {
        Publication(channel: channel, payload: ByteBuffer(string: "\(offset)"), position: StreamPosition(offset: offset, epoch: epoch))
    }

    func page(_ offsets: ClosedRange<Int64>, latest: Int64? = nil, epoch: String = "e") -> HistoryPage {
        HistoryPage(
            latest: StreamPosition(offset: latest ?? offsets.upperBound, epoch: epoch),
            publications: offsets.map { publication($0, epoch: epoch) }, oldest: offsets.lowerBound)
    }

    /// The offsets the actions deliver, in order.
    func delivered(_ actions: [GapHealingStateMachine.Action]) -> [Int64] {
        actions.flatMap { action -> [Int64] in
            if case .deliver(let publications) = action { return publications.compactMap { $0.position?.offset } }
            return []
        }
    }

    @Test func consecutiveMessagesPassAndDuplicatesAreDropped() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        #expect(delivered(machine.received(publication(1))) == [1])
        #expect(delivered(machine.received(publication(2))) == [2])
        #expect(machine.received(publication(2)).isEmpty)
        #expect(machine.received(publication(1)).isEmpty)
        #expect(delivered(machine.received(publication(3))) == [3])
    }

    @Test func aSkippedOffsetIsReadBackAndDeliveredBeforeWhatFollows() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        _ = machine.received(publication(1))
        #expect(machine.received(publication(4)) == [.fetch(channel: "c", after: 1)])
        // Newer messages wait while the gap is read.
        #expect(machine.received(publication(5)).isEmpty)
        #expect(delivered(machine.fetched("c", page(2...5))) == [2, 3, 4, 5])
        #expect(delivered(machine.received(publication(6))) == [6])
    }

    @Test func aResubscriptionReadsWhatWasPublishedMeanwhile() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        machine.seed("c", StreamPosition(offset: 10, epoch: "e"))
        #expect(machine.resubscribed("c") == [.fetch(channel: "c", after: 10)])
        #expect(machine.received(publication(14)).isEmpty, "waits for the read")
        #expect(delivered(machine.fetched("c", page(11...14))) == [11, 12, 13, 14])
        // Nothing missed at all: the read brings nothing and the node goes on.
        #expect(machine.resubscribed("c") == [.fetch(channel: "c", after: 14)])
        #expect(delivered(machine.fetched("c", HistoryPage(latest: StreamPosition(offset: 14, epoch: "e"), publications: [], oldest: 1))) == [])
        #expect(delivered(machine.received(publication(15))) == [15])
    }

    /// A Redis (or one shard) restarted without its data while this node's subscription was
    /// down: what the new stream got before the node resubscribed is delivered, from its start.
    @Test func aResubscriptionToAStreamThatStartedOverReadsItFromItsStart() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        machine.seed("c", StreamPosition(offset: 10, epoch: "e"))
        #expect(machine.resubscribed("c") == [.fetch(channel: "c", after: 10)])
        #expect(machine.received(publication(3, epoch: "f")).isEmpty, "waits for the read")
        // Read after 10 in the new epoch: nothing there, but the epoch says it started over.
        let empty = HistoryPage(latest: StreamPosition(offset: 2, epoch: "f"), publications: [], oldest: 1)
        #expect(machine.fetched("c", empty) == [.fetch(channel: "c", after: 0)])
        #expect(delivered(machine.fetched("c", page(1...2, epoch: "f"))) == [1, 2, 3])
        #expect(delivered(machine.received(publication(4, epoch: "f"))) == [4])
    }

    @Test func aChannelTheNodeNeverSawIsNotRead() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        #expect(machine.resubscribed("new").isEmpty)
    }

    @Test func aLongGapIsReadPageByPage() {
        var machine = GapHealingStateMachine(fetchLimit: 3)
        _ = machine.received(publication(1))
        #expect(machine.received(publication(9)) == [.fetch(channel: "c", after: 1)])
        let first = machine.fetched("c", page(2...4, latest: 9))
        #expect(delivered(first) == [2, 3, 4])
        #expect(first.last == .fetch(channel: "c", after: 4))
        let second = machine.fetched("c", page(5...7, latest: 9))
        #expect(delivered(second) == [5, 6, 7])
        #expect(delivered(machine.fetched("c", page(8...9))) == [8, 9])
    }

    @Test func whatTheStreamNoLongerHoldsStaysAVisibleGap() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        _ = machine.received(publication(1))
        _ = machine.received(publication(50))
        // The stream was trimmed: 2…39 are gone. Deliver what there is; 50 keeps its offset.
        #expect(delivered(machine.fetched("c", page(40...49, latest: 50))) == [50])
        #expect(delivered(machine.received(publication(51))) == [51])
    }

    @Test func aNewEpochResetsTheChannel() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        _ = machine.received(publication(7))
        #expect(delivered(machine.received(publication(1, epoch: "f"))) == [1])
        #expect(delivered(machine.received(publication(2, epoch: "f"))) == [2])
    }

    @Test func aFailedReadIsRetriedAndHealsTheGapWhenItSucceeds() {
        var machine = GapHealingStateMachine(fetchLimit: 100, retryDelays: [.milliseconds(100), .milliseconds(200)])
        _ = machine.received(publication(1))
        _ = machine.received(publication(3))
        #expect(machine.fetchFailed("c") == [.fetchLater(channel: "c", after: 1, delay: .milliseconds(100))])
        #expect(machine.received(publication(4)).isEmpty, "a live message overtook the gap being retried")
        #expect(machine.fetchFailed("c") == [.fetchLater(channel: "c", after: 1, delay: .milliseconds(200))])
        #expect(delivered(machine.fetched("c", page(2...4))) == [2, 3, 4])
        // The budget starts afresh for the next gap.
        _ = machine.received(publication(6))
        #expect(machine.fetchFailed("c") == [.fetchLater(channel: "c", after: 4, delay: .milliseconds(100))])
    }

    @Test func aReadThatKeepsFailingDeliversWhatWaitsOnceTheRetriesAreSpent() {
        var machine = GapHealingStateMachine(fetchLimit: 100, retryDelays: [.milliseconds(100)])
        _ = machine.received(publication(1))
        _ = machine.received(publication(3))
        _ = machine.received(publication(4))
        #expect(delivered(machine.fetchFailed("c")) == [])
        #expect(delivered(machine.fetchFailed("c")) == [3, 4])
        #expect(delivered(machine.received(publication(5))) == [5])
        #expect(machine.fetchFailed("c").isEmpty, "a stale failure restarted healing")
    }

    @Test func theBufferIsBounded() {
        var machine = GapHealingStateMachine(maxBuffered: 2, fetchLimit: 100)
        _ = machine.received(publication(1))
        _ = machine.received(publication(3))
        _ = machine.received(publication(4))
        #expect(delivered(machine.received(publication(5))) == [3, 4, 5])
    }

    @Test func publicationsWithoutPositionPassAndForgottenChannelsStartAfresh() {
        var machine = GapHealingStateMachine(fetchLimit: 100)
        let plain = Publication(channel: "c", payload: ByteBuffer(string: "{}"))
        #expect(machine.received(plain) == [.deliver([plain])])
        _ = machine.received(publication(5))
        machine.forget("c")
        #expect(delivered(machine.received(publication(9))) == [9])
    }
}

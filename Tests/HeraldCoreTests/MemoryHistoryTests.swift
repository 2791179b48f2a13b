@testable import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// The in-memory history's bounds: per channel, per node, in time; and idempotency keys.
@Suite struct MemoryHistoryTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func payload(_ text: String = "x") -> ByteBuffer { ByteBuffer(string: #"{"t":"\#(text)"}"#) }

    @Test func offsetsCountFromOneAndThePayloadCarriesThePosition() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 10))
        let (first, bytes) = history.append(payload(), to: "c", now: start)
        #expect(first.offset == 1)
        #expect(String(buffer: bytes) == #"{"t":"x","offset":1,"epoch":"\#(first.epoch)"}"#)
        let (second, _) = history.append(payload(), to: "c", now: start)
        #expect(second == StreamPosition(offset: 2, epoch: first.epoch))
        let (other, _) = history.append(payload(), to: "d", now: start)
        #expect(other.offset == 1)
        #expect(other.epoch != first.epoch)
    }

    @Test func aChannelKeepsAtMostSizeNotifications() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 3))
        for index in 1...5 { _ = history.append(payload("\(index)"), to: "c", now: start) }
        let page = history.page(of: "c", after: 0, limit: 10, now: start)
        #expect(page.latest?.offset == 5)
        #expect(page.oldest == 3)
        #expect(page.publications.compactMap { $0.position?.offset } == [3, 4, 5])
        #expect(!page.covers(after: 1))
        #expect(page.covers(after: 2))
        #expect(history.page(of: "c", after: 3, limit: 1, now: start).publications.compactMap { $0.position?.offset } == [4])
    }

    @Test func aChannelWithoutPublicationsGetsAnEpochThatLasts() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 3))
        let empty = history.page(of: "quiet", after: nil, limit: 0, now: start)
        #expect(empty.latest?.offset == 0)
        let (first, _) = history.append(payload(), to: "quiet", now: start + .seconds(1))
        #expect(first.epoch == empty.latest?.epoch)
    }

    @Test func aChannelIsForgottenTTLAfterItsLastPublish() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 3, ttl: .seconds(10)))
        let (first, _) = history.append(payload(), to: "c", now: start)
        history.expire(now: start + .seconds(9))
        #expect(history.channels["c"] != nil)
        history.expire(now: start + .seconds(11))
        #expect(history.channels["c"] == nil)
        #expect(history.bytes == 0)
        let (again, _) = history.append(payload(), to: "c", now: start + .seconds(12))
        #expect(again.offset == 1)
        #expect(again.epoch != first.epoch)
    }

    @Test func theNodeWideBoundDropsTheOldestChannelsNotificationsFirst() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 100, maxBytes: 2000))
        var when = start
        for channel in ["old", "middle", "new"] {
            for _ in 0..<10 { _ = history.append(payload(String(repeating: "y", count: 40)), to: channel, now: when) }
            when = when + .seconds(1)
        }
        #expect(history.bytes <= 2000)
        #expect(history.channels["old"]?.entries.isEmpty == true)
        #expect(history.channels["new"]?.entries.count == 10)
        // The position goes on: a client asking for the dropped range learns it cannot recover.
        let (next, _) = history.append(payload(), to: "old", now: when)
        #expect(next.offset == 11)
        #expect(!history.page(of: "old", after: 3, limit: 100, now: when).covers(after: 3))
    }

    @Test func idempotencyKeysLastTheirWindow() {
        var history = MemoryHistory(policy: HistoryPolicy(size: 1, idempotencyWindow: .seconds(5)))
        let receipt = PublishReceipt(id: "n1", position: StreamPosition(offset: 1, epoch: "e"))
        history.remember(receipt, key: "k", now: start)
        #expect(history.duplicate(of: "k", now: start + .seconds(4)) == PublishReceipt(id: "n1", position: receipt.position, duplicate: true))
        #expect(history.duplicate(of: "other", now: start) == nil)
        #expect(history.duplicate(of: "k", now: start + .seconds(6)) == nil)
    }
}

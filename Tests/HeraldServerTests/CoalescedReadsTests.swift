import HeraldCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import HeraldServer

/// Subscribes asking for the same read before it is sent share it; one asking after it was
/// sent gets a read of its own (it may have joined after the shared read ran).
@Suite struct CoalescedReadsTests {
    static func answer(_ count: Int) -> Session.SubscribeAnswer {
        .read(.success(HistoryPage(latest: nil, publications: [], oldest: 0)), count: count)
    }

    static func count(_ answer: Session.SubscribeAnswer) -> Int? {
        if case .read(_, let count) = answer { return count }
        return nil
    }

    @Test func requestsOfOneTickShareTheReadAndLaterOnesReadAgain() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let reads = CoalescedReads()
        let sent = NIOLockedValueBox(0)
        let key = CoalescedReads.Key(channel: "room", after: 7, limit: 100)
        let read: @Sendable () async -> Session.SubscribeAnswer = {
            let number = sent.withLockedValue { sent in
                sent += 1
                return sent
            }
            return Self.answer(number)
        }
        // Five subscribes in one tick of the loop, and one for another page of the same channel.
        let (same, other) = try await loop.submit {
            ((0..<5).map { _ in reads.read(key, on: loop, read) }, reads.read(.init(channel: "room", after: nil, limit: 100), on: loop, read))
        }.get()
        let answers = try await EventLoopFuture.whenAllSucceed(same, on: loop).get().map(Self.count)
        #expect(Set(answers).count == 1, "one read shared by the five: \(answers)")
        #expect(Self.count(try await other.get()) != answers.first)
        #expect(sent.withLockedValue { $0 } == 2)
        // After the shared read was sent, the same key is a new read.
        let later = try await reads.read(key, on: loop, read).get()
        #expect(Self.count(later) == 3)
        #expect(reads.waitingCount == 0)
    }
}

import HeraldCore
import NIOConcurrencyHelpers
import NIOCore

/// Subscribes that ask for the same read of the same channel before it is sent share it: one
/// history read and one count for a crowd of clients resubscribing to one channel (a
/// reconnect storm), instead of one each.
///
/// Why sharing is safe: a subscriber joins the channel (live deliveries start) *before* it
/// asks for the read, and a request is only ever attached to a read that has not been sent
/// yet — the read leaves when its entry is taken out of the table. So the shared read runs
/// after every sharer joined, and each sharer's merge of page and live traffic holds as if it
/// had read alone. The first request of a key waits for the end of its event loop's current
/// tick (`execute`), which is how the requests of one burst of readable sockets gather.
final class CoalescedReads: Sendable {
    struct Key: Hashable, Sendable {
        var channel: String
        var after: Int64?
        var limit: Int
    }

    private let waiting = NIOLockedValueBox<[Key: [EventLoopPromise<Session.SubscribeAnswer>]]>([:])

    /// The answer of `read` for `key`, shared with every request for `key` made before it is
    /// sent. Completes on `loop`.
    func read(
        _ key: Key, on loop: any EventLoop, _ read: @escaping @Sendable () async -> Session.SubscribeAnswer
    ) -> EventLoopFuture<Session.SubscribeAnswer> {
        let promise = loop.makePromise(of: Session.SubscribeAnswer.self)
        let first = waiting.withLockedValue { waiting -> Bool in
            if waiting[key] != nil {
                waiting[key]!.append(promise)
                return false
            }
            waiting[key] = [promise]
            return true
        }
        guard first else { return promise.futureResult }
        loop.execute {
            // Taken out before the read is sent: later requests start a read of their own.
            let sharers = self.waiting.withLockedValue { $0.removeValue(forKey: key) } ?? []
            loop.makeFutureWithLoopTask(read).whenSuccess { answer in
                for sharer in sharers { sharer.succeed(answer) }
            }
        }
        return promise.futureResult
    }

    /// Requests waiting for their read to be sent (for tests).
    var waitingCount: Int { waiting.withLockedValue { $0.values.reduce(0) { $0 + $1.count } } }
}

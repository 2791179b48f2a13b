import NIOCore
import Synchronization

/// The publishing node's side of receipts: it opens one per waiting publish, gathers the
/// nodes' reports and answers once every node that had subscribers has reported (and, for
/// `wait=acked`, every written copy was acknowledged) — or when the timeout passes, saying
/// which nodes did not report.
public final class ReceiptCollector: Sendable {
    public struct Result: Sendable, Equatable {
        /// Sockets the notification was written to, summed over the nodes that reported.
        public var delivered: Int
        /// Nodes that reported.
        public var nodes: Int
        /// Every node that had subscribers reported.
        public var complete: Bool
        /// Nodes that had subscribers and did not report in time, sorted.
        public var missingNodes: [String]
        /// Clients that acknowledged it in time (`wait=acked` only).
        public var acked: Int?
    }

    public enum Refusal: Error, Sendable, Equatable {
        /// Too many publishes wait for receipts on this node.
        case tooManyPending(Int)
    }

    private struct Entry {
        var wantsAcks: Bool
        var written: [String: Int] = [:]
        var acked = 0
        var expected: Set<String>?
        var promise: EventLoopPromise<Result>?
        var timeout: Scheduled<Void>?

        var allReported: Bool { expected.map { $0.isSubset(of: Set(written.keys)) } ?? false }
        var isDone: Bool { allReported && (!wantsAcks || acked >= written.values.reduce(0, +)) }

        func result() -> Result {
            let missing = (expected ?? []).subtracting(written.keys).sorted()
            return Result(
                delivered: written.values.reduce(0, +), nodes: written.count, complete: missing.isEmpty,
                missingNodes: missing, acked: wantsAcks ? acked : nil)
        }
    }

    public let maxPending: Int
    private let entries = Mutex<[String: Entry]>([:])

    public init(maxPending: Int = 10_000) {
        self.maxPending = maxPending
    }

    /// Opens `request` before its publication goes out: reports may arrive before the publish
    /// answers.
    public func open(_ request: ReceiptRequest) throws(Refusal) {
        let limit = maxPending
        let refused = entries.withLock { entries in
            guard entries.count < limit else { return true }
            entries[request.id] = Entry(wantsAcks: request.wantsAcks)
            return false
        }
        if refused { throw .tooManyPending(limit) }
    }

    /// The publish went out and these nodes had subscribers: answers once they all reported, or
    /// after `timeout`.
    public func wait(for id: String, expected: Set<String>, timeout: TimeAmount, on loop: any EventLoop) -> EventLoopFuture<Result> {
        let promise = loop.makePromise(of: Result.self)
        let done: Result? = entries.withLock { entries in
            guard var entry = entries[id] else { return Result(delivered: 0, nodes: 0, complete: false, missingNodes: expected.sorted(), acked: nil) }
            entry.expected = expected
            entry.promise = promise
            if entry.isDone {
                entries[id] = nil
                return entry.result()
            }
            entry.timeout = loop.scheduleTask(in: timeout) { self.expire(id) }
            entries[id] = entry
            return nil
        }
        if let done { promise.succeed(done) }
        return promise.futureResult
    }

    /// The publish failed: nothing will report.
    public func cancel(_ id: String) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    /// A node's report.
    public func received(_ report: ReceiptReport) {
        let finished: (EventLoopPromise<Result>, Result)? = entries.withLock { entries in
            guard var entry = entries[report.id] else { return nil }
            switch report.kind {
            case .written(let count): entry.written[report.node, default: 0] += count
            case .acked(let count): entry.acked += count
            }
            guard entry.isDone, let promise = entry.promise else {
                entries[report.id] = entry
                return nil
            }
            entries[report.id] = nil
            entry.timeout?.cancel()
            return (promise, entry.result())
        }
        if let (promise, result) = finished { promise.succeed(result) }
    }

    private func expire(_ id: String) {
        let finished: (EventLoopPromise<Result>, Result)? = entries.withLock { entries in
            guard let entry = entries.removeValue(forKey: id), let promise = entry.promise else { return nil }
            return (promise, entry.result())
        }
        if let (promise, result) = finished { promise.succeed(result) }
    }

    /// Receipts waiting.
    public var pending: Int { entries.withLock { $0.count } }
}

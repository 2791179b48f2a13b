import NIOCore

/// How long, and how often, a call Redis Cluster turned away is tried again: `MOVED`, `ASK`,
/// `TRYAGAIN`, `CLUSTERDOWN` mean nothing ran, and the slot map is being refreshed meanwhile.
/// A short backoff (20 ms, doubling up to 400 ms) within ``budget`` in all — inside the 5 s in
/// which an unreachable slot's publishes must be answered. One budget per call, shared by the
/// broker's calls and presence reads.
struct RedirectRetry: Sendable {
    static let budget = TimeAmount.seconds(3)
    private static let longest = TimeAmount.milliseconds(400)

    private let deadline = NIODeadline.now() + RedirectRetry.budget
    private var delay = TimeAmount.milliseconds(20)

    /// The pause before the next attempt, backing off; `nil` once the budget would run out.
    mutating func next() -> TimeAmount? {
        guard NIODeadline.now() + delay < deadline else { return nil }
        defer { delay = min(delay * 2, Self.longest) }
        return delay
    }

    /// Sleeps out the pause before the next attempt; false once the budget is spent.
    mutating func wait() async -> Bool {
        guard let pause = next() else { return false }
        try? await Task.sleep(nanoseconds: UInt64(pause.nanoseconds))
        return true
    }
}

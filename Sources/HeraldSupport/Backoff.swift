/// Exponential backoff with full jitter: attempt *n* waits a random time in
/// `[0, min(cap, base · 2ⁿ)]`, so that peers cut off together do not come back together.
///
/// The one reconnect policy of the code base: the Redis links of a node and the client
/// library both use it.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration
    /// Failed attempts since the last ``reset()``.
    public private(set) var attempt = 0

    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt; advances the attempt count.
    public mutating func next() -> Duration {
        let exponent = min(attempt, 30)
        attempt += 1
        let ceiling = min(cap, base * (1 << exponent))
        return .nanoseconds(Int64.random(in: 0...max(ceiling.nanoseconds, 1)))
    }

    /// The ceiling of the next delay (what ``next()`` draws below).
    public var ceiling: Duration { min(cap, base * (1 << min(attempt, 30))) }

    /// A success: the next failure starts again from `base`.
    public mutating func reset() {
        attempt = 0
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating at `Int64.max`).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return scaled + attoseconds / 1_000_000_000
    }
}

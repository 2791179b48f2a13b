import NIOCore

/// Exponential backoff with full jitter: attempt *n* waits a random time in
/// `[0, min(cap, base · 2ⁿ)]`, so that nodes cut off together do not reconnect together.
public struct Backoff: Sendable {
    public var base: TimeAmount
    public var cap: TimeAmount
    public private(set) var attempt = 0

    public init(base: TimeAmount = .milliseconds(100), cap: TimeAmount = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The delay before the next attempt; advances the attempt count.
    public mutating func next() -> TimeAmount {
        let exponent = min(attempt, 30)
        attempt += 1
        let ceiling = min(cap.nanoseconds, base.nanoseconds << exponent)
        return .nanoseconds(Int64.random(in: 0...max(ceiling, 1)))
    }

    public mutating func reset() {
        attempt = 0
    }
}

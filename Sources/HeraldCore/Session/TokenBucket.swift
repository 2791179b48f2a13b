import NIOCore

/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// Time is passed in rather than read, so tests drive it deterministically.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var updated: NIODeadline

    public init(rate: Double, burst: Double, now: NIODeadline) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now
    }

    /// Takes one token if there is one.
    public mutating func take(now: NIODeadline) -> Bool {
        let elapsed = Double((now - updated).nanoseconds) / 1e9
        if elapsed > 0 {
            tokens = min(burst, tokens + elapsed * rate)
            updated = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

import NIOConcurrencyHelpers
import NIOCore

/// Admits new WebSocket connections: at most so many per client address, and no faster than
/// a node-wide token bucket allows.
///
/// The per-address table holds only addresses with open connections (an entry leaves when
/// its count reaches zero), so it is bounded by the node's connection limit. Checked once
/// per handshake under one lock; nothing here touches the delivery path.
public final class ConnectionGate: Sendable {
    public enum Verdict: Equatable, Sendable {
        case admitted
        case tooManyFromAddress(limit: Int)
        case tooFast
    }

    private struct State {
        var perAddress = AddressCounts()
        var bucket: TokenBucket
    }

    /// Most connections per address; 0 means no limit.
    public let maxPerAddress: Int
    private let state: NIOLockedValueBox<State>

    public init(maxPerAddress: Int, rate: Double, burst: Double, now: NIODeadline = .now()) {
        self.maxPerAddress = maxPerAddress
        self.state = NIOLockedValueBox(State(bucket: TokenBucket(rate: rate, burst: burst, now: now)))
    }

    /// Takes a slot for `address`; pair every `.admitted` with ``release(_:)``.
    public func admit(_ address: String, now: NIODeadline = .now()) -> Verdict {
        state.withLockedValue { state in
            if maxPerAddress > 0, state.perAddress.count(address) >= maxPerAddress { return .tooManyFromAddress(limit: maxPerAddress) }
            guard state.bucket.take(now: now) else { return .tooFast }
            _ = state.perAddress.take(address, limit: 0)
            return .admitted
        }
    }

    /// Gives back the slot of a connection from `address` that closed.
    public func release(_ address: String) {
        state.withLockedValue { $0.perAddress.give(address) }
    }

    /// Open connections from `address` (for tests and stats).
    public func openConnections(from address: String) -> Int {
        state.withLockedValue { $0.perAddress.count(address) }
    }
}

import HeraldCore
import NIOCore

/// Limits on opening connections: the per-address and rate limits on WebSockets and SSE
/// streams, checked before any session exists (the node-wide cap is
/// `HeraldConfiguration.maxConnections`), and the deadlines every HTTP connection has until it
/// is useful (see ``RequestHeadDeadline``).
public struct ConnectionLimits: Sendable {
    /// Most connections from one client address; 0 turns the limit off.
    public var maxPerAddress: Int
    /// New connections per second the node accepts, on average.
    public var rate: Double
    /// New connections accepted in a burst above `rate`.
    public var burst: Double
    /// Peers whose `X-Forwarded-For` header is believed. Anyone else could forge it, so by
    /// default no one is trusted and the TCP peer address is the client address.
    public var trustedProxies: TrustedProxies
    /// How long a new connection may take to send its first complete request head.
    public var headerTimeout: TimeAmount
    /// How long a keep-alive connection may wait, after a response, for its next request head.
    public var idleTimeout: TimeAmount
    /// Most connections from one peer address still owing a complete request head; 0: no limit.
    public var maxPendingPerAddress: Int

    public init(
        maxPerAddress: Int = 1000, rate: Double = 1000, burst: Double = 2000,
        trustedProxies: TrustedProxies = .none, headerTimeout: TimeAmount = .seconds(10),
        idleTimeout: TimeAmount = .seconds(60), maxPendingPerAddress: Int = 1000
    ) {
        self.maxPerAddress = maxPerAddress
        self.rate = rate
        self.burst = burst
        self.trustedProxies = trustedProxies
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxPendingPerAddress = maxPendingPerAddress
    }
}

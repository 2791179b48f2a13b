import HeraldCore

/// Limits on opening WebSocket connections, checked at the handshake before any session
/// exists (the node-wide cap is `HeraldConfiguration.maxConnections`).
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

    public init(
        maxPerAddress: Int = 1000, rate: Double = 1000, burst: Double = 2000,
        trustedProxies: TrustedProxies = .none
    ) {
        self.maxPerAddress = maxPerAddress
        self.rate = rate
        self.burst = burst
        self.trustedProxies = trustedProxies
    }
}

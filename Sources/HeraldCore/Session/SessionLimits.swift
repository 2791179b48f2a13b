
/// Per-connection limits the session rules enforce. Every value comes from configuration.
public struct SessionLimits: Sendable {
    /// Most channels one connection may be subscribed to at once.
    public var maxSubscriptions: Int
    /// Longest name `set_name` accepts, in characters.
    public var maxNameLength: Int
    /// Inbound messages per second a connection may send, on average.
    public var rateLimit: Double
    /// Messages a connection may send in a burst above `rateLimit`.
    public var rateBurst: Double
    /// Consecutive rate-limited messages after which the connection is closed with 1008.
    public var rateLimitStrikes: Int

    public init(
        maxSubscriptions: Int = 1000, maxNameLength: Int = 64, rateLimit: Double = 50,
        rateBurst: Double = 100, rateLimitStrikes: Int = 20
    ) {
        self.maxSubscriptions = maxSubscriptions
        self.maxNameLength = maxNameLength
        self.rateLimit = rateLimit
        self.rateBurst = rateBurst
        self.rateLimitStrikes = rateLimitStrikes
    }
}

/// Where a supervised Redis link connects, and whether a server it reached may be used: a
/// fixed address (``FixedRedisLocator``), or wherever Redis Sentinel says the master is.
///
/// Contract: ``locate()`` returns the address to connect to now (it may ask the network);
/// ``admit(_:at:)`` runs on every fresh connection before anything else is sent on it and
/// throws if the server must not be used (a replica, after a failover) — the link then
/// closes it and locates again. ``generation`` changes whenever the answer of ``locate()``
/// may have changed, so a link waiting to reconnect can go at once instead of sleeping out
/// its backoff.
public protocol RedisLocator: Sendable, CustomStringConvertible {
    /// A stable name for metrics labels: `host:port`, or `sentinel/<master name>`
    /// (``description`` may change with each failover).
    var name: String { get }
    func locate() async throws -> RedisURL
    func admit(_ connection: RedisConnection, at url: RedisURL) async throws
    var generation: Int { get }
}

/// One Redis at one address: nothing to ask, nothing to check.
public struct FixedRedisLocator: RedisLocator {
    public let url: RedisURL

    public init(_ url: RedisURL) {
        self.url = url
    }

    public func locate() async throws -> RedisURL { url }
    public func admit(_ connection: RedisConnection, at url: RedisURL) async throws {}
    public var generation: Int { 0 }
    public var name: String { description }
    /// `host:port`, as health and errors name a Redis.
    public var description: String { "\(url.host):\(url.port)" }
}

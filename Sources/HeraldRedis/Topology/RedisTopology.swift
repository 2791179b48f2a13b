import HeraldCore
import Logging
import NIOCore
import RedisBridge

/// Where this node's Redis is and how its links to it are made: the one place the broker, the
/// registry and presence get their connections and their key names from.
///
/// Each of them keeps its own link (a publish pipeline must not queue behind a registry
/// rewrite, and pub/sub needs a connection of its own), but every link is made here the same
/// way: same URL and credentials, same reconnect backoff (``RedisSupervisor``), the same
/// `herald_redis_reconnects_total{connection}` series, the same ``RedisKeys``. Today that is
/// one Redis; spreading channels over several is a change to this type, not to its users.
public struct RedisTopology: Sendable {
    public let url: RedisURL
    public let keys: RedisKeys
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: NodeMetrics

    public init(url: RedisURL, prefix: String, group: any EventLoopGroup, logger: Logger, metrics: NodeMetrics = NodeMetrics()) {
        self.url = url
        self.keys = RedisKeys(prefix: prefix)
        self.group = group
        self.logger = logger
        self.metrics = metrics
    }

    /// A supervised link named `name` (`publish`, `subscribe`, `registry`, `presence`): kept up
    /// until its `run()` is cancelled, its reconnects counted under that name.
    /// - Parameter onMessage: makes it a pub/sub link.
    func link(_ name: String, onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)? = nil) -> RedisSupervisor {
        let metrics = self.metrics
        return RedisSupervisor(
            url: url, name: name, group: group, logger: logger, onReconnect: { metrics.redisReconnected(name) },
            onMessage: onMessage)
    }

    /// A one-off connection for a last word at shutdown (deregistering, saying goodbye),
    /// given up after `timeout`.
    func connectOnce(on loop: any EventLoop, timeout: TimeAmount) async throws -> RedisConnection {
        try await RedisConnection.connect(to: url, group: loop, connectTimeout: timeout)
    }

    /// Where the links' replies are handled when a component needs a loop of its own.
    func nextLoop() -> any EventLoop { group.next() }

    /// How the broker says Redis cannot be reached.
    var unreachable: String { "Redis at \(url.host):\(url.port) is unreachable" }
}

import HeraldCore
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle

/// Where this node's Redis is and how its links to it are made: the one place the broker, the
/// registry and presence get their connections and their key names from.
///
/// Each of them keeps its own link (a publish pipeline must not queue behind a registry
/// rewrite, and pub/sub needs a connection of its own), but every link is made here the same
/// way: same credentials, same reconnect backoff (``RedisSupervisor``), the same
/// `herald_redis_reconnects_total{connection}` series, the same ``RedisKeys``.
///
/// With several independent shards (`HERALD_REDIS_URL` listing several URLs) a channel's keys
/// and pub/sub all live on the shard ``ShardMap`` names; the registry's node-wide keys live on
/// the first shard. ``shard(_:)`` is the one-Redis view a broker or presence store works on.
public struct RedisTopology: Sendable {
    /// Where each shard's links connect, in configured order; one for a plain `redis://` URL
    /// or a Sentinel deployment.
    public let shards: [any RedisLocator]
    /// What must run for the locators to follow failovers (the sentinels' watchers, the
    /// cluster's slot map).
    public let monitors: [any RedisTopologyMonitor]
    /// A Redis Cluster's slot map; `nil` for independent shards or Sentinel. With it, pub/sub is
    /// sharded (`SSUBSCRIBE`/`SPUBLISH`): a publication travels only within its slot's shard.
    public let cluster: ClusterMonitor?
    public let map: ShardMap
    public let keys: RedisKeys
    /// How long a link's commands may wait without any reply before the link is rebuilt, so a
    /// frozen or unreachable Redis fails publishes (503) in bounded time.
    public var commandTimeout = RedisTopology.defaultCommandTimeout
    public static let defaultCommandTimeout = TimeAmount.seconds(3)
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: NodeMetrics

    public init(url: RedisURL, prefix: String, group: any EventLoopGroup, logger: Logger, metrics: NodeMetrics = NodeMetrics()) {
        self.init(shards: [url], prefix: prefix, group: group, logger: logger, metrics: metrics)
    }

    public init(shards: [RedisURL], prefix: String, group: any EventLoopGroup, logger: Logger, metrics: NodeMetrics = NodeMetrics()) {
        self.init(
            locators: shards.map { FixedRedisLocator($0) }, monitors: [], prefix: prefix, group: group, logger: logger,
            metrics: metrics)
    }

    public init(
        _ deployment: RedisDeployment, prefix: String, group: any EventLoopGroup, logger: Logger,
        metrics: NodeMetrics = NodeMetrics()
    ) {
        switch deployment {
        case .shards(let urls):
            self.init(shards: urls, prefix: prefix, group: group, logger: logger, metrics: metrics)
        case .sentinel(let sentinels, let name, let master):
            let locator = SentinelLocator(
                sentinels: sentinels, masterName: name, template: master, group: group, logger: logger,
                onFailover: { metrics.redisFailoverFollowed() })
            self.init(locators: [locator], monitors: [locator], prefix: prefix, group: group, logger: logger, metrics: metrics)
        case .cluster(let seeds):
            let monitor = ClusterMonitor(
                seeds: seeds, group: group, logger: logger, onChange: { metrics.redisFailoverFollowed() })
            // The registry's keys share one slot, the prefix's: its links follow that slot.
            let registry = monitor.locator(forSlot: ClusterSlot.slot(ofTag: prefix))
            self.init(
                locators: [registry], monitors: [monitor], cluster: monitor, prefix: prefix, group: group, logger: logger,
                metrics: metrics)
        }
    }

    private init(
        locators: [any RedisLocator], monitors: [any RedisTopologyMonitor], cluster: ClusterMonitor? = nil, prefix: String,
        group: any EventLoopGroup, logger: Logger, metrics: NodeMetrics
    ) {
        precondition(!locators.isEmpty, "a Redis topology needs at least one Redis")
        self.shards = locators
        self.monitors = monitors
        self.cluster = cluster
        self.map = ShardMap(count: locators.count)
        self.keys = RedisKeys(prefix: prefix)
        self.group = group
        self.logger = logger
        self.metrics = metrics
    }

    /// The first shard: the whole of a one-Redis topology, and where the registry lives.
    public var locator: any RedisLocator { shards[0] }

    /// Shard `index` alone, as its broker and presence store see it.
    public func shard(_ index: Int) -> RedisTopology {
        alone(shards[index])
    }

    /// One cluster master alone, as the broker and presence store serving its slots see it.
    public func clusterNode(_ url: RedisURL) -> RedisTopology {
        alone(FixedRedisLocator(url))
    }

    /// The one Redis `locator` finds, with this topology's keys, links and timeouts.
    private func alone(_ locator: any RedisLocator) -> RedisTopology {
        var topology = RedisTopology(
            locators: [locator], monitors: [], cluster: cluster, prefix: keys.prefix, group: group, logger: logger,
            metrics: metrics)
        topology.commandTimeout = commandTimeout
        return topology
    }

    /// Pub/sub commands: sharded in a Redis Cluster, so a publication is not sent to every node.
    var subscribeCommand: String { cluster == nil ? "SUBSCRIBE" : "SSUBSCRIBE" }
    var unsubscribeCommand: String { cluster == nil ? "UNSUBSCRIBE" : "SUNSUBSCRIBE" }
    var publishCommand: String { cluster == nil ? "PUBLISH" : "SPUBLISH" }

    /// How health and errors name a Redis: `host:port` (a Sentinel deployment's current master).
    public var address: String { locator.description }

    /// A supervised link named `name` (`publish`, `subscribe`, `registry`, `presence`): kept up
    /// until its `run()` is cancelled, its reconnects counted under that name.
    /// - Parameter onMessage: makes it a pub/sub link.
    /// - Parameter onDropped: a sharded subscription the cluster dropped (its slot moved).
    func link(
        _ name: String, onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)? = nil,
        onDropped: (@Sendable (ByteBuffer) -> Void)? = nil
    ) -> RedisSupervisor {
        let (metrics, locator) = (self.metrics, self.locator)
        // Registered at zero now, so dashboards find the series before the first reconnect.
        metrics.redisLinkCreated(name, shard: locator.name)
        return RedisSupervisor(
            locator: locator, name: name, group: group, logger: logger, commandTimeout: commandTimeout,
            onReconnect: { metrics.redisReconnected(name, shard: locator.name) }, onMessage: onMessage, onDropped: onDropped)
    }

    /// Time since the topology was last confirmed (the oldest of its monitors'); `nil` for
    /// fixed addresses, or before the first answer.
    public var topologyAge: TimeAmount? {
        monitors.compactMap(\.topologyAge).max()
    }

    /// A one-off connection for a last word at shutdown (deregistering, saying goodbye),
    /// given up after `timeout`.
    func connectOnce(on loop: any EventLoop, timeout: TimeAmount) async throws -> RedisConnection {
        try await RedisConnection.connect(to: try await locator.locate(), group: loop, connectTimeout: timeout)
    }

    /// Where the links' replies are handled when a component needs a loop of its own.
    func nextLoop() -> any EventLoop { group.next() }

    /// How the broker says Redis cannot be reached.
    var unreachable: String { "Redis at \(address) is unreachable" }
}

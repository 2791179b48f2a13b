import CoreMetrics
import NIOCore
import Synchronization

/// Everything a node counts, as swift-metrics handles made by one factory — the node's own
/// Prometheus registry in a server, nothing at all by default (tests of the core, tools).
///
/// Labels are fixed, small sets (transport, reason, outcome, route, status class): never a
/// channel, a client or a user, so the number of series does not grow with traffic.
/// Every handle is thread-safe and cheap (an atomic add); hot paths (delivery, publish) touch
/// one or two per batch, never per subscriber.
public final class NodeMetrics: Sendable {
    /// How a client is connected.
    public enum Transport: String, Sendable, CaseIterable {
        case websocket
        case sse
    }

    public let factory: any MetricsFactory
    /// The shards the last scrape reported.
    private let shardNames = Mutex<Set<String>>([])

    private let connected: [Transport: Meter]
    private let connects: [Transport: Counter]
    private let disconnects: [Transport: [DisconnectReason: Counter]]
    /// Client subscriptions to public channels on this node.
    public let subscriptions: Meter
    private let published: [PublicationSource: Counter]
    /// Notifications written to this node's sockets and streams.
    public let deliveries: Counter
    /// From the moment a node accepted a publication to the moment this node wrote it, once per
    /// publication and event loop.
    public let deliveryLatency: Timer
    private let recoveries: [Bool: Counter]
    public let duplicates: Counter
    /// Connections whose queue passed its bound, by the policy applied (`disconnect`,
    /// `catch_up`, `latest`).
    private let slowConsumers: [SlowConsumerPolicy: Counter]
    /// Catch-ups served: `recovered` (every missed notification sent) or `reset` (history no
    /// longer covered the gap: `subscribed` again with `recovered:false`).
    private let catchUps: [Bool: Counter]
    /// `latest` notifications replaced by a newer one before a slow client could read them.
    public let conflated: Counter
    private let redisLatency: RedisTimers
    /// Join and leave events that did not fit their batch (replaced by one `presence_changed`).
    public let joinLeaveOverflows: Counter
    /// Set when scraped: channels with subscribers on this node, and whether the broker is up.
    public let channels: Gauge
    public let brokerUp: Gauge
    /// Pub/sub links rebuilt because their liveness probe did not come back.
    private let redisLinkRebuilds: Counter
    /// Redis masters changed under the node (Sentinel failovers followed).
    private let redisFailovers: Counter

    /// Where a publication came from.
    public enum PublicationSource: String, Sendable, CaseIterable {
        case rest
        case socket
    }

    /// What a node asks of Redis, timed per round trip.
    public enum RedisOperation: String, Sendable, CaseIterable {
        case publish
        case history
        case presence
    }

    /// Histogram buckets of the latency metrics: from 100 µs (loopback) to 5 s (a stalled
    /// backend), dense around the milliseconds notifications usually take.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
    ]

    /// Labels of the metrics whose histograms use ``latencyBuckets``.
    public static let latencyLabels = [
        "herald_delivery_latency_seconds", "herald_redis_command_duration_seconds", "herald_hook_duration_seconds",
    ]

    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
        func each<Key: Hashable, Value>(_ keys: some Sequence<Key>, _ make: (Key) -> Value) -> [Key: Value] {
            Dictionary(uniqueKeysWithValues: keys.map { ($0, make($0)) })
        }
        connected = each(Transport.allCases) {
            Meter(label: "herald_connections", dimensions: [("transport", $0.rawValue)], factory: factory)
        }
        connects = each(Transport.allCases) {
            Counter(label: "herald_connects_total", dimensions: [("transport", $0.rawValue)], factory: factory)
        }
        disconnects = each(Transport.allCases) { transport in
            each(DisconnectReason.allCases) {
                Counter(
                    label: "herald_disconnects_total", dimensions: [("transport", transport.rawValue), ("reason", $0.rawValue)],
                    factory: factory)
            }
        }
        subscriptions = Meter(label: "herald_subscriptions", factory: factory)
        published = each(PublicationSource.allCases) {
            Counter(label: "herald_publications_total", dimensions: [("source", $0.rawValue)], factory: factory)
        }
        deliveries = Counter(label: "herald_deliveries_total", factory: factory)
        deliveryLatency = Timer(label: "herald_delivery_latency_seconds", factory: factory)
        recoveries = each([true, false]) {
            Counter(
                label: "herald_history_recoveries_total", dimensions: [("outcome", $0 ? "recovered" : "not_recovered")],
                factory: factory)
        }
        duplicates = Counter(label: "herald_idempotent_duplicates_total", factory: factory)
        slowConsumers = each(SlowConsumerPolicy.allCases) {
            Counter(label: "herald_slow_consumers_total", dimensions: [("policy", $0.rawValue)], factory: factory)
        }
        catchUps = each([true, false]) {
            Counter(label: "herald_catch_ups_total", dimensions: [("outcome", $0 ? "recovered" : "reset")], factory: factory)
        }
        conflated = Counter(label: "herald_conflated_total", factory: factory)
        redisLatency = RedisTimers(shard: nil, factory: factory)
        joinLeaveOverflows = Counter(label: "herald_join_leave_overflows_total", factory: factory)
        channels = Gauge(label: "herald_channels", factory: factory)
        brokerUp = Gauge(label: "herald_broker_up", factory: factory)
        redisLinkRebuilds = Counter(label: "herald_redis_link_rebuilds_total", factory: factory)
        redisFailovers = Counter(label: "herald_redis_failovers_total", factory: factory)
    }

    // MARK: Connections

    public func connected(_ transport: Transport) {
        connects[transport]?.increment()
        connected[transport]?.increment()
    }

    public func disconnected(_ transport: Transport, reason: DisconnectReason) {
        connected[transport]?.decrement()
        disconnects[transport]?[reason]?.increment()
    }

    // MARK: Publications

    public func published(from source: PublicationSource, duplicate: Bool) {
        if duplicate { duplicates.increment() } else { published[source]?.increment() }
    }

    /// A subscribe with `since` was answered: the missed notifications were replayed, or not.
    public func recovery(recovered: Bool) {
        recoveries[recovered]?.increment()
    }

    // MARK: Slow consumers

    /// A connection's queue passed its bound and `policy` applies to it.
    public func slowConsumer(_ policy: SlowConsumerPolicy) {
        slowConsumers[policy]?.increment()
    }

    /// A slow client's catch-up was sent (``Session/caughtUp(_:_:)``'s actions): every missed
    /// notification (`.deliver`), or `subscribed` again with `recovered:false`.
    public func caughtUp(_ actions: [Session.Action]) {
        guard let first = actions.first else { return }
        if case .subscribed = first { catchUps[false]?.increment() } else { catchUps[true]?.increment() }
    }

    // MARK: Redis

    /// Times one Redis round trip.
    public func timeRedis<T>(_ operation: RedisOperation, _ body: () async throws -> T) async rethrows -> T {
        try await redisLatency.time(operation, body)
    }

    /// Records one Redis round trip that started at `start` (for future-based callers).
    public func recordRedis(_ operation: RedisOperation, since start: NIODeadline) {
        redisLatency.record(operation, since: start)
    }

    /// The round-trip histograms of one Redis (`host:port` of a shard or cluster master, or
    /// `sentinel/<name>`), made once by the component that talks to it.
    public func redisTimers(shard: String) -> RedisTimers {
        RedisTimers(shard: shard, factory: factory)
    }

    /// `herald_redis_command_duration_seconds{operation, shard}`: one Redis' round trips.
    public struct RedisTimers: Sendable {
        private let timers: [RedisOperation: Timer]

        init(shard: String?, factory: any MetricsFactory) {
            var timers: [RedisOperation: Timer] = [:]
            for operation in RedisOperation.allCases {
                var dimensions = [("operation", operation.rawValue)]
                if let shard { dimensions.append(("shard", shard)) }
                timers[operation] = Timer(label: "herald_redis_command_duration_seconds", dimensions: dimensions, factory: factory)
            }
            self.timers = timers
        }

        public func record(_ operation: RedisOperation, since start: NIODeadline) {
            timers[operation]?.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
        }

        public func time<T>(_ operation: RedisOperation, _ body: () async throws -> T) async rethrows -> T {
            let start = NIODeadline.now()
            defer { record(operation, since: start) }
            return try await body()
        }
    }

    /// A Redis connection of the node (`publish`, `subscribe`, `registry`, `presence`) to the
    /// Redis named `shard` (`host:port`, or `sentinel/<master name>`) came back after it was lost.
    /// Rare: the counter is looked up in the registry each time rather than kept.
    public func redisReconnected(_ connection: String, shard: String) {
        reconnects(connection, shard: shard).increment()
    }

    /// A link was made: its reconnect series exists from now on, at zero.
    public func redisLinkCreated(_ connection: String, shard: String) {
        _ = reconnects(connection, shard: shard)
    }

    private func reconnects(_ connection: String, shard: String) -> Counter {
        Counter(label: "herald_redis_reconnects_total", dimensions: [("connection", connection), ("shard", shard)], factory: factory)
    }

    /// A pub/sub link's probe did not come back; the link is being rebuilt.
    public func redisLinkRebuilt() {
        redisLinkRebuilds.increment()
    }

    /// The node followed Redis to a new master.
    public func redisFailoverFollowed() {
        redisFailovers.increment()
    }

    /// Seconds since the Sentinel master or the cluster's slot map was last confirmed, set per
    /// scrape: a value well above the refresh interval means the node cannot ask any more.
    public func recordTopologyAge(_ age: TimeAmount) {
        Gauge(label: "herald_redis_topology_age_seconds", factory: factory).record(Double(age.nanoseconds) / 1e9)
    }

    /// Whether each Redis shard (`host:port`) is reachable, set per scrape. A shard no longer
    /// listed (a Redis Cluster master that failed over or was emptied) loses its series rather
    /// than reading 0 forever.
    public func recordShards(_ shards: [(name: String, isUp: Bool)]) {
        let gone = shardNames.withLock { names in
            let current = Set(shards.map(\.name))
            defer { names = current }
            return names.subtracting(current)
        }
        for name in gone { shardGauge(name).destroy() }
        for shard in shards { shardGauge(shard.name).record(shard.isUp ? 1 : 0) }
    }

    private func shardGauge(_ name: String) -> Gauge {
        Gauge(label: "herald_redis_shard_up", dimensions: [("shard", name)], factory: factory)
    }
}

import HeraldCore
import HeraldRedis
import Hummingbird
import HummingbirdCore
import NIOSSL
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// One Herald node, built from its configuration: WebSocket + REST server, Hub and broker.
///
/// A `Service`: run it in a `ServiceGroup` (the CLI does, with SIGTERM/SIGINT as graceful
/// shutdown signals) or directly from a test. Nothing is global, so a test can run several.
/// The event-loop group is the caller's: it outlives the node and the caller shuts it down
/// (``withEventLoopGroup(threads:_:)`` does both in one scope).
///
/// Wiring, in the one direction dependencies point: the broker and the registry know nothing
/// of the HTTP layer; the Hub knows the broker only to tell it of interest; REST routes and
/// WebSocket connections get the publisher, counts and figures they use, never the Hub's
/// collaborators through the Hub.
public final class HeraldNode: Service {
    public let configuration: HeraldConfiguration
    public let hub: Hub
    public let broker: any Broker
    public let slots: ConnectionSlots
    public let publisher: Publisher
    public let counts: SubscriberCounts
    public let local: LocalNode
    public let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let onServerRunning: @Sendable (Int) async -> Void
    private let registry: RedisClusterRegistry?
    /// Per-address and rate limits on new WebSocket connections.
    public let gate: ConnectionGate
    /// The one decision on every new WebSocket and SSE stream (origin, limits, cap).
    public let admission: Admission
    /// Connections per address that have not yet sent a complete request head.
    public let pending: PendingConnections
    /// What `/metrics` shows: this node's own registry (nothing global, so tests can run many).
    public let metricsRegistry: PrometheusCollectorRegistry
    public let metrics: NodeMetrics
    /// `herald_http_requests_total`, counted by the router and the publish fast path alike.
    let requestCounters: RequestMetricsMiddleware.Counters
    /// `nil` with `HERALD_PRESENCE=false`.
    public let presence: (any PresenceStore)?
    private let redisPresence: (any PresenceStore & MembershipObserver & Service)?
    /// What follows Redis failovers (Sentinel), run before and stopped after everything that uses Redis.
    private let redisMonitors: [any RedisTopologyMonitor]
    private let announcer: JoinLeaveAnnouncer?
    /// Each channel's namespace rules; replaced as a whole by a reload (SIGHUP).
    public let namespaces: NamespaceRules
    /// Users' acknowledged positions (`durable` namespaces).
    public let positions: any ReadPositions
    /// A subscribe's I/O for every transport; one per node, so concurrent subscribes share reads.
    let joiner: ChannelJoiner
    /// The backend hooks; `nil` when none is configured.
    public let hooks: BackendHooks?
    /// Occupancy for webhooks and their one sender; empty without `HERALD_WEBHOOK_URL`.
    private let webhookServices: [any Service]
    /// Publishes the PostgreSQL outbox's rows; `nil` without `HERALD_OUTBOX_URL`.
    private let outbox: OutboxConsumer?
    /// Reads the configuration again for a reload; `nil`: SIGHUP is not handled.
    private let reloadConfiguration: (@Sendable () async throws -> HeraldConfiguration)?

    /// - Parameters:
    ///   - eventLoopGroup: the loops the node serves on (one Hub shard each).
    ///   - broker: where publications go; by default Redis when `redisURL` is set, else the
    ///     in-memory broker.
    ///   - onServerRunning: called with the bound port once the node accepts connections.
    public init(
        configuration: HeraldConfiguration,
        eventLoopGroup: any EventLoopGroup,
        broker: (any Broker)? = nil,
        logger: Logger? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        reloadConfiguration: (@Sendable () async throws -> HeraldConfiguration)? = nil
    ) {
        let namespaces = NamespaceRules(configuration.namespaces)
        self.namespaces = namespaces
        self.reloadConfiguration = reloadConfiguration
        var logger = logger ?? Logger(label: "herald")
        logger.logLevel = configuration.logLevel
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        let metricsRegistry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: metricsRegistry)
        for label in NodeMetrics.latencyLabels { factory.durationHistogramBuckets[label] = NodeMetrics.latencyBuckets }
        let metrics = NodeMetrics(factory: factory)
        // Where Redis is, for the broker, the registry and presence alike.
        let topology = configuration.redis.map { deployment in
            var topology = RedisTopology(
                deployment, prefix: configuration.redisPrefix, group: eventLoopGroup, logger: logger, metrics: metrics)
            // A publish's WAIT holds its link for up to the wait timeout: never call that stuck.
            topology.commandTimeout = max(
                RedisTopology.defaultCommandTimeout, configuration.replication.timeout + .seconds(2))
            return topology
        }
        let registry = topology.map { topology in
            RedisClusterRegistry(nodeID: configuration.nodeID, topology: topology, interval: configuration.registryInterval)
        }
        let broker = broker ?? topology.map { topology -> any Broker in
            if topology.cluster != nil {
                return ClusterBroker(
                    topology: topology, rules: namespaces, replication: configuration.replication,
                    counting: registry?.subscriberCounting)
            }
            // One Redis: its broker directly, so the publish path has no routing step.
            return topology.shards.count == 1
                ? RedisBroker(
                    topology: topology, rules: namespaces, replication: configuration.replication,
                    probeInterval: configuration.redisProbeInterval, counting: registry?.subscriberCounting)
                : ShardedBroker(
                    topology: topology, rules: namespaces, replication: configuration.replication,
                    probeInterval: configuration.redisProbeInterval, counting: registry?.subscriberCounting)
        } ?? InMemoryBroker(rules: namespaces)
        // The nodes' subscriber counts live beside each channel's keys: the broker keeps them.
        if let registry, let counts = broker as? any SubscriberCountStore { registry.attach(counts: counts) }
        let hub = Hub(nodeID: configuration.nodeID, broker: broker, eventLoopGroup: eventLoopGroup, metrics: metrics)
        broker.attach(hub)
        let counts = SubscriberCounts(hub: hub, cluster: registry)
        let slots = ConnectionSlots()
        let publisher = Publisher(broker: broker, counts: counts, metrics: metrics, receipts: hub.receipts)
        let local = LocalNode(hub: hub, slots: slots, publisher: publisher)
        registry?.attach(local, hub: hub)
        var redisPresence: (any PresenceStore & MembershipObserver & Service)?
        // Presence is tracked when any namespace wants it (the store cannot appear on a reload).
        let presenceOn = configuration.presence || configuration.namedNamespaces.values.contains(where: \.presence)
        if presenceOn, let topology {
            let store: any PresenceStore & MembershipObserver & Service =
                topology.cluster != nil
                ? ClusterPresence(topology: topology, interval: configuration.registryInterval)
                : ShardedPresence(topology: topology, interval: configuration.registryInterval)
            hub.addMembershipObserver(store)
            redisPresence = store
        }
        self.redisPresence = redisPresence
        self.redisMonitors = topology?.monitors ?? []
        self.presence = presenceOn ? redisPresence.map { $0 as any PresenceStore } ?? LocalPresence(hub: hub) : nil
        // With a configuration file a reload may turn join/leave on for a namespace.
        if !configuration.namespaces.announcesJoinLeave && configuration.configFile == nil {
            self.announcer = nil
        } else {
            let announcer = JoinLeaveAnnouncer(rules: namespaces, broker: broker, metrics: metrics, logger: logger)
            hub.addMembershipObserver(announcer)
            self.announcer = announcer
        }
        self.hooks = configuration.hooks.isEmpty
            ? nil : BackendHooks(configuration.hooks, eventLoopGroup: eventLoopGroup, metrics: metrics, logger: logger)
        if let sender = WebhookSender(configuration.webhooks, log: Self.webhookLog(configuration, topology), eventLoopGroup: eventLoopGroup, metrics: metrics, logger: logger) {
            let log = sender.log
            let recorder = OccupancyRecorder(log: log, vacateDelay: configuration.webhooks.vacateDelay, loop: eventLoopGroup.next(), logger: logger)
            hub.addOccupancyObserver(recorder)
            webhookServices = [log as? any Service, recorder, sender].compactMap { $0 }
        } else {
            webhookServices = []
        }
        // Checked when the configuration was read: a URL here parses.
        self.outbox = try? OutboxConsumer(
            configuration.outbox, publisher: publisher, maxBodyBytes: configuration.maxBodyBytes, eventLoopGroup: eventLoopGroup,
            metrics: metrics, logger: logger)
        // Users' read positions: beside the registry in Redis, else in this process.
        self.positions = topology.map { RedisReadPositions(topology: $0) } ?? InMemoryReadPositions()
        self.metricsRegistry = metricsRegistry
        self.metrics = metrics
        self.requestCounters = RequestMetricsMiddleware.Counters(factory: metrics.factory)
        self.hub = hub
        self.broker = broker
        self.registry = registry
        self.counts = counts
        self.slots = slots
        self.publisher = publisher
        self.local = local
        let limits = configuration.connectionLimits
        let gate = ConnectionGate(maxPerAddress: limits.maxPerAddress, rate: limits.rate, burst: limits.burst)
        self.gate = gate
        self.admission = Admission(
            allowedOrigins: Set(configuration.allowedOrigins), maxConnections: configuration.maxConnections,
            trustedProxies: limits.trustedProxies, gate: gate, slots: slots)
        self.pending = PendingConnections(maxPerAddress: limits.maxPendingPerAddress, trustedProxies: limits.trustedProxies)
        self.onServerRunning = onServerRunning
        self.joiner = ChannelJoiner(hub: hub, history: broker, counts: counts, positions: positions)
    }

    /// Where occupancy and webhook events are kept: Redis with a cluster, else this node.
    private static func webhookLog(_ configuration: HeraldConfiguration, _ topology: RedisTopology?) -> any WebhookLog {
        guard let topology else { return InMemoryWebhookLog() }
        return RedisWebhookLog(
            nodeID: configuration.nodeID, topology: topology, interval: configuration.registryInterval,
            shutdownLinger: configuration.webhooks.vacateDelay)
    }

    /// Runs `body` with a fresh event-loop group of `threads` threads, and shuts the group down
    /// afterwards, whether `body` returns or throws.
    public static func withEventLoopGroup<T>(
        threads: Int, _ body: (MultiThreadedEventLoopGroup) async throws -> T
    ) async throws -> T {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            let result = try await body(group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    public func run() async throws {
        if configuration.apiKeys.isEmpty {
            logger.warning("HERALD_API_KEY is not set: /api/* accepts loopback callers only")
        }
        let auth = configuration.auth
        if !auth.verifiesTokens {
            logger.warning("no JWT key configured: every WebSocket client is anonymous (public channels only)")
        } else if auth.allowAnonymous {
            logger.notice("HERALD_ALLOW_ANONYMOUS is on: clients without a token may subscribe to public channels")
        }
        let descriptors = FileDescriptorLimit.current
        if configuration.maxConnections > FileDescriptorLimit.connections(within: descriptors) {
            logger.warning(
                "HERALD_MAX_CONNECTIONS is above what the open-file limit allows: connections past it will fail to open",
                metadata: ["maxConnections": "\(configuration.maxConnections)", "openFileLimit": "\(descriptors)"])
        }
        let verifier = auth.verifiesTokens ? await TokenVerifier(auth) : nil
        let server = try makeServer(verifier: verifier)
        // Shut down in reverse: clients first, then their leave events, then the HTTP server,
        // presence, the registry and the broker.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = redisMonitors.map { .init(service: $0) }
        services.append(.init(service: broker))
        if let registry { services.append(.init(service: registry)) }
        if let redisPresence { services.append(.init(service: redisPresence)) }
        services += webhookServices.map { .init(service: $0) }
        if let outbox { services.append(.init(service: outbox)) }
        if let positions = positions as? any Service { services.append(.init(service: positions)) }
        services.append(.init(service: server))
        if let announcer { services.append(.init(service: announcer)) }
        services.append(.init(service: ConnectionDrain(hub: hub, slots: slots, configuration: configuration, logger: logger)))
        if let reloadConfiguration {
            services.append(.init(service: ConfigurationReloader(rules: namespaces, reload: reloadConfiguration, logger: logger)))
        }
        do {
            try await ServiceGroup(configuration: .init(services: services, logger: logger)).run()
        } catch {
            await hooks?.shutdown()
            throw error
        }
        await hooks?.shutdown()
    }

    /// The REST routes this node serves, as `METHOD /path/{param}` (OpenAPI's spelling), so a
    /// test can hold docs/openapi.yaml to what the router really has: the node's own router,
    /// built and not served.
    public func restRoutes() -> [String] {
        makeRouter(verifier: nil).routes.map { route in
            let path = route.path.description.split(separator: "/").map { segment in
                segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
            }
            return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
        }.sorted()
    }

    /// The publish chain both ways in share: the fast path and the router's ``PublishRoutes``.
    private func makePublishEndpoint() -> PublishEndpoint {
        PublishEndpoint(
            operation: PublishOperation(publisher: publisher, configuration: configuration),
            apiKeys: configuration.apiKeys.map { Array($0.utf8) }, cors: CORSPolicy(origins: configuration.corsOrigins),
            counters: requestCounters, logger: logger)
    }

    private func makeRouter(verifier: TokenVerifier?) -> Router<HeraldRequestContext> {
        let router = Router(context: HeraldRequestContext.self)
        // Ahead of the middleware: the publish chain applies the key, CORS, counting and the
        // log line itself, the same for the router and the fast path (PublishEndpoint).
        PublishRoutes(endpoint: makePublishEndpoint(), maxBodyBytes: configuration.maxBodyBytes).register(on: router)
        router.middlewares.add(RequestLogMiddleware(level: .info))
        router.middlewares.add(RequestMetricsMiddleware(counters: requestCounters))
        router.middlewares.add(CORSPolicyMiddleware(origins: configuration.corsOrigins))
        router.middlewares.add(APIKeyMiddleware(keys: configuration.apiKeys, metricsPublic: configuration.metricsPublic))
        APIRoutes(
            local: local, broker: broker, cluster: registry, slots: slots,
            configuration: configuration
        ).register(on: router)
        PresenceRoutes(presence: presence).register(on: router)
        UserRoutes(publisher: publisher, positions: positions, configuration: configuration).register(on: router)
        BatchRoutes(publisher: publisher, configuration: configuration).register(on: router)
        MetricsEndpoint(registry: metricsRegistry, metrics: metrics, hub: hub, broker: broker, monitors: redisMonitors).register(on: router)
        SSEEndpoint(
            joiner: joiner, admission: admission, verifier: verifier,
            configuration: configuration, metrics: metrics, logger: logger, hooks: hooks, namespaces: namespaces
        ).register(on: router)
        WebAssets().register(on: router)
        return router
    }

    private func makeServer(verifier: TokenVerifier?) throws -> NodeServer {
        let configuration = self.configuration
        let logger = self.logger
        let onServerRunning = self.onServerRunning
        let fastPublish = configuration.fastPublish ? makePublishEndpoint() : nil
        let services = WebSocketConnection.Services(
            hub: hub, publisher: publisher, counts: counts, history: broker, presence: presence ?? DisabledPresence(),
            metrics: metrics, shared: SharedConfiguration(configuration), verifier: verifier, hooks: hooks, namespaces: namespaces,
            positions: positions, joiner: joiner)
        let responder = RouterResponder.make(makeRouter(verifier: verifier), serverName: "Herald", logger: logger)
        let child = HeraldChildChannel(
            responder: responder, services: services, admission: admission, pending: pending, fastPublish: fastPublish, logger: logger)
        return NodeServer(
            child: child, tls: try configuration.tls.map { try NIOSSLContext(configuration: $0) },
            host: configuration.host, port: configuration.port, backlog: 4096, eventLoopGroup: eventLoopGroup,
            onServerRunning: { port in
                logger.notice("Herald node listening", metadata: [
                    "address": "\(configuration.host):\(port)", "tls": "\(configuration.tls != nil)",
                    "maxConnections": "\(configuration.maxConnections)",
                ])
                await onServerRunning(port)
            })
    }
}

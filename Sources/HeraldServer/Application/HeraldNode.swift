import HeraldCore
import HeraldRedis
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// One Herald node, built from its configuration: WebSocket + REST server, Hub and broker.
///
/// A `Service`: run it in a `ServiceGroup` (the CLI does, with SIGTERM/SIGINT as graceful
/// shutdown signals) or directly from a test. Nothing is global, so a test can run several.
public final class HeraldNode: Service {
    public let configuration: HeraldConfiguration
    public let hub: Hub
    public let logger: Logger
    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private let onServerRunning: @Sendable (Int) async -> Void
    private let registry: RedisClusterRegistry?
    /// Per-address and rate limits on new WebSocket connections.
    public let gate: ConnectionGate

    /// - Parameters:
    ///   - broker: where publications go; the in-memory broker (single node) by default.
    ///   - onServerRunning: called with the bound port once the node accepts connections.
    public init(
        configuration: HeraldConfiguration,
        broker: (any Broker)? = nil,
        logger: Logger? = nil,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        var logger = logger ?? Logger(label: "herald")
        logger.logLevel = configuration.logLevel
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        self.eventLoopGroup = group
        if let url = configuration.redisURL {
            let registry = RedisClusterRegistry(
                nodeID: configuration.nodeID, url: url, prefix: configuration.redisPrefix,
                interval: configuration.registryInterval, group: group, logger: logger)
            let redis = broker ?? RedisBroker(url: url, prefix: configuration.redisPrefix, group: group, logger: logger)
            self.hub = Hub(nodeID: configuration.nodeID, broker: redis, eventLoopGroup: group, cluster: registry)
            registry.attach(hub)
            self.registry = registry
        } else {
            self.hub = Hub(nodeID: configuration.nodeID, broker: broker ?? InMemoryBroker(), eventLoopGroup: group)
            self.registry = nil
        }
        let limits = configuration.connectionLimits
        self.gate = ConnectionGate(maxPerAddress: limits.maxPerAddress, rate: limits.rate, burst: limits.burst)
        self.onServerRunning = onServerRunning
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
        let verifier = auth.verifiesTokens ? await TokenVerifier(auth) : nil
        let application = try makeApplication(verifier: verifier)
        // Shut down in reverse: clients first, then the HTTP server, then the registry and broker.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: hub.broker)]
        if let registry { services.append(.init(service: registry)) }
        services.append(.init(service: application))
        services.append(.init(service: ConnectionDrain(hub: hub, configuration: configuration, logger: logger)))
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        do {
            try await group.run()
        } catch {
            try? await eventLoopGroup.shutdownGracefully()
            throw error
        }
        try? await eventLoopGroup.shutdownGracefully()
    }

    /// The REST routes this node serves, as `METHOD /path/{param}` (OpenAPI's spelling), so a
    /// test can hold docs/openapi.yaml to what the router really has.
    public func restRoutes() -> [String] {
        let router = Router(context: HeraldRequestContext.self)
        APIRoutes(hub: hub, configuration: configuration).register(on: router)
        return router.routes.map { route in
            let path = route.path.description.split(separator: "/").map { segment in
                segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
            }
            return "\(route.method.rawValue) /\(path.joined(separator: "/"))"
        }.sorted()
    }

    private func makeApplication(verifier: TokenVerifier?) throws -> some ApplicationProtocol {
        let router = Router(context: HeraldRequestContext.self)
        router.middlewares.add(RequestLogMiddleware(level: .info))
        router.middlewares.add(CORSPolicyMiddleware(origins: configuration.corsOrigins))
        router.middlewares.add(APIKeyMiddleware(keys: configuration.apiKeys))
        APIRoutes(hub: hub, configuration: configuration).register(on: router)

        let hub = self.hub
        let configuration = self.configuration
        let logger = self.logger
        let onServerRunning = self.onServerRunning
        let gate = self.gate
        let shared = SharedConfiguration(configuration)
        return Application(
            router: router,
            server: HTTPServerBuilder { responder in
                let child = HeraldChildChannel(
                    responder: responder, hub: hub, shared: shared, verifier: verifier, gate: gate,
                    logger: logger)
                guard let tls = configuration.tls else { return child }
                return try TLSChannel(child, tlsConfiguration: tls)
            },
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "Herald",
                backlog: 4096
            ),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.notice("Herald node listening", metadata: [
                    "address": "\(configuration.host):\(port)", "tls": "\(configuration.tls != nil)",
                ])
                await onServerRunning(port)
            },
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: logger
        )
    }
}

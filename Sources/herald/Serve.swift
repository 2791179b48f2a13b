import ArgumentParser
import Foundation
import HeraldServer
import Logging
import ServiceLifecycle

/// `herald serve`: runs one node until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Herald node (WebSocket on /ws, REST on /api).",
        discussion: "Every option can also be set through the environment variable named in its help; flags win."
    )

    @Option(help: .init(ConfigKey.host.helpText)) var host: String?
    @Option(help: .init(ConfigKey.port.helpText)) var port: String?
    @Option(name: .customLong("node-id"), help: .init(ConfigKey.nodeID.helpText)) var nodeID: String?
    @Option(name: .customLong("log-level"), help: .init(ConfigKey.logLevel.helpText)) var logLevel: String?
    @Option(help: .init(ConfigKey.threads.helpText)) var threads: String?
    @Option(name: .customLong("ping-interval"), help: .init(ConfigKey.pingInterval.helpText)) var pingInterval: String?
    @Option(name: .customLong("ping-timeout"), help: .init(ConfigKey.pingTimeout.helpText)) var pingTimeout: String?
    @Option(name: .customLong("max-message-bytes"), help: .init(ConfigKey.maxMessageBytes.helpText))
    var maxMessageBytes: String?
    @Option(name: .customLong("max-subscriptions"), help: .init(ConfigKey.maxSubscriptions.helpText))
    var maxSubscriptions: String?
    @Option(name: .customLong("max-name-length"), help: .init(ConfigKey.maxNameLength.helpText))
    var maxNameLength: String?
    @Option(name: .customLong("rate-limit"), help: .init(ConfigKey.rateLimit.helpText)) var rateLimit: String?
    @Option(name: .customLong("rate-burst"), help: .init(ConfigKey.rateBurst.helpText)) var rateBurst: String?
    @Option(name: .customLong("max-connections"), help: .init(ConfigKey.maxConnections.helpText))
    var maxConnections: String?
    @Option(name: .customLong("send-queue-bytes"), help: .init(ConfigKey.sendQueueBytes.helpText))
    var sendQueueBytes: String?
    @Option(name: .customLong("max-body-bytes"), help: .init(ConfigKey.maxBodyBytes.helpText))
    var maxBodyBytes: String?
    @Option(name: .customLong("shutdown-grace"), help: .init(ConfigKey.shutdownGrace.helpText))
    var shutdownGrace: String?
    @Option(name: .customLong("cors-origins"), help: .init(ConfigKey.corsOrigins.helpText)) var corsOrigins: String?
    @Option(name: .customLong("api-key"), help: .init(ConfigKey.apiKey.helpText)) var apiKey: String?
    @Option(name: .customLong("allowed-origins"), help: .init(ConfigKey.allowedOrigins.helpText))
    var allowedOrigins: String?
    @Option(name: .customLong("jwt-secret"), help: .init(ConfigKey.jwtSecret.helpText)) var jwtSecret: String?
    @Option(name: .customLong("jwt-public-key-file"), help: .init(ConfigKey.jwtPublicKeyFile.helpText))
    var jwtPublicKeyFile: String?
    @Option(name: .customLong("allow-anonymous"), help: .init(ConfigKey.allowAnonymous.helpText))
    var allowAnonymous: String?
    @Option(name: .customLong("auth-timeout"), help: .init(ConfigKey.authTimeout.helpText)) var authTimeout: String?
    @Option(name: .customLong("tls-cert-file"), help: .init(ConfigKey.tlsCertFile.helpText)) var tlsCertFile: String?
    @Option(name: .customLong("tls-key-file"), help: .init(ConfigKey.tlsKeyFile.helpText)) var tlsKeyFile: String?
    @Option(name: .customLong("max-connections-per-ip"), help: .init(ConfigKey.maxConnectionsPerIP.helpText))
    var maxConnectionsPerIP: String?
    @Option(name: .customLong("connection-rate"), help: .init(ConfigKey.connectionRate.helpText))
    var connectionRate: String?
    @Option(name: .customLong("connection-burst"), help: .init(ConfigKey.connectionBurst.helpText))
    var connectionBurst: String?
    @Option(name: .customLong("trusted-proxies"), help: .init(ConfigKey.trustedProxies.helpText))
    var trustedProxies: String?
    @Option(name: .customLong("redis-url"), help: .init(ConfigKey.redisURL.helpText)) var redisURL: String?
    @Option(name: .customLong("redis-prefix"), help: .init(ConfigKey.redisPrefix.helpText)) var redisPrefix: String?
    @Option(name: .customLong("registry-interval"), help: .init(ConfigKey.registryInterval.helpText))
    var registryInterval: String?

    /// The flags given, keyed by setting.
    var flags: [ConfigKey: String] {
        let pairs: [(ConfigKey, String?)] = [
            (.host, host), (.port, port), (.nodeID, nodeID), (.logLevel, logLevel), (.threads, threads),
            (.pingInterval, pingInterval), (.pingTimeout, pingTimeout), (.maxMessageBytes, maxMessageBytes),
            (.maxSubscriptions, maxSubscriptions), (.maxNameLength, maxNameLength), (.rateLimit, rateLimit),
            (.rateBurst, rateBurst), (.maxConnections, maxConnections), (.sendQueueBytes, sendQueueBytes),
            (.maxBodyBytes, maxBodyBytes), (.shutdownGrace, shutdownGrace), (.corsOrigins, corsOrigins),
            (.apiKey, apiKey), (.allowedOrigins, allowedOrigins), (.jwtSecret, jwtSecret),
            (.jwtPublicKeyFile, jwtPublicKeyFile), (.allowAnonymous, allowAnonymous), (.authTimeout, authTimeout),
            (.tlsCertFile, tlsCertFile), (.tlsKeyFile, tlsKeyFile), (.maxConnectionsPerIP, maxConnectionsPerIP),
            (.connectionRate, connectionRate), (.connectionBurst, connectionBurst), (.trustedProxies, trustedProxies),
            (.redisURL, redisURL), (.redisPrefix, redisPrefix), (.registryInterval, registryInterval),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.compactMap { key, value in value.map { (key, $0) } })
    }

    func run() async throws {
        let configuration: HeraldConfiguration
        do {
            configuration = try HeraldConfiguration.resolve(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        LoggingSystem.bootstrap { label in NodeLogHandler(label: label, level: configuration.logLevel) }
        try await HeraldNode.withEventLoopGroup(threads: configuration.threads) { eventLoopGroup in
            let node = HeraldNode(configuration: configuration, eventLoopGroup: eventLoopGroup)
            var groupConfiguration = ServiceGroupConfiguration(
                services: [.init(service: node)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: node.logger
            )
            // The node's own drain is bounded by the grace period; this is the backstop.
            groupConfiguration.maximumGracefulShutdownDuration =
                .nanoseconds(configuration.shutdownGrace.nanoseconds) + .seconds(2)
            try await ServiceGroup(configuration: groupConfiguration).run()
        }
    }
}

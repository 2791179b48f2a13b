import ArgumentParser
import Foundation
import HeraldServer
import Logging
import ServiceLifecycle

/// `herald serve`: runs one node until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Herald node (WebSocket on /ws, REST on /api).",
        discussion: """
            Every setting is a flag and an environment variable (flags win; NAME_FILE reads a value from a file):

            \(SettingFlags.help)
            """
    )

    @Argument(parsing: .allUnrecognized, help: "Settings as --flag value (listed below).")
    var settings: [String] = []

    func run() async throws {
        // Before the configuration: HERALD_MAX_CONNECTIONS=auto is derived from the result.
        FileDescriptorLimit.raiseToHardLimit()
        let configuration: HeraldConfiguration
        let environment = ProcessInfo.processInfo.environment
        let flags: [ConfigKey: String]
        do {
            flags = try SettingFlags.parse(settings)
            configuration = try await HeraldConfiguration.load(flags: flags, environment: environment)
        } catch {
            throw ValidationError("\(error)")
        }
        LoggingSystem.bootstrap { label in NodeLogHandler(label: label, level: configuration.logLevel, format: configuration.logFormat) }
        try await HeraldNode.withEventLoopGroup(threads: configuration.threads) { eventLoopGroup in
            // SIGHUP reads the configuration again from the same flags, variables and file.
            let node = HeraldNode(
                configuration: configuration, eventLoopGroup: eventLoopGroup,
                reloadConfiguration: { try await HeraldConfiguration.load(flags: flags, environment: environment) })
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

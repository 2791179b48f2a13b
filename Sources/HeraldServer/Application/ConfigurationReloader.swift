import HeraldCore
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the namespaces on `SIGHUP`: the configuration is read again (file, variables and
/// flags, exactly as at start) and, if valid, its namespaces replace the current ones at once
/// for every connection — none is dropped. An invalid file is logged and ignored: the node
/// keeps the rules it has. Other settings need a restart; a reload says which ones changed.
struct ConfigurationReloader: Service {
    let rules: NamespaceRules
    let reload: @Sendable () async throws -> HeraldConfiguration
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reloadNow()
            }
        }
    }

    func reloadNow() async {
        do {
            let configuration = try await reload()
            rules.replace(with: configuration.namespaces)
            logger.notice(
                "configuration reloaded", metadata: [
                    "file": "\(configuration.configFile ?? "-")",
                    "namespaces": "\(configuration.namedNamespaces.keys.sorted().joined(separator: ","))",
                ])
        } catch {
            logger.error("configuration reload refused; the node keeps its current namespaces", metadata: ["error": "\(error)"])
        }
    }
}

import HeraldCore
import Logging
import ServiceLifecycle

/// Runs the Hub's heartbeat and, on graceful shutdown, says goodbye to every WebSocket client.
///
/// It is the last service of the node's group, so the group shuts it down first: clients get
/// `server_shutdown` and a 1001 close while the HTTP server still finishes in-flight REST calls.
struct ConnectionDrain: Service {
    let hub: Hub
    let slots: ConnectionSlots
    let configuration: HeraldConfiguration
    let logger: Logger

    func run() async throws {
        hub.startHeartbeat(every: configuration.heartbeatTick)
        try? await gracefulShutdown()
        slots.stopAccepting()
        logger.notice("shutting down: closing WebSocket connections", metadata: ["connections": "\(slots.count)"])
        // Each client gets its own delay hint, so the reconnects of a rolling restart spread
        // over the next moments instead of arriving at the other nodes all at once.
        let spread = max(Int(min(configuration.shutdownGrace.nanoseconds, 2_000_000_000) / 1_000_000), 1)
        hub.shutdownConnections {
            .serverShutdown(message: "Server is shutting down", reconnectAfter: Int.random(in: 0..<spread))
        }
        await slots.waitUntilEmpty(timeout: .nanoseconds(configuration.shutdownGrace.nanoseconds))
    }
}

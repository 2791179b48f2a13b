import Foundation
import HeraldCore
import HeraldTesting
import Testing

/// The `herald` executable as operators run it.
@Suite struct ProcessTests {
    @Test func sigtermSendsServerShutdownAndCloses1001ThenExitsZero() async throws {
        try await withNodeProcess { node in
            let first = try await TestWebSocket.connect(port: node.port)
            let second = try await TestWebSocket.connect(port: node.port)
            async let status = node.stop(signal: SIGTERM)
            for client in [first, second] {
                #expect(try await client.nextMessage(timeout: .seconds(10)) == .serverShutdown(message: "Server is shutting down"))
                #expect(try await client.nextClose().code == 1001)
                try await client.sendFrame(opcode: .connectionClose, data: [0x03, 0xE9])
            }
            #expect(try await status == 0, "\(node.outputText)")
        }
    }

    @Test func sigintAlsoShutsDownGracefully() async throws {
        try await withNodeProcess { node in
            let client = try await TestWebSocket.connect(port: node.port)
            async let status = node.stop(signal: SIGINT)
            #expect(try await client.nextMessage(timeout: .seconds(10)) == .serverShutdown(message: "Server is shutting down"))
            #expect(try await client.nextClose().code == 1001)
            // This client never answers the close: the node still exits within the grace period.
            #expect(try await status == 0)
        }
    }

    @Test func invalidConfigurationIsRefusedWithAClearMessage() async throws {
        let badEnv = try await NodeProcess.run(["serve"], environment: ["HERALD_PING_INTERVAL": "soon"])
        #expect(badEnv.status != 0)
        #expect(badEnv.output.contains("HERALD_PING_INTERVAL"), "\(badEnv.output)")
        #expect(badEnv.output.contains("soon"))
        let badFlag = try await NodeProcess.run(["serve", "--port", "70000"])
        #expect(badFlag.status != 0)
        #expect(badFlag.output.contains("--port"), "\(badFlag.output)")
    }

    @Test func helpListsEverySetting() async throws {
        let help = try await NodeProcess.run(["serve", "--help"])
        #expect(help.status == 0)
        for key in ["HERALD_HOST", "HERALD_PORT", "PORT", "HERALD_NODE_ID", "HERALD_LOG_LEVEL", "HERALD_PING_INTERVAL",
                    "HERALD_PING_TIMEOUT", "HERALD_MAX_MESSAGE_BYTES", "HERALD_MAX_SUBSCRIPTIONS", "HERALD_MAX_NAME_LENGTH",
                    "HERALD_RATE_LIMIT", "HERALD_RATE_BURST", "HERALD_MAX_CONNECTIONS", "HERALD_SEND_QUEUE_BYTES",
                    "HERALD_SHUTDOWN_GRACE", "HERALD_CORS_ORIGINS", "HERALD_API_KEY", "HERALD_ALLOWED_ORIGINS",
                    "HERALD_REDIS_URL", "HERALD_REDIS_PREFIX", "HERALD_REGISTRY_INTERVAL"] {
            #expect(help.output.contains(key), "\(key) missing from --help")
        }
    }
}

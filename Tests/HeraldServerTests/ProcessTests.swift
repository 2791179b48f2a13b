import Foundation
import HeraldCore
import HeraldServer
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
                #expect(try await client.nextMessage(timeout: .seconds(10)).essentials == .serverShutdown(message: "Server is shutting down"))
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
            #expect(try await client.nextMessage(timeout: .seconds(10)).essentials == .serverShutdown(message: "Server is shutting down"))
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
        for key in ConfigKey.allCases {
            #expect(help.output.contains("--\(key.flag)"), "--\(key.flag) missing from --help")
            for name in key.environment {
                #expect(help.output.contains(name), "\(name) missing from --help")
            }
        }
    }

    @Test func anUnknownFlagIsRefused() async throws {
        let result = try await NodeProcess.run(["serve", "--no-such-setting", "1"])
        #expect(result.status != 0)
        #expect(result.output.contains("--no-such-setting"), "\(result.output)")
    }
}

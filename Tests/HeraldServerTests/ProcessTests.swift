import Foundation
import HeraldCore
import HeraldProtocol
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

    @Test func aShutdownClosesConnectionsThatHaveNothingToFinish() async throws {
        // A header timeout far beyond the test: the node must not wait for it.
        try await withNodeProcess(environment: ["HERALD_HTTP_HEADER_TIMEOUT": "60", "HERALD_SHUTDOWN_GRACE": "1"]) { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let halfHTTP = try await raw.open(writing: RequestDeadlineTests.halfRequest)
                let halfHandshake = try await raw.open(writing: "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n")
                let keepAlive = try await raw.open(writing: RequestDeadlineTests.fullRequest)
                _ = try await raw.read(keepAlive, until: "\r\n\r\n{")
                let echo = try await TestWebSocket.connect(port: node.port, path: "/ws/echo")
                let started = ContinuousClock.now
                #expect(try await node.stop(signal: SIGTERM) == 0, "\(node.outputText)")
                #expect(ContinuousClock.now - started < .seconds(10))
                try await waitUntil("every connection to be closed") {
                    [halfHTTP, halfHandshake, keepAlive].allSatisfy { raw.closed($0) != nil }
                }
                #expect(try await echo.nextClose().code == 1001)
            }
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

    @Test func jsonLogsAreOneObjectPerLineWithTheSameMetadata() async throws {
        try await withNodeProcess(arguments: ["--log-format", "json", "--node-id", "json-node"]) { node in
            let response = try await HTTPResult.send(.POST, node.baseURL + "/api/notify/logged", body: #"{"title":"t"}"#)
            #expect(response.status == 200)
            // The request's line carries the node, the request id, method, path and status.
            let line = try await waitUntilValue("the request's log line") { () -> [String: JSONValue]? in
                Self.jsonLines(node.outputText).first { $0["path"] == .string("/api/notify/logged") }
            }
            #expect(line["node"] == .string("json-node"))
            #expect(line["level"] == .string("info"))
            #expect(line["status"] == .string("200"))
            #expect(line["method"] == .string("POST"))
            #expect(line["hb.request.id"] != nil, "\(line)")
            #expect(line["message"] == .string("POST /api/notify/logged 200"))
            if case .string(let time) = line["time"] { #expect(time.hasSuffix("Z")) } else { Issue.record("no time: \(line)") }
            let listening = try #require(Self.jsonLines(node.outputText).first { $0["message"] == .string("Herald node listening") })
            #expect(listening["label"] == .string("herald"))
            // Every line of the output is JSON, none is text.
            let lines = node.outputText.split(separator: "\n")
            #expect(lines.count == Self.jsonLines(node.outputText).count, "\(node.outputText)")
        }
    }

    @Test func theNodeRaisesItsOpenFileLimitAndDerivesItsConnectionLimitFromIt() async throws {
        let hard = FileDescriptorLimit.current  // the test process runs at its hard limit here
        let herald = try NodeProcess.executable.path
        // Started with a low soft limit, as many shells and service managers do.
        try await withChildProcess("/bin/sh", ["-c", "ulimit -Sn 256 && exec \"$0\" serve --port 0", herald]) { node in
            let line = try await waitUntilValue("the listening line") { () -> Substring? in
                node.outputText.split(separator: "\n").first { $0.contains("Herald node listening") }
            }
            #expect(line.contains("maxConnections=\(FileDescriptorLimit.connections(within: hard))"), "\(line)")
            #expect(FileDescriptorLimit.connections(within: hard) > FileDescriptorLimit.connections(within: 256))
        }
        // An explicit number stays as given.
        let configuration = try HeraldConfiguration.resolve(flags: [.maxConnections: "50"], environment: [:])
        #expect(configuration.maxConnections == 50)
        #expect(FileDescriptorLimit.connections(within: 1024) == 922)
        #expect(FileDescriptorLimit.connections(within: 100) == 36)
    }

    static func jsonLines(_ text: String) -> [[String: JSONValue]] {
        text.split(separator: "\n").compactMap { line in
            guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else { return nil }
            return object
        }
    }
}

import AsyncHTTPClient
import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// TLS and the limits on opening connections, against a real node.
@Suite(.bothPublishPaths) struct TransportSecurityTests {
    @Test func wssAndHttpsWorkEndToEndWithASelfSignedCertificate() async throws {
        try await withTestKeys { keys in
            let files = try await keys.selfSignedCertificate()
            let configuration = try HeraldConfiguration.resolve(
                flags: [.port: "0", .tlsCertFile: files.certificate, .tlsKeyFile: files.key], environment: [:])
            try await withNode({ $0.tls = configuration.tls }) { node in
                let trust = TestKeys.trusting(files.certificate)
                var settings = HeraldClient.Configuration()
                settings.tls = trust
                settings.maxAttempts = 1
                let client = try HeraldClient(url: "wss://localhost:\(node.port)/ws", configuration: settings)
                try await withRunning(client) { events in
                    try await client.subscribe("secure")
                    try await events.next("subscribed over wss") {
                        if case .message(.subscribed("secure", _, _, _)) = $0 { true } else { false }
                    }
                    try await withHTTPClient(tls: trust) { https in
                        let published = try await HTTPResult.send(
                            .POST, "https://localhost:\(node.port)/api/notify/secure", body: #"{"body":"over TLS"}"#,
                            client: https)
                        #expect(published.status == 200)
                    }
                    try await events.next("notification over wss") {
                        if case .message(.notification(let n)) = $0 { n.body == "over TLS" } else { false }
                    }
                }

                // The same port speaks no plaintext WebSocket, and an untrusted certificate is refused.
                await #expect(throws: (any Error).self) {
                    _ = try await TestWebSocket.connect(port: node.port, readWelcome: true)
                }
                await #expect(throws: (any Error).self) {
                    _ = try await TestWebSocket.connect(port: node.port, tls: .makeClientConfiguration())
                }
            }
        }
    }

    @Test func tlsConfigurationErrorsNameTheSetting() async throws {
        try await withTestKeys { keys in
            let files = try await keys.selfSignedCertificate()
            #expect(throws: ConfigurationError.self) {
                try HeraldConfiguration.resolve(flags: [.tlsCertFile: files.certificate], environment: [:])
            }
            #expect(throws: ConfigurationError.self) {
                try HeraldConfiguration.resolve(flags: [.tlsCertFile: files.key, .tlsKeyFile: files.key], environment: [:])
            }
            #expect(throws: ConfigurationError.self) {
                try HeraldConfiguration.resolve(flags: [.tlsCertFile: "/nonexistent.pem", .tlsKeyFile: files.key], environment: [:])
            }
        }
    }

    @Test func connectionsPerAddressAreLimited() async throws {
        try await withNode({ $0.connectionLimits.maxPerAddress = 2 }) { node in
            let first = try await node.connect()
            let second = try await node.connect()
            let refused = try await node.request(.GET, "/ws", headers: Self.upgradeHeaders)
            #expect(refused.status == 429)
            #expect(try refused.json(ProtocolErrorBody.self).code == "too_many_connections")
            #expect(refused.headers.first(name: "Retry-After") == "1")
            // The first two are unaffected; closing one frees its slot.
            try await first.send(.ping)
            guard case .pong = try await first.nextMessage() else { throw TimeoutError(what: "pong") }
            await second.close()
            try await waitUntil("slot released") { node.node.gate.openConnections(from: "127.0.0.1") == 1 }
            _ = try await node.connect()
        }
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedProxies() async throws {
        try await withNode({
            $0.connectionLimits.maxPerAddress = 1
            $0.connectionLimits.trustedProxies = try! TrustedProxies(["127.0.0.0/8"])
        }) { node in
            // Two clients behind the proxy count separately...
            _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.2")])
            // ...and the same one is limited, whatever it claims left of the proxy's entry.
            let refused = try await node.request(
                .GET, "/ws", headers: Self.upgradeHeaders + [("X-Forwarded-For", "198.51.100.7, 203.0.113.1")])
            #expect(refused.status == 429)
        }
        try await withNode({ $0.connectionLimits.maxPerAddress = 1 }) { node in
            // Untrusted peer: the header is ignored, so both count against 127.0.0.1.
            _ = try await node.connect(headers: [("X-Forwarded-For", "203.0.113.1")])
            let refused = try await node.request(
                .GET, "/ws", headers: Self.upgradeHeaders + [("X-Forwarded-For", "203.0.113.2")])
            #expect(refused.status == 429)
        }
    }

    @Test func newConnectionsAreRateLimited() async throws {
        try await withNode({
            $0.connectionLimits.rate = 0.01
            $0.connectionLimits.burst = 3
        }) { node in
            var open: [TestWebSocket] = []
            for _ in 0..<3 { open.append(try await node.connect()) }
            let refused = try await node.request(.GET, "/ws", headers: Self.upgradeHeaders)
            #expect(refused.status == 429)
            #expect(open.count == 3)
        }
    }

    static let upgradeHeaders = [
        ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]

    struct ProtocolErrorBody: Decodable {
        var code: String
        var error: String
    }
}

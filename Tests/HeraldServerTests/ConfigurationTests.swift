import HeraldServer
import HeraldTesting
import NIOCore
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsMatchTheDocumentation() throws {
        let config = try HeraldConfiguration.resolve(flags: [:], environment: [:])
        #expect(config.host == "127.0.0.1")
        #expect(config.port == 8080)
        #expect(config.pingInterval == .seconds(30))
        #expect(config.pingTimeout == .seconds(60))
        #expect(config.maxMessageBytes == 65536)
        #expect(config.sessionLimits.maxSubscriptions == 1000)
        #expect(config.shutdownGrace == .seconds(5))
        #expect(config.apiKeys.isEmpty)
        #expect(config.nodeID.hasPrefix("node-"))
    }

    @Test func flagsWinOverEnvironmentAndPortFallsBackToPORT() throws {
        let env = ["PORT": "9000", "HERALD_PING_INTERVAL": "0.25", "HERALD_API_KEY": "a, b", "HERALD_CORS_ORIGINS": "*"]
        let fromEnv = try HeraldConfiguration.resolve(flags: [:], environment: env)
        #expect(fromEnv.port == 9000)
        #expect(fromEnv.pingInterval == .milliseconds(250))
        #expect(fromEnv.apiKeys == ["a", "b"])
        #expect(fromEnv.corsOrigins == ["*"])
        let both = try HeraldConfiguration.resolve(flags: [.port: "9100"], environment: env.merging(["HERALD_PORT": "9001"]) { $1 })
        #expect(both.port == 9100)
        #expect(try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_PORT": "9001", "PORT": "9000"]).port == 9001)
    }

    @Test(arguments: [
        (ConfigKey.port, "http"), (.port, "-1"), (.pingTimeout, "0"), (.pingInterval, "forever"),
        (.maxSubscriptions, "0"), (.rateLimit, "-3"), (.logLevel, "loud"), (.nodeID, "has space"), (.threads, "0"),
        (.allowAnonymous, "maybe"), (.trustedProxies, "nginx"), (.connectionRate, "0"), (.maxConnectionsPerIP, "-1"),
        (.jwtPublicKeyFile, "/nonexistent/key.pem"), (.authTimeout, "0"),
    ])
    func badValuesAreRejectedNamingTheKey(key: ConfigKey, value: String) {
        do {
            _ = try HeraldConfiguration.resolve(flags: [:], environment: [key.environment[0]: value])
            Issue.record("\(key) accepted \(value)")
        } catch {
            #expect(error.key == key)
            #expect(error.description.contains(key.environment[0]))
            #expect(error.description.contains(value))
        }
    }

    @Test func shortJWTSecretIsRefusedWithoutEchoingIt() {
        do {
            _ = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_JWT_SECRET": "hunter2"])
            Issue.record("a 7-byte secret was accepted")
        } catch {
            #expect(error.key == .jwtSecret)
            #expect(error.description.contains("at least 32 bytes"))
            #expect(!error.description.contains("hunter2"))
        }
    }

    @Test func anonymousAccessDefaultsOffOnceAKeyIsConfigured() throws {
        #expect(try HeraldConfiguration.resolve(flags: [:], environment: [:]).auth.allowAnonymous)
        let secret = String(repeating: "s", count: 32)
        let secured = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_JWT_SECRET": secret])
        #expect(secured.auth.verifiesTokens)
        #expect(!secured.auth.allowAnonymous)
        let mixed = try HeraldConfiguration.resolve(
            flags: [:], environment: ["HERALD_JWT_SECRET": secret, "HERALD_ALLOW_ANONYMOUS": "true"])
        #expect(mixed.auth.allowAnonymous)
    }

    @Test func secretsCanComeFromFiles() async throws {
        try await withTestKeys { keys in
            try "key-from-file\n".write(toFile: keys.path("api-key"), atomically: true, encoding: .utf8)
            let config = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_API_KEY_FILE": keys.path("api-key")])
            #expect(config.apiKeys == ["key-from-file"])
            #expect(throws: ConfigurationError.self) {
                try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_API_KEY_FILE": keys.path("missing")])
            }
        }
    }
}

import Foundation
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

@Suite struct ConfigurationTests {
    /// docs/configuration.md has one row per setting, with the flag, every environment
    /// variable and the default that the declaration in ConfigKey.swift gives — and no row
    /// for a setting that does not exist.
    @Test func theDocumentationListsEverySettingAsDeclared() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        let text = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        var rows: [String: [String]] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `--") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let flag = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`-"))
            #expect(rows[flag] == nil, "--\(flag) is documented twice")
            rows[flag] = cells
        }
        for key in ConfigKey.allCases {
            guard let cells = rows.removeValue(forKey: key.flag) else {
                Issue.record("--\(key.flag) is not in docs/configuration.md")
                continue
            }
            let documentedEnvironment = cells[2].split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " `")) }
            #expect(documentedEnvironment == key.environment, "environment of --\(key.flag)")
            if let value = key.defaultValue {
                #expect(cells[3] == "`\(value)`", "default of --\(key.flag): documented \(cells[3]), declared \(value)")
            } else {
                #expect(!cells[3].hasPrefix("`"), "--\(key.flag) has no default, but the docs give \(cells[3])")
            }
        }
        #expect(rows.isEmpty, "documented settings that do not exist: \(rows.keys.sorted())")
    }

    /// `herald serve` reads the same declarations: every flag is accepted, in both spellings.
    @Test func everyFlagIsAcceptedAndUnknownOnesAreRefused() throws {
        let flags = try SettingFlags.parse(["--port", "9000", "--log-level=debug"])
        #expect(flags == [.port: "9000", .logLevel: "debug"])
        for key in ConfigKey.allCases {
            #expect(try SettingFlags.parse(["--\(key.flag)", "x"]) == [key: "x"])
        }
        #expect(throws: SettingFlags.Unknown.self) { try SettingFlags.parse(["--no-such-setting", "1"]) }
        #expect(throws: SettingFlags.Unknown.self) { try SettingFlags.parse(["--port"]) }
        #expect(throws: SettingFlags.Unknown.self) { try SettingFlags.parse(["stray"]) }
    }

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

    /// Every key a namespace may set is shown in docs/configuration.md's file example, and the
    /// page names nothing the reader would refuse.
    @Test func theDocumentationShowsEveryNamespaceKey() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        let text = try String(contentsOf: root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let start = try #require(text.range(of: "## Namespaces: the configuration file"))
        let example = try #require(text.range(of: "```yaml", range: start.upperBound..<text.endIndex))
        let end = try #require(text.range(of: "```", range: example.upperBound..<text.endIndex))
        var documented = Set<String>()
        var inNamespace = false
        for line in text[example.upperBound..<end.lowerBound].split(separator: "\n") {
            let indent = line.prefix { $0 == " " }.count
            let key = line.trimmingCharacters(in: .whitespaces).split(separator: ":").first.map(String.init) ?? ""
            if indent == 2 { inNamespace = true } else if indent == 4, inNamespace { documented.insert(key) }
        }
        #expect(documented == Set(ConfigurationFile.NamespaceKey.allCases.map(\.rawValue)))
    }
}

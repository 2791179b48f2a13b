import Foundation
import HeraldCore
import HeraldProtocol
import Logging
import NIOCore
import NIOSSL
import RedisBridge

/// A node's complete, validated configuration. Built once at start; immutable afterwards.
public struct HeraldConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var nodeID: String
    public var logLevel: Logger.Level
    public var threads: Int
    public var pingInterval: TimeAmount
    public var pingTimeout: TimeAmount
    public var maxMessageBytes: Int
    public var sessionLimits: SessionLimits
    public var maxConnections: Int
    public var sendQueueBytes: Int
    public var maxBodyBytes: Int
    public var shutdownGrace: TimeAmount
    public var corsOrigins: [String]
    public var apiKeys: [String]
    /// Browser origins allowed to open WebSockets; empty allows any (and requests without
    /// an `Origin` header, i.e. non-browser clients, are always allowed).
    public var allowedOrigins: [String]
    /// Connection tokens: keys, anonymous access, the `auth` deadline.
    public var auth: AuthConfiguration
    /// `wss://` and `https://` when set.
    public var tls: TLSConfiguration?
    public var connectionLimits: ConnectionLimits
    /// Redis to cluster through; `nil` runs the node alone with the in-memory broker.
    public var redisURL: RedisURL?
    public var redisPrefix: String
    public var registryInterval: TimeAmount

    /// Defaults for every key, with a generated node id.
    public init() {
        // The defaults table is valid by construction.
        self = try! Self.resolve(flags: [:], environment: [:])
    }

    /// Resolves every ``ConfigKey`` from flags, then environment, then defaults, and validates.
    /// - Throws: ``ConfigurationError`` naming the key and the bad value.
    ///
    /// Every environment variable may also be given as `NAME_FILE`, the path of a file holding
    /// the value (Docker and Kubernetes secrets are mounted as files; a trailing newline is
    /// dropped). The variable itself wins when both are set.
    public static func resolve(flags: [ConfigKey: String], environment: [String: String]) throws(ConfigurationError) -> Self {
        let reader = Reader(flags: flags, environment: try resolvingFiles(environment))
        var limits = SessionLimits()
        limits.maxSubscriptions = try reader.int(.maxSubscriptions, min: 1)
        limits.maxNameLength = try reader.int(.maxNameLength, min: 1)
        limits.rateLimit = try reader.number(.rateLimit, min: 0.001)
        limits.rateBurst = try reader.number(.rateBurst, min: 1)
        let config = Self(
            host: try reader.string(.host) ?? "127.0.0.1",
            port: try reader.int(.port, min: 0, max: 65535),
            nodeID: try reader.nodeID(),
            logLevel: try reader.logLevel(),
            threads: try reader.optionalInt(.threads, min: 1, max: 256) ?? System.coreCount,
            pingInterval: try reader.seconds(.pingInterval),
            pingTimeout: try reader.seconds(.pingTimeout),
            maxMessageBytes: try reader.int(.maxMessageBytes, min: 125, max: 64 << 20),
            sessionLimits: limits,
            maxConnections: try reader.int(.maxConnections, min: 1),
            sendQueueBytes: try reader.int(.sendQueueBytes, min: 1024),
            maxBodyBytes: try reader.int(.maxBodyBytes, min: 64, max: 64 << 20),
            shutdownGrace: try reader.seconds(.shutdownGrace),
            corsOrigins: reader.list(.corsOrigins),
            apiKeys: reader.list(.apiKey),
            allowedOrigins: reader.list(.allowedOrigins),
            auth: try reader.auth(),
            tls: try reader.tls(),
            connectionLimits: ConnectionLimits(
                maxPerAddress: try reader.int(.maxConnectionsPerIP, min: 0),
                rate: try reader.number(.connectionRate, min: 0.001),
                burst: try reader.number(.connectionBurst, min: 1),
                trustedProxies: try reader.trustedProxies()
            ),
            redisURL: try reader.redisURL(),
            redisPrefix: try reader.prefix(),
            registryInterval: try reader.seconds(.registryInterval)
        )
        return config
    }

    init(
        host: String, port: Int, nodeID: String, logLevel: Logger.Level, threads: Int,
        pingInterval: TimeAmount, pingTimeout: TimeAmount, maxMessageBytes: Int, sessionLimits: SessionLimits,
        maxConnections: Int, sendQueueBytes: Int, maxBodyBytes: Int, shutdownGrace: TimeAmount,
        corsOrigins: [String], apiKeys: [String], allowedOrigins: [String], auth: AuthConfiguration,
        tls: TLSConfiguration?, connectionLimits: ConnectionLimits, redisURL: RedisURL?, redisPrefix: String, registryInterval: TimeAmount
    ) {
        self.host = host
        self.port = port
        self.nodeID = nodeID
        self.logLevel = logLevel
        self.threads = threads
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxMessageBytes = maxMessageBytes
        self.sessionLimits = sessionLimits
        self.maxConnections = maxConnections
        self.sendQueueBytes = sendQueueBytes
        self.maxBodyBytes = maxBodyBytes
        self.shutdownGrace = shutdownGrace
        self.corsOrigins = corsOrigins
        self.apiKeys = apiKeys
        self.allowedOrigins = allowedOrigins
        self.auth = auth
        self.tls = tls
        self.connectionLimits = connectionLimits
        self.redisURL = redisURL
        self.redisPrefix = redisPrefix
        self.registryInterval = registryInterval
    }

    /// How often each event loop sweeps its connections for heartbeats: fine enough that a
    /// timeout fires within a quarter of the shorter interval of lateness.
    public var heartbeatTick: TimeAmount {
        .nanoseconds(max(min(pingInterval.nanoseconds, pingTimeout.nanoseconds) / 4, 1_000_000))
    }

    /// The lifecycle rules every WebSocket connection runs by.
    public var connectionRules: ConnectionStateMachine.Configuration {
        ConnectionStateMachine.Configuration(pingInterval: pingInterval, pingTimeout: pingTimeout, authTimeout: auth.timeout)
    }
}

extension HeraldConfiguration {
    /// `environment` with every `NAME_FILE` of a setting read into `NAME` (unless `NAME` is
    /// set), the way the node reads it; `herald token` uses it to find the same secret.
    public static func resolvingFiles(_ environment: [String: String]) throws(ConfigurationError) -> [String: String] {
        var resolved = environment
        for key in ConfigKey.allCases {
            for name in key.environment where (environment[name] ?? "").isEmpty {
                guard let path = environment[name + "_FILE"], !path.isEmpty else { continue }
                guard var text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw ConfigurationError(key: key, source: name + "_FILE", value: path, expected: "a readable file")
                }
                while text.last?.isNewline == true { text.removeLast() }
                resolved[name] = text
            }
        }
        return resolved
    }
}

/// A configuration value that cannot be used, with the key and the reason.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var key: ConfigKey
    public var source: String
    public var value: String
    public var expected: String

    public var description: String {
        "invalid \(source) '\(value)': expected \(expected)"
    }
}

private struct Reader {
    let flags: [ConfigKey: String]
    let environment: [String: String]

    /// The raw value and where it came from.
    func raw(_ key: ConfigKey) -> (value: String, source: String)? {
        if let value = flags[key] { return (value, "--\(key.flag)") }
        for name in key.environment {
            if let value = environment[name], !value.isEmpty { return (value, name) }
        }
        return key.defaultValue.map { ($0, "default for --\(key.flag)") }
    }

    func fail(_ key: ConfigKey, _ raw: (value: String, source: String), _ expected: String) -> ConfigurationError {
        ConfigurationError(key: key, source: raw.source, value: raw.value, expected: expected)
    }

    func string(_ key: ConfigKey) throws(ConfigurationError) -> String? {
        guard let raw = raw(key) else { return nil }
        let value = raw.value.trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty else { throw fail(key, raw, "a non-empty value") }
        return value
    }

    func optionalInt(_ key: ConfigKey, min: Int, max: Int = Int.max) throws(ConfigurationError) -> Int? {
        guard let raw = raw(key) else { return nil }
        guard let value = Int(raw.value.trimmingCharacters(in: .whitespaces)), value >= min, value <= max else {
            throw fail(key, raw, max == Int.max ? "a whole number ≥ \(min)" : "a whole number from \(min) to \(max)")
        }
        return value
    }

    func int(_ key: ConfigKey, min: Int, max: Int = Int.max) throws(ConfigurationError) -> Int {
        try optionalInt(key, min: min, max: max)!
    }

    func number(_ key: ConfigKey, min: Double) throws(ConfigurationError) -> Double {
        let raw = raw(key)!
        guard let value = Double(raw.value.trimmingCharacters(in: .whitespaces)), value.isFinite, value >= min else {
            throw fail(key, raw, "a number ≥ \(min)")
        }
        return value
    }

    func seconds(_ key: ConfigKey) throws(ConfigurationError) -> TimeAmount {
        let raw = raw(key)!
        guard let value = Double(raw.value.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0, value <= 86_400
        else {
            throw fail(key, raw, "a number of seconds above 0 (fractions allowed, at most 86400)")
        }
        return .nanoseconds(Int64(value * 1e9))
    }

    func list(_ key: ConfigKey) -> [String] {
        guard let raw = raw(key) else { return [] }
        return raw.value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func nodeID() throws(ConfigurationError) -> String {
        guard let raw = raw(.nodeID) else {
            return "node-" + UUID().uuidString.lowercased().prefix(8)
        }
        guard ChannelName.isValid(raw.value), raw.value.count <= 64 else {
            throw fail(.nodeID, raw, "1–64 letters, digits or _ - : .")
        }
        return raw.value
    }

    func redisURL() throws(ConfigurationError) -> RedisURL? {
        guard let raw = raw(.redisURL) else { return nil }
        guard let url = RedisURL(raw.value.trimmingCharacters(in: .whitespaces)) else {
            throw fail(.redisURL, raw, "redis://[:password@]host[:port][/db]")
        }
        return url
    }

    func prefix() throws(ConfigurationError) -> String {
        let raw = raw(.redisPrefix)!
        guard ChannelName.isValid(raw.value), raw.value.count <= 64 else {
            throw fail(.redisPrefix, raw, "1–64 letters, digits or _ - : .")
        }
        return raw.value
    }

    func trustedProxies() throws(ConfigurationError) -> TrustedProxies {
        guard let raw = raw(.trustedProxies) else { return .none }
        do {
            return try TrustedProxies(list(.trustedProxies))
        } catch {
            throw fail(.trustedProxies, raw, "IP addresses or CIDR ranges (e.g. 10.0.0.0/8); '\(error.entry)' is neither")
        }
    }

    func bool(_ key: ConfigKey) throws(ConfigurationError) -> Bool? {
        guard let raw = raw(key) else { return nil }
        switch raw.value.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw fail(key, raw, "true or false")
        }
    }

    /// Reads a whole file named by `key`, or explains why it cannot.
    func fileContents(_ key: ConfigKey) throws(ConfigurationError) -> String? {
        guard let raw = raw(key) else { return nil }
        guard let text = try? String(contentsOfFile: raw.value, encoding: .utf8) else {
            throw fail(key, raw, "a readable file")
        }
        return text
    }

    func auth() throws(ConfigurationError) -> AuthConfiguration {
        var secret: [UInt8]?
        if let raw = raw(.jwtSecret) {
            let bytes = Array(raw.value.utf8)
            guard bytes.count >= AuthConfiguration.minimumSecretBytes else {
                // Never echo a secret into logs or error output.
                throw ConfigurationError(
                    key: .jwtSecret, source: raw.source, value: "<\(bytes.count) bytes>",
                    expected: "at least \(AuthConfiguration.minimumSecretBytes) bytes (e.g. `openssl rand -base64 48`)")
            }
            secret = bytes
        }
        var publicKey: AuthConfiguration.PublicKey?
        if let pem = try fileContents(.jwtPublicKeyFile) {
            guard let key = AuthConfiguration.PublicKey(pem: pem) else {
                throw fail(.jwtPublicKeyFile, raw(.jwtPublicKeyFile)!, "a PEM RSA or P-256 public key or certificate")
            }
            publicKey = key
        }
        return AuthConfiguration(
            secret: secret, publicKey: publicKey, allowAnonymous: try bool(.allowAnonymous),
            timeout: try seconds(.authTimeout))
    }

    func tls() throws(ConfigurationError) -> TLSConfiguration? {
        switch (raw(.tlsCertFile), raw(.tlsKeyFile)) {
        case (nil, nil):
            return nil
        case (let cert?, nil):
            throw fail(.tlsCertFile, cert, "--tls-key-file as well")
        case (nil, let key?):
            throw fail(.tlsKeyFile, key, "--tls-cert-file as well")
        case (let cert?, let key?):
            guard let chain = try? NIOSSLCertificate.fromPEMFile(cert.value), !chain.isEmpty else {
                throw fail(.tlsCertFile, cert, "a readable PEM certificate chain")
            }
            guard let privateKey = try? NIOSSLPrivateKey(file: key.value, format: .pem) else {
                throw fail(.tlsKeyFile, key, "a readable PEM private key")
            }
            return TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        }
    }

    func logLevel() throws(ConfigurationError) -> Logger.Level {
        let raw = raw(.logLevel)!
        guard let level = Logger.Level(rawValue: raw.value.lowercased()) else {
            throw fail(.logLevel, raw, Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return level
    }
}

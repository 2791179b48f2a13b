import Foundation
import HeraldSupport
import HeraldCore
import HeraldProtocol
import HeraldRedis
import Logging
import NIOCore
import NIOSSL
import RedisBridge

/// A node's complete, validated configuration. Built once at start; immutable afterwards.
///
/// What each field means, its default and how it is read is declared once per setting in
/// ``ConfigKey/setting``; the initial values below are only placeholders that ``resolve(flags:environment:)``
/// always overwrites (settings without a default keep the "unset" value given here).
public struct HeraldConfiguration: Sendable {
    public var host = ""
    public var port = 0
    public var nodeID = ""
    public var logLevel = Logger.Level.info
    public var threads = System.coreCount
    public var pingInterval = TimeAmount.seconds(30)
    public var pingTimeout = TimeAmount.seconds(60)
    public var maxMessageBytes = 0
    public var sessionLimits = SessionLimits()
    public var maxConnections = 0
    public var sendQueueBytes = 0
    /// `SO_SNDBUF` of each WebSocket; `nil`: the kernel's autotuning.
    public var socketSendBuffer: Int?
    public var maxBodyBytes = 0
    /// Most publications in one `POST /api/batch`, and its largest body.
    public var maxBatch = 0
    public var maxBatchBytes = 0
    public var shutdownGrace = TimeAmount.seconds(5)
    public var corsOrigins: [String] = []
    public var apiKeys: [String] = []
    /// Browser origins allowed to open WebSockets; empty allows any (and requests without
    /// an `Origin` header, i.e. non-browser clients, are always allowed).
    public var allowedOrigins: [String] = []
    /// Connection tokens: keys, anonymous access, the `auth` deadline.
    public var auth = AuthConfiguration()
    /// `wss://` and `https://` when set.
    public var tls: TLSConfiguration?
    public var connectionLimits = ConnectionLimits()
    /// The Redis to cluster through (one, several shards, or a Sentinel deployment); `nil`
    /// runs the node alone with the in-memory broker.
    public var redis: RedisDeployment?
    /// Independent shards, in order (a channel's shard is ``ShardMap``'s): the tests' way.
    public var redisShards: [RedisURL] {
        get { if case .shards(let urls) = redis { urls } else { [] } }
        set { redis = newValue.isEmpty ? nil : .shards(newValue) }
    }
    /// One Redis: the usual case, and the tests'.
    public var redisURL: RedisURL? {
        get { redisShards.first }
        set { redisShards = newValue.map { [$0] } ?? [] }
    }
    public var redisPrefix = ""
    /// How many replicas must have a publish before it is acknowledged (`WAIT`).
    public var replication = ReplicationPolicy()
    /// How long a pub/sub link may be silent before it is probed (``PubSubLiveness``).
    public var redisProbeInterval = RedisBroker.defaultProbeInterval
    public var registryInterval = TimeAmount.seconds(2)
    /// Channel history, positions and idempotency.
    public var history = HistoryPolicy()
    /// Whether presence is tracked (`HERALD_PRESENCE`).
    public var presence = true
    /// Channels whose subscribers get `join` and `leave`.
    public var joinLeaveChannels = ChannelPattern.none
    /// `/metrics` without the API key.
    public var metricsPublic = false
    public var logFormat = LogFormat.text
    /// Publishes served by ``FastPublishHandler`` ahead of the router.
    public var fastPublish = true
    /// `--config`: the file the namespaces (and any other setting) came from.
    public var configFile: String?
    public var unknownNamespaces = Namespaces.Unknown.default
    /// What a slow client of the default namespace gets; `nil`: by its history.
    public var slowConsumer: SlowConsumerPolicy?
    /// Whether the default namespace keeps users' acknowledged positions.
    public var durable = false
    /// The namespaces the file declares, each already merged over the global settings.
    public var namedNamespaces: [String: NamespacePolicy] = [:]
    /// The backend hooks; empty when none is configured.
    public var hooks = HookConfiguration()
    /// Where webhook events go; no URL: none.
    public var webhooks = WebhookConfiguration()
    /// The PostgreSQL outbox; no URL: none.
    public var outbox = OutboxConfiguration()

    /// Every namespace's rules: the default namespace from the global settings, the file's
    /// namespaces, and what an undeclared one gets.
    public var namespaces: Namespaces {
        Namespaces(
            defaultPolicy: NamespacePolicy(history: history, presence: presence, slowConsumer: slowConsumer, durable: durable), named: namedNamespaces,
            unknown: unknownNamespaces, joinLeaveChannels: joinLeaveChannels)
    }

    /// Most notifications replayed for one `subscribe` with `since`: the history kept.
    public var maxReplay: Int { history.size }

    /// `--allow-anonymous` as given; its default depends on whether a JWT key is set.
    var anonymousSetting: Bool?
    /// `--tls-cert-file` and `--tls-key-file`, loaded together once both are known.
    var tlsFiles: (certificate: SettingValue?, key: SettingValue?) = (nil, nil)

    /// Defaults for every key, with a generated node id.
    public init() {
        // The defaults table is valid by construction.
        self = try! Self.resolve(flags: [:], environment: [:])
    }

    private init(unresolved: Void) {}

    /// Resolves every ``ConfigKey`` from flags, then environment, then defaults, and validates.
    /// - Throws: ``ConfigurationError`` naming the key and the bad value.
    ///
    /// Every environment variable may also be given as `NAME_FILE`, the path of a file holding
    /// the value (Docker and Kubernetes secrets are mounted as files; a trailing newline is
    /// dropped). The variable itself wins when both are set.
    public static func resolve(
        flags: [ConfigKey: String], environment: [String: String], file: ConfigurationFile? = nil
    ) throws(ConfigurationError) -> Self {
        let environment = try resolvingFiles(environment)
        var config = Self(unresolved: ())
        for key in ConfigKey.allCases {
            let setting = key.setting
            guard let value = Self.value(of: key, setting, flags: flags, environment: environment, file: file) else { continue }
            do {
                try setting.apply(&config, value)
            } catch let error as ConfigurationError {
                throw error
            } catch {
                throw value.fail("a valid value (\(error))")
            }
        }
        try config.finish()
        if let file {
            config.namedNamespaces = try file.namespaces(over: config.namespaces.defaultPolicy)
            // A hooked namespace without its hook would refuse every subscribe or message.
            for (name, policy) in config.namedNamespaces.sorted(by: { $0.key < $1.key }) {
                if policy.subscribeHook, config.hooks.subscribeURL == nil {
                    throw ConfigurationError(
                        key: .subscribeHookURL, source: "\(file.path): namespaces.\(name).subscribe_hook", value: "true",
                        expected: "HERALD_SUBSCRIBE_HOOK_URL to be set as well")
                }
                if policy.publishHook, config.hooks.publishURL == nil {
                    throw ConfigurationError(
                        key: .publishHookURL, source: "\(file.path): namespaces.\(name).publish_hook", value: "true",
                        expected: "HERALD_PUBLISH_HOOK_URL to be set as well")
                }
            }
        }
        return config
    }

    /// Resolves as ``resolve(flags:environment:file:)`` does, reading the configuration file
    /// that `--config` or `HERALD_CONFIG` names first (flags and variables win over it).
    public static func load(flags: [ConfigKey: String], environment: [String: String]) async throws(ConfigurationError) -> Self {
        let resolved = try resolvingFiles(environment)
        guard let path = value(of: .config, ConfigKey.config.setting, flags: flags, environment: resolved, file: nil) else {
            return try resolve(flags: flags, environment: environment, file: nil)
        }
        let file = try await ConfigurationFile.load(try path.string())
        return try resolve(flags: flags, environment: environment, file: file)
    }

    /// The raw value of a setting and where it came from: flag, then environment, then default.
    private static func value(
        of key: ConfigKey, _ setting: Setting, flags: [ConfigKey: String], environment: [String: String], file: ConfigurationFile?
    ) -> SettingValue? {
        if let value = flags[key] { return SettingValue(key: key, raw: value, source: "--\(setting.flag)") }
        for name in setting.environment {
            if let value = environment[name], !value.isEmpty { return SettingValue(key: key, raw: value, source: name) }
        }
        if let value = file?.value(of: key) { return value }
        return setting.defaultValue.map { SettingValue(key: key, raw: $0, source: "default for --\(setting.flag)") }
    }

    /// The rules that involve several settings, and the defaults that depend on others.
    private mutating func finish() throws(ConfigurationError) {
        if nodeID.isEmpty { nodeID = "node-" + RandomID.make().prefix(8) }
        auth.allowAnonymous = anonymousSetting ?? !auth.verifiesTokens
        switch tlsFiles {
        case (nil, nil):
            tls = nil
        case (let certificate?, nil):
            throw certificate.fail("--tls-key-file as well")
        case (nil, let key?):
            throw key.fail("--tls-cert-file as well")
        case (let certificate?, let key?):
            guard let chain = try? NIOSSLCertificate.fromPEMFile(certificate.raw), !chain.isEmpty else {
                throw certificate.fail("a readable PEM certificate chain")
            }
            guard let privateKey = try? NIOSSLPrivateKey(file: key.raw, format: .pem) else {
                throw key.fail("a readable PEM private key")
            }
            tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        }
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

    /// The same rules for an SSE stream: no `ping` (its keep-alive comments need no answer),
    /// the token's expiry as for a WebSocket.
    public var streamRules: ConnectionStateMachine.Configuration {
        var rules = connectionRules
        rules.pingInterval = nil
        return rules
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

import HeraldCore
import HeraldProtocol
import HeraldRedis
import Logging
import NIOCore
import RedisBridge

/// The settings of a node. Each case's ``setting`` is the one declaration of everything about
/// it — flag, environment, default, help and how it is read; nothing else lists them.
public enum ConfigKey: String, CaseIterable, Sendable {
    case host, port, nodeID, logLevel, threads
    case pingInterval, pingTimeout
    case maxMessageBytes, maxSubscriptions, maxNameLength
    case rateLimit, rateBurst, maxConnections, sendQueueBytes, socketSendBuffer
    case maxBodyBytes, maxBatch, maxBatchBytes, shutdownGrace
    case corsOrigins, apiKey, allowedOrigins
    case jwtSecret, jwtPublicKeyFile, allowAnonymous, authTimeout
    case tlsCertFile, tlsKeyFile
    case maxConnectionsPerIP, connectionRate, connectionBurst, trustedProxies
    case httpHeaderTimeout, httpIdleTimeout, maxPendingPerIP
    case redisURL, redisPrefix, registryInterval, redisMinReplicas, redisWaitTimeout, redisProbeInterval
    case historySize, historyTTL, historyMaxBytes, idempotencyWindow
    case presence, joinLeaveChannels, metricsPublic, logFormat, fastPublish
    case config, unknownNamespaces, slowConsumer, durable
    case connectHookURL, subscribeHookURL, publishHookURL, refreshHookURL, hookSecret, hookTimeout, hookForwardHeaders
    case webhookURL, webhookSecret, webhookVacateDelay, webhookRetryFor, webhookTimeout
    case outboxURL, outboxTable, outboxCreate, outboxPoll

    // swift-format-ignore
    public var setting: Setting {
        switch self {
        case .host:
            Setting("host", default: "127.0.0.1", help: "Address to listen on.") { $0.host = try $1.string() }
        case .port:
            Setting("port", environment: ["HERALD_PORT", "PORT"], default: "8080",
                    help: "TCP port for WebSocket and REST (0 picks a free port).") { $0.port = try $1.int(0...65535) }
        case .nodeID:
            Setting("node-id", help: "This node's id in logs, `welcome` and stats (default: generated).") { config, value in
                guard ChannelName.isValid(value.raw), value.raw.count <= 64 else { throw value.fail("1–64 letters, digits or _ - : .") }
                config.nodeID = value.raw
            }
        case .logLevel:
            Setting("log-level", default: "info", help: "trace, debug, info, notice, warning, error or critical.") { config, value in
                guard let level = Logger.Level(rawValue: value.raw.lowercased()) else {
                    throw value.fail(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
                }
                config.logLevel = level
            }
        case .threads:
            Setting("threads", help: "Event-loop threads (default: number of cores).") { $0.threads = try $1.int(1...256) }
        case .pingInterval:
            Setting("ping-interval", default: "30", help: "Seconds between server `ping` messages.") { $0.pingInterval = try $1.seconds() }
        case .pingTimeout:
            Setting("ping-timeout", default: "60", help: "Seconds of silence after which a client is closed with 1000/timeout.") {
                $0.pingTimeout = try $1.seconds()
            }
        case .maxMessageBytes:
            Setting("max-message-bytes", default: "65536", help: "Largest inbound WebSocket frame or message; larger closes with 1009.") {
                $0.maxMessageBytes = try $1.int(125...(64 << 20))
            }
        case .maxSubscriptions:
            Setting("max-subscriptions", default: "1000", help: "Most channels one connection may subscribe to.") {
                $0.sessionLimits.maxSubscriptions = try $1.int(1...Int.max)
            }
        case .maxNameLength:
            Setting("max-name-length", default: "64", help: "Longest client name set with `set_name`.") {
                $0.sessionLimits.maxNameLength = try $1.int(1...Int.max)
            }
        case .rateLimit:
            Setting("rate-limit", default: "50", help: "Inbound messages per second per connection (token bucket rate).") {
                $0.sessionLimits.rateLimit = try $1.number(min: 0.001)
            }
        case .rateBurst:
            Setting("rate-burst", default: "100", help: "Inbound message burst per connection (token bucket size).") {
                $0.sessionLimits.rateBurst = try $1.number(min: 1)
            }
        case .maxConnections:
            Setting("max-connections", default: "auto",
                    help: "Most WebSocket and SSE connections this node accepts; auto: the open-file limit (raised to its hard limit at start) less a tenth.") {
                config, value in
                config.maxConnections = value.raw == "auto"
                    ? FileDescriptorLimit.connections(within: FileDescriptorLimit.current) : try value.int(1...Int.max)
            }
        case .sendQueueBytes:
            Setting("send-queue-bytes", default: "1048576",
                    help: "Outbound bytes queued per connection before its slow-consumer policy applies (--slow-consumer).") {
                $0.sendQueueBytes = try $1.int(1024...Int.max)
            }
        case .socketSendBuffer:
            Setting("socket-send-buffer",
                    help: "SO_SNDBUF of each WebSocket, in bytes; unset: the kernel's autotuning, which lets a client that does not read hold up to net.ipv4.tcp_wmem's maximum (4 MiB) in kernel memory.") {
                $0.socketSendBuffer = try $1.int(4096...(64 << 20))
            }
        case .maxBatch:
            Setting("max-batch", default: "1000", help: "Most publications in one POST /api/batch.") { $0.maxBatch = try $1.int(1...100_000) }
        case .maxBatchBytes:
            Setting("max-batch-bytes", default: "8388608", help: "Largest POST /api/batch body in bytes; larger is refused with 413.") {
                $0.maxBatchBytes = try $1.int(1024...(1 << 30))
            }
        case .maxBodyBytes:
            Setting("max-body-bytes", default: "65536", help: "Largest REST request body.") { $0.maxBodyBytes = try $1.int(64...(64 << 20)) }
        case .shutdownGrace:
            Setting("shutdown-grace", default: "5", help: "Seconds allowed for a graceful shutdown.") { $0.shutdownGrace = try $1.seconds() }
        case .corsOrigins:
            Setting("cors-origins", help: "Comma-separated origins allowed by CORS (`*` for any; default: none).") { $0.corsOrigins = $1.list() }
        case .apiKey:
            Setting("api-key", help: "Comma-separated API keys for /api/* (unset: loopback callers only).") { $0.apiKeys = $1.list() }
        case .allowedOrigins:
            Setting("allowed-origins", help: "Comma-separated Origins allowed to open WebSockets (others: 403; unset: any).") {
                $0.allowedOrigins = $1.list()
            }
        case .jwtSecret:
            Setting("jwt-secret", help: "HS256 secret for connection tokens, at least 32 bytes (unset: no HS256).") { config, value in
                let bytes = Array(value.raw.utf8)
                guard bytes.count >= AuthConfiguration.minimumSecretBytes else {
                    // Never echo a secret into logs or error output.
                    throw ConfigurationError(
                        key: .jwtSecret, source: value.source, value: "<\(bytes.count) bytes>",
                        expected: "at least \(AuthConfiguration.minimumSecretBytes) bytes (e.g. `openssl rand -base64 48`)")
                }
                config.auth.secret = bytes
            }
        case .jwtPublicKeyFile:
            Setting("jwt-public-key-file", help: "PEM file with the RSA (RS256) or P-256 (ES256) public key for connection tokens.") {
                config, value in
                guard let key = AuthConfiguration.PublicKey(pem: try value.fileContents()) else {
                    throw value.fail("a PEM RSA or P-256 public key or certificate")
                }
                config.auth.publicKey = key
            }
        case .allowAnonymous:
            Setting("allow-anonymous", help: "Accept WebSocket clients without a token (default: true without a JWT key, else false).") {
                $0.anonymousSetting = try $1.bool()
            }
        case .authTimeout:
            Setting("auth-timeout", default: "10", help: "Seconds a client that must authenticate has to send `auth`; then 4001.") {
                $0.auth.timeout = try $1.seconds()
            }
        case .tlsCertFile:
            Setting("tls-cert-file", help: "PEM certificate chain: serve wss:// and https:// (needs --tls-key-file).") {
                $0.tlsFiles.certificate = $1
            }
        case .tlsKeyFile:
            Setting("tls-key-file", help: "PEM private key of --tls-cert-file.") { $0.tlsFiles.key = $1 }
        case .maxConnectionsPerIP:
            Setting("max-connections-per-ip", default: "1000",
                    help: "Most WebSocket connections from one client address (0: no limit); more get 429.") {
                $0.connectionLimits.maxPerAddress = try $1.int(0...Int.max)
            }
        case .connectionRate:
            Setting("connection-rate", default: "1000",
                    help: "New WebSocket connections per second the node accepts (token bucket rate); more get 429.") {
                $0.connectionLimits.rate = try $1.number(min: 0.001)
            }
        case .connectionBurst:
            Setting("connection-burst", default: "2000", help: "New WebSocket connections accepted in a burst above --connection-rate.") {
                $0.connectionLimits.burst = try $1.number(min: 1)
            }
        case .httpHeaderTimeout:
            Setting("http-header-timeout", default: "10",
                    help: "Seconds a new connection may take to send a complete request head (HTTP request or WebSocket handshake); then it is closed.") {
                $0.connectionLimits.headerTimeout = try $1.seconds()
            }
        case .httpIdleTimeout:
            Setting("http-idle-timeout", default: "60",
                    help: "Seconds a keep-alive REST connection may stay idle (or take to send its next request head) before it is closed.") {
                $0.connectionLimits.idleTimeout = try $1.seconds()
            }
        case .maxPendingPerIP:
            Setting("max-pending-per-ip", default: "1000",
                    help: "Most connections from one peer address that have not yet sent a complete request head (0: no limit); more are closed at once. Trusted proxies are exempt.") {
                $0.connectionLimits.maxPendingPerAddress = try $1.int(0...Int.max)
            }
        case .trustedProxies:
            Setting("trusted-proxies",
                    help: "Comma-separated proxy addresses or CIDR ranges whose X-Forwarded-For names the client (the nginx in front).") {
                config, value in
                do {
                    config.connectionLimits.trustedProxies = try TrustedProxies(value.list())
                } catch let error as TrustedProxies.InvalidEntry {
                    throw value.fail("IP addresses or CIDR ranges (e.g. 10.0.0.0/8); '\(error.entry)' is neither")
                }
            }
        case .redisURL:
            Setting("redis-url", help: "redis://[:password@]host[:port][/db]: join a cluster through Redis (unset: run alone). Several, comma-separated: independent shards, each channel on one; redis+sentinel://host:port,…/master-name: the master Redis Sentinel names, followed through failovers; redis+cluster://host:port,…: a Redis Cluster, found through these seed nodes (docs/operations.md).") {
                config, value in
                do throws(RedisDeployment.ParseError) {
                    config.redis = try RedisDeployment(parsing: value.raw)
                } catch {
                    throw value.fail(error.description)
                }
            }
        case .redisPrefix:
            Setting("redis-prefix", default: "herald", help: "Prefix of every Redis key and channel, so deployments can share one Redis.") {
                config, value in
                guard ChannelName.isValid(value.raw), value.raw.count <= 64 else { throw value.fail("1–64 letters, digits or _ - : .") }
                config.redisPrefix = value.raw
            }
        case .historySize:
            Setting("history-size", default: "100",
                    help: "Notifications kept per channel for recovery (0 turns history and positions off); also the most replayed per subscribe.") {
                $0.history.size = try $1.int(0...10_000)
            }
        case .historyTTL:
            Setting("history-ttl", default: "300", help: "Seconds a channel's history lives after its last publish.") {
                $0.history.ttl = try $1.seconds()
            }
        case .historyMaxBytes:
            Setting("history-max-bytes", default: "67108864",
                    help: "Bytes of history a single node keeps for all channels together (without Redis); the channels published longest ago lose theirs first.") {
                $0.history.maxBytes = try $1.int(1024...Int.max)
            }
        case .idempotencyWindow:
            Setting("idempotency-window", default: "300", help: "Seconds an Idempotency-Key is remembered: a retry within it publishes nothing new.") {
                $0.history.idempotencyWindow = try $1.seconds()
            }
        case .presence:
            Setting("presence", default: "true",
                    help: "Track who is subscribed to each channel (/api/presence, `presence`); false saves a Redis write per subscribe.") {
                $0.presence = try $1.bool()
            }
        case .joinLeaveChannels:
            Setting("join-leave-channels",
                    help: "Channels whose subscribers get `join`/`leave` events: comma-separated names or prefixes (`rooms:*`); unset: none.") {
                config, value in
                let pattern = ChannelPattern(value.raw)
                for name in pattern.names where !ChannelName.isValid(name) { throw value.fail("channel names or prefixes ending in *; '\(name)' is not a channel name") }
                config.joinLeaveChannels = pattern
            }
        case .metricsPublic:
            Setting("metrics-public", default: "false",
                    help: "Serve /metrics without the API key (it needs one whenever HERALD_API_KEY is set).") {
                $0.metricsPublic = try $1.bool()
            }
        case .logFormat:
            Setting("log-format", default: "text", help: "text (one line for people) or json (one JSON object per line, for log shippers).") {
                config, value in
                guard let format = LogFormat(rawValue: value.raw.lowercased()) else { throw value.fail("text or json") }
                config.logFormat = format
            }
        case .fastPublish:
            Setting("fast-publish", default: "true",
                    help: "Serve POST /api/notify and /api/broadcast ahead of the router, on the connection's event loop (false: through the router, same behaviour, slower).") {
                $0.fastPublish = try $1.bool()
            }
        case .registryInterval:
            Setting("registry-interval", default: "2", help: "Seconds between registry heartbeats; a dead node leaves the figures after 3.") {
                $0.registryInterval = try $1.seconds()
            }
        case .redisMinReplicas:
            Setting("redis-min-replicas", default: "0",
                    help: "Acknowledge a publish only once this many Redis replicas have it (WAIT); else 503 replication_timeout.") {
                $0.replication.minReplicas = try $1.int(0...16)
            }
        case .redisProbeInterval:
            Setting("redis-probe-interval", default: "5",
                    help: "Seconds a Redis pub/sub link may stay silent before it is probed; no probe back within as long rebuilds it.") {
                $0.redisProbeInterval = try $1.seconds()
            }
        case .config:
            Setting("config", help: "A YAML (or .json) file: channel namespaces, and any setting below by its flag name with _ for - (flags and variables win). SIGHUP reloads its namespaces.") {
                $0.configFile = try $1.string()
            }
        case .unknownNamespaces:
            Setting("unknown-namespaces", default: "default",
                    help: "A channel of a namespace the file does not declare: default (follows the global settings) or reject (`unknown_namespace`).") {
                config, value in
                guard let rule = Namespaces.Unknown(rawValue: value.raw.lowercased()) else { throw value.fail("default or reject") }
                config.unknownNamespaces = rule
            }
        case .slowConsumer:
            Setting("slow-consumer",
                    help: "What a client whose send queue is full gets: disconnect, catch_up (missed notifications from history once it reads again) or latest (only the newest per channel and conflate_key); unset: catch_up with history, else disconnect.") {
                config, value in
                guard let policy = SlowConsumerPolicy(rawValue: value.raw.lowercased()) else { throw value.fail("disconnect, catch_up or latest") }
                // Settings resolve in declaration order: the history size is known here.
                guard policy != .catchUp || config.history.isOn else {
                    throw value.fail("history to catch up from (HERALD_HISTORY_SIZE > 0), or disconnect or latest")
                }
                config.slowConsumer = policy
            }
        case .durable:
            Setting("durable", default: "false",
                    help: "Keep each user's acknowledged position per channel of the default namespace (`ack`): a new connection of the user that subscribes without `since` resumes after it.") {
                $0.durable = try $1.bool()
            }
        case .connectHookURL:
            Setting("connect-hook-url", help: "Asked before `welcome` for every connection without a valid JWT (docs/hooks.md); unset: no hook.") {
                $0.hooks.connectURL = try $1.httpURL()
            }
        case .subscribeHookURL:
            Setting("subscribe-hook-url", help: "Asked on every subscribe to a namespace with `subscribe_hook: true`.") {
                $0.hooks.subscribeURL = try $1.httpURL()
            }
        case .publishHookURL:
            Setting("publish-hook-url", help: "Asked for every client `message` to a namespace with `publish_hook: true`; may rewrite or veto it.") {
                $0.hooks.publishURL = try $1.httpURL()
            }
        case .refreshHookURL:
            Setting("refresh-hook-url", help: "Asked when a connect hook's `expires_at` passes, to extend it; unset (or a refusal): the connection is closed with 4002 then.") {
                $0.hooks.refreshURL = try $1.httpURL()
            }
        case .hookSecret:
            Setting("hook-secret", help: "Signs every hook call: X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>; unset: unsigned.") {
                $0.hooks.secret = try $1.string()
            }
        case .hookTimeout:
            Setting("hook-timeout", default: "1", help: "Seconds a hook call may take; past it the client gets the retryable answer.") {
                $0.hooks.timeout = try $1.seconds()
            }
        case .hookForwardHeaders:
            Setting("hook-forward-headers", help: "Request headers passed to the connect hook besides Cookie and Authorization (comma-separated).") {
                $0.hooks.forwardHeaders = $1.list()
            }
        case .webhookURL:
            Setting("webhook-url", help: "Receives channel_occupied/vacated and user_online/offline events, batched and signed (docs/integration.md); unset: none.") {
                $0.webhooks.url = try $1.httpURL()
            }
        case .webhookSecret:
            Setting("webhook-secret", help: "Signs every webhook request: X-Herald-Signature: sha256=<hex HMAC-SHA256 of the body>; unset: unsigned.") {
                $0.webhooks.secret = try $1.string()
            }
        case .webhookVacateDelay:
            Setting("webhook-vacate-delay", default: "2",
                    help: "Seconds a channel (user) must stay empty (offline) cluster-wide before channel_vacated (user_offline): a quick reconnect makes no event.") {
                $0.webhooks.vacateDelay = try $1.seconds()
            }
        case .webhookRetryFor:
            Setting("webhook-retry-for", default: "600", help: "Seconds a batch is retried (with backoff) after its oldest event; then dropped, logged and counted.") {
                $0.webhooks.retryFor = try $1.seconds()
            }
        case .webhookTimeout:
            Setting("webhook-timeout", default: "5", help: "Seconds the webhook receiver may take to answer one request.") {
                $0.webhooks.timeout = try $1.seconds()
            }
        case .outboxURL:
            Setting("outbox-url", help: "A PostgreSQL database whose outbox table's committed rows are published, each once (docs/integration.md); unset: no outbox.") {
                config, value in
                let url = try value.string()
                if let expected = OutboxConfiguration.problem(with: url) { throw value.fail(expected) }
                config.outbox.url = url
            }
        case .outboxTable:
            Setting("outbox-table", default: "herald_outbox", help: "The outbox table; invalid rows move to <table>_failed.") { config, value in
                let table = try value.string()
                guard OutboxConfiguration.isValidTable(table) else { throw value.fail("lower-case letters, digits and _, at most 50, not starting with a digit") }
                config.outbox.table = table
            }
        case .outboxCreate:
            Setting("outbox-create", default: "false", help: "Create the outbox table, its _failed twin, index and NOTIFY trigger if missing.") {
                $0.outbox.create = try $1.bool()
            }
        case .outboxPoll:
            Setting("outbox-poll", default: "1", help: "Seconds between reads of the outbox table when no NOTIFY wakes it (and between tries while Redis is down).") {
                $0.outbox.poll = try $1.seconds()
            }
        case .redisWaitTimeout:
            Setting("redis-wait-timeout", default: "1000", help: "Milliseconds a publish waits for the replicas of --redis-min-replicas.") {
                $0.replication.timeout = .milliseconds(Int64(try $1.int(1...60_000)))
            }
        }
    }

    /// The `--flag` name.
    public var flag: String { setting.flag }
    /// Environment variables, first match wins.
    public var environment: [String] { setting.environment }
    /// The default, as it would be typed; `nil` means "unset".
    public var defaultValue: String? { setting.defaultValue }

    /// The key whose flag is `flag` (without the leading dashes).
    public init?(flag: String) {
        guard let key = Self.allCases.first(where: { $0.flag == flag }) else { return nil }
        self = key
    }
}

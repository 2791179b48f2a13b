
/// Every setting of a node: its flag, environment variable, default and help, in one table.
///
/// `herald serve --help` is generated from this table, `HeraldConfiguration` resolves values
/// from it (flag, then environment, then default), and docs/configuration.md mirrors it.
public enum ConfigKey: String, CaseIterable, Sendable {
    case host, port, nodeID, logLevel, threads
    case pingInterval, pingTimeout
    case maxMessageBytes, maxSubscriptions, maxNameLength
    case rateLimit, rateBurst, maxConnections, sendQueueBytes
    case maxBodyBytes, shutdownGrace
    case corsOrigins, apiKey, allowedOrigins
    case jwtSecret, jwtPublicKeyFile, allowAnonymous, authTimeout
    case tlsCertFile, tlsKeyFile
    case maxConnectionsPerIP, connectionRate, connectionBurst, trustedProxies
    case redisURL, redisPrefix, registryInterval

    /// The `--flag` name.
    public var flag: String {
        switch self {
        case .host: "host"
        case .port: "port"
        case .nodeID: "node-id"
        case .logLevel: "log-level"
        case .threads: "threads"
        case .pingInterval: "ping-interval"
        case .pingTimeout: "ping-timeout"
        case .maxMessageBytes: "max-message-bytes"
        case .maxSubscriptions: "max-subscriptions"
        case .maxNameLength: "max-name-length"
        case .rateLimit: "rate-limit"
        case .rateBurst: "rate-burst"
        case .maxConnections: "max-connections"
        case .sendQueueBytes: "send-queue-bytes"
        case .maxBodyBytes: "max-body-bytes"
        case .shutdownGrace: "shutdown-grace"
        case .corsOrigins: "cors-origins"
        case .apiKey: "api-key"
        case .allowedOrigins: "allowed-origins"
        case .jwtSecret: "jwt-secret"
        case .jwtPublicKeyFile: "jwt-public-key-file"
        case .allowAnonymous: "allow-anonymous"
        case .authTimeout: "auth-timeout"
        case .tlsCertFile: "tls-cert-file"
        case .tlsKeyFile: "tls-key-file"
        case .maxConnectionsPerIP: "max-connections-per-ip"
        case .connectionRate: "connection-rate"
        case .connectionBurst: "connection-burst"
        case .trustedProxies: "trusted-proxies"
        case .redisURL: "redis-url"
        case .redisPrefix: "redis-prefix"
        case .registryInterval: "registry-interval"
        }
    }

    /// Environment variables, first match wins.
    public var environment: [String] {
        switch self {
        case .port: ["HERALD_PORT", "PORT"]
        default: ["HERALD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")]
        }
    }

    /// The default, as it would be typed; `nil` means "unset".
    public var defaultValue: String? {
        switch self {
        case .host: "127.0.0.1"
        case .port: "8080"
        case .nodeID: nil
        case .logLevel: "info"
        case .threads: nil
        case .pingInterval: "30"
        case .pingTimeout: "60"
        case .maxMessageBytes: "65536"
        case .maxSubscriptions: "1000"
        case .maxNameLength: "64"
        case .rateLimit: "50"
        case .rateBurst: "100"
        case .maxConnections: "10000"
        case .sendQueueBytes: "1048576"
        case .maxBodyBytes: "65536"
        case .shutdownGrace: "5"
        case .corsOrigins: nil
        case .apiKey: nil
        case .allowedOrigins: nil
        case .jwtSecret: nil
        case .jwtPublicKeyFile: nil
        case .allowAnonymous: nil
        case .authTimeout: "10"
        case .tlsCertFile: nil
        case .tlsKeyFile: nil
        case .maxConnectionsPerIP: "1000"
        case .connectionRate: "1000"
        case .connectionBurst: "2000"
        case .trustedProxies: nil
        case .redisURL: nil
        case .redisPrefix: "herald"
        case .registryInterval: "2"
        }
    }

    public var help: String {
        switch self {
        case .host: "Address to listen on."
        case .port: "TCP port for WebSocket and REST (0 picks a free port)."
        case .nodeID: "This node's id in logs, `welcome` and stats (default: generated)."
        case .logLevel: "trace, debug, info, notice, warning, error or critical."
        case .threads: "Event-loop threads (default: number of cores)."
        case .pingInterval: "Seconds between server `ping` messages."
        case .pingTimeout: "Seconds of silence after which a client is closed with 1000/timeout."
        case .maxMessageBytes: "Largest inbound WebSocket frame or message; larger closes with 1009."
        case .maxSubscriptions: "Most channels one connection may subscribe to."
        case .maxNameLength: "Longest client name set with `set_name`."
        case .rateLimit: "Inbound messages per second per connection (token bucket rate)."
        case .rateBurst: "Inbound message burst per connection (token bucket size)."
        case .maxConnections: "Most WebSocket connections this node accepts."
        case .sendQueueBytes: "Outbound bytes queued per connection before it is dropped as a slow consumer."
        case .maxBodyBytes: "Largest REST request body."
        case .shutdownGrace: "Seconds allowed for a graceful shutdown."
        case .corsOrigins: "Comma-separated origins allowed by CORS (`*` for any; default: none)."
        case .apiKey: "Comma-separated API keys for /api/* (unset: loopback callers only)."
        case .allowedOrigins: "Comma-separated Origins allowed to open WebSockets (others: 403; unset: any)."
        case .jwtSecret: "HS256 secret for connection tokens, at least 32 bytes (unset: no HS256)."
        case .jwtPublicKeyFile: "PEM file with the RSA (RS256) or P-256 (ES256) public key for connection tokens."
        case .allowAnonymous: "Accept WebSocket clients without a token (default: true without a JWT key, else false)."
        case .authTimeout: "Seconds a client that must authenticate has to send `auth`; then 4001."
        case .tlsCertFile: "PEM certificate chain: serve wss:// and https:// (needs --tls-key-file)."
        case .tlsKeyFile: "PEM private key of --tls-cert-file."
        case .maxConnectionsPerIP: "Most WebSocket connections from one client address (0: no limit); more get 429."
        case .connectionRate: "New WebSocket connections per second the node accepts (token bucket rate); more get 429."
        case .connectionBurst: "New WebSocket connections accepted in a burst above --connection-rate."
        case .trustedProxies: "Comma-separated proxy addresses or CIDR ranges whose X-Forwarded-For names the client (the nginx in front)."
        case .redisURL: "redis://[:password@]host[:port][/db]: join a cluster through Redis (unset: run alone)."
        case .redisPrefix: "Prefix of every Redis key and channel, so deployments can share one Redis."
        case .registryInterval: "Seconds between registry heartbeats; a dead node leaves the figures after 3."
        }
    }

    /// Help line with environment names and default, for `--help`.
    public var helpText: String {
        let env = environment.joined(separator: ", ")
        let def = defaultValue.map { "default \($0)" } ?? "no default"
        return "\(help) (env: \(env); \(def))"
    }
}

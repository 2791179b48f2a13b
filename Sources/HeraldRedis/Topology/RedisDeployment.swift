import Foundation
import RedisBridge

/// What `HERALD_REDIS_URL` says a node's Redis is.
///
/// - `redis://h1:6379` — one Redis; `redis://h1:6379,redis://h2:6379,…` — independent shards,
///   in that order (``ShardMap``).
/// - `redis+sentinel://[user:password@]s1:26379,s2:26380/mymaster[/db]` — the master the
///   sentinels name (``SentinelLocator``); the credentials and database are the master's.
/// - `redis+cluster://[user:password@]h1:7000,h2:7001` — a Redis Cluster, found through
///   these seed nodes (``ClusterMonitor``); the credentials are every node's.
public enum RedisDeployment: Sendable, Equatable, CustomStringConvertible {
    case shards([RedisURL])
    case sentinel(sentinels: [RedisURL], masterName: String, master: RedisURL)
    case cluster(seeds: [RedisURL])

    /// Each shard costs every node a few connections; past this, Redis Cluster is the tool.
    public static let maxShards = 64

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self { case .invalid(let reason): reason }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        if text.contains("rediss://") || text.contains("rediss+") {
            // hiredis 0.14 (Debian bookworm's libhiredis) has no TLS; hiredis_ssl came with 1.0.
            throw .invalid("rediss:// (TLS to Redis) is not supported by this build's hiredis 0.14: reach Redis over a private network or a TLS tunnel")
        }
        if text.hasPrefix(Self.sentinelScheme) {
            self = try Self.sentinel(text.dropFirst(Self.sentinelScheme.count))
            return
        }
        if text.hasPrefix(Self.clusterScheme) {
            self = try Self.cluster(text.dropFirst(Self.clusterScheme.count))
            return
        }
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let urls = parts.map { RedisURL($0) }
        guard !urls.isEmpty, !urls.contains(nil) else {
            throw .invalid(
                "redis://[:password@]host[:port][/db], several separated by commas, redis+sentinel://host:port,…/name or redis+cluster://host:port,…")
        }
        let shards = urls.compactMap { $0 }
        guard Set(shards.map { "\($0.host):\($0.port)/\($0.database)" }).count == shards.count else {
            throw .invalid("each shard once: the same Redis twice would hold two shards' channels")
        }
        guard shards.count <= Self.maxShards else { throw .invalid("at most \(Self.maxShards) shards") }
        self = .shards(shards)
    }

    private static let sentinelScheme = "redis+sentinel://"
    private static let clusterScheme = "redis+cluster://"

    private static func cluster(_ rest: Substring) throws(ParseError) -> RedisDeployment {
        let usage = "redis+cluster://[user:password@]host:port,host:port (seed nodes; a cluster has database 0 only)"
        var hosts = rest
        var credentials = ""
        if let at = hosts.lastIndex(of: "@") {
            credentials = String(hosts[..<at]) + "@"
            hosts = hosts[hosts.index(after: at)...]
        }
        if hosts.hasSuffix("/") || hosts.hasSuffix("/0") { hosts = hosts[..<(hosts.lastIndex(of: "/")!)] }
        guard !hosts.contains("/") else { throw .invalid(usage) }
        let seeds = hosts.split(separator: ",").map { RedisURL("redis://" + credentials + $0.trimmingCharacters(in: .whitespaces)) }
        guard !seeds.isEmpty, !seeds.contains(nil) else { throw .invalid(usage) }
        return .cluster(seeds: seeds.compactMap { $0 })
    }

    private static func sentinel(_ rest: Substring) throws(ParseError) -> RedisDeployment {
        let usage = "redis+sentinel://[user:password@]host:port,host:port/master-name[/db]"
        guard let slash = rest.firstIndex(of: "/") else { throw .invalid(usage) }
        var hosts = rest[..<slash]
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard let name = path.first, !name.isEmpty, path.count <= 2 else { throw .invalid(usage) }
        var database = 0
        if path.count == 2 {
            guard let db = Int(path[1]), db >= 0 else { throw .invalid(usage) }
            database = db
        }
        var credentials = ""
        if let at = hosts.lastIndex(of: "@") {
            credentials = String(hosts[..<at]) + "@"
            hosts = hosts[hosts.index(after: at)...]
        }
        let sentinels = hosts.split(separator: ",").map { RedisURL("redis://" + $0.trimmingCharacters(in: .whitespaces)) }
        guard !sentinels.isEmpty, !sentinels.contains(nil), let master = RedisURL("redis://\(credentials)placeholder/\(database)")
        else { throw .invalid(usage) }
        return .sentinel(sentinels: sentinels.compactMap { $0 }, masterName: String(name), master: master)
    }

    /// The URL without passwords, for logs.
    public var description: String {
        switch self {
        case .shards(let urls): urls.map(\.description).joined(separator: ",")
        case .sentinel(let sentinels, let name, _):
            "redis+sentinel://" + sentinels.map { "\($0.host):\($0.port)" }.joined(separator: ",") + "/\(name)"
        case .cluster(let seeds):
            "redis+cluster://" + seeds.map { "\($0.host):\($0.port)" }.joined(separator: ",")
        }
    }
}

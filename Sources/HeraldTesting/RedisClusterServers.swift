import Foundation
import RedisBridge

/// A Redis Cluster on loopback: six `redis-server`s, three masters and a replica each
/// (`redis-cli --cluster create --cluster-replicas 1`), a node failing after 2 s without an
/// answer. Start it with ``withRedisCluster(_:)``; roles change as tests fail nodes over, so
/// ask ``masters()`` rather than remembering.
public final class RedisClusterServers: Sendable {
    public let servers: [RedisServer]

    init(servers: [RedisServer]) {
        self.servers = servers
    }

    /// `HERALD_REDIS_URL` for this cluster: two seed nodes are enough.
    public var url: String {
        "redis+cluster://" + servers.prefix(2).map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    public func server(port: Int) -> RedisServer? { servers.first { $0.port == port } }

    /// The master serving `slot`, as the answering nodes say.
    public func owner(of slot: Int) async throws -> RedisServer {
        for server in servers {
            guard let reply = try? await server.command("CLUSTER", "SLOTS"), let ranges = reply.array else { continue }
            for range in ranges {
                guard let fields = range.array, let start = fields[0].int, let end = fields[1].int,
                    (start...end).contains(slot), let port = fields[2].array?[1].int, let owner = self.server(port: port)
                else { continue }
                return owner
            }
        }
        throw TimeoutError(what: "a Redis Cluster node naming the owner of slot \(slot)")
    }

    /// The servers that are masters now (by `ROLE`), in port order.
    public func masters() async -> [RedisServer] {
        var masters: [RedisServer] = []
        for server in servers where (try? await server.command("ROLE"))?.array?.first?.string == "master" {
            masters.append(server)
        }
        return masters
    }

    /// A replica of `master` (by `ROLE`).
    public func replica(of master: RedisServer) async throws -> RedisServer {
        for server in servers where server !== master {
            guard let role = try? await server.command("ROLE").array, role.first?.string == "slave",
                role.count > 2, role[2].int == master.port
            else { continue }
            return server
        }
        throw TimeoutError(what: "a replica of 127.0.0.1:\(master.port)")
    }

    /// Waits until every live node reports the cluster `ok` and agrees on the slot map.
    public func waitUntilStable(timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("the Redis Cluster to be ok and agree on its slots", timeout: timeout) {
            var maps: Set<String> = []
            for server in self.servers {
                guard let info = try? await server.command("CLUSTER", "INFO").string else { continue }
                guard info.contains("cluster_state:ok") else { return false }
                guard let slots = try? await server.command("CLUSTER", "SLOTS").array else { return false }
                maps.insert(slots.compactMap { range -> String? in
                    guard let fields = range.array, let start = fields[0].int, let port = fields[2].array?[1].int else { return nil }
                    return "\(start):\(port)"
                }.sorted().joined(separator: ","))
            }
            return maps.count == 1
        }
    }

    /// Moves `slot` with its keys from its owner to `target`, live, the way `redis-cli
    /// --cluster reshard` does: IMPORTING/MIGRATING, `MIGRATE` in batches, then `SETSLOT NODE`
    /// on every master.
    public func migrate(slot: Int, to target: RedisServer) async throws {
        let source = try await owner(of: slot)
        guard source !== target else { return }
        let sourceID = try await source.command("CLUSTER", "MYID").string ?? ""
        let targetID = try await target.command("CLUSTER", "MYID").string ?? ""
        _ = try await target.command("CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
        _ = try await source.command("CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID)
        while true {
            let keys = try await source.command("CLUSTER", "GETKEYSINSLOT", String(slot), "100").array?.compactMap(\.string) ?? []
            if keys.isEmpty { break }
            _ = try await source.command(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS"] + keys)
        }
        for server in [target, source] {
            _ = try await server.command("CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        }
        for master in await masters() where master !== source && master !== target {
            _ = try? await master.command("CLUSTER", "SETSLOT", String(slot), "NODE", targetID)
        }
    }
}

/// Runs `body` with a six-server Redis Cluster, every server stopped afterwards however
/// `body` ends.
public func withRedisCluster<T>(_ body: (RedisClusterServers) async throws -> T) async throws -> T {
    let arguments = [
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
        // A replica whose master died takes over however long it was cut off.
        "--cluster-replica-validity-factor", "0",
    ]
    func start(_ servers: [RedisServer]) async throws -> T {
        if servers.count < 6 { return try await withRedis(arguments: arguments, clusterBus: true) { try await start(servers + [$0]) } }
        let cli = try ChildProcess(
            "/usr/bin/redis-cli",
            ["--cluster", "create"] + servers.map { "127.0.0.1:\($0.port)" } + ["--cluster-replicas", "1", "--cluster-yes"])
        let status = try await cli.waitForExit(timeout: .seconds(30))
        guard status == 0 else { throw TimeoutError(what: "redis-cli --cluster create (exit \(status): \(cli.outputText))") }
        let cluster = RedisClusterServers(servers: servers)
        try await cluster.waitUntilStable()
        // Every replica synced, so a failover loses nothing that was written before the test.
        try await waitUntil("the replicas to sync", timeout: .seconds(20)) {
            var synced = 0
            for server in servers {
                let info = (try? await server.command("INFO", "replication").string) ?? ""
                if info.contains("master_link_status:up") { synced += 1 }
            }
            return synced == 3
        }
        return try await body(cluster)
    }
    return try await start([])
}

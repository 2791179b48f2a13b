import Foundation
import RedisBridge

/// A Redis Sentinel deployment on loopback: a master, one replica, three sentinels watching
/// them under the name ``name``. Start it with ``withSentinels(_:)``.
public final class RedisSentinels: Sendable {
    public let name = "herald"
    public let master: RedisServer
    public let replica: RedisServer
    public let sentinelPorts: [Int]

    init(master: RedisServer, replica: RedisServer, sentinelPorts: [Int]) {
        self.master = master
        self.replica = replica
        self.sentinelPorts = sentinelPorts
    }

    /// `HERALD_REDIS_URL` for this deployment.
    public var url: String {
        "redis+sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(name)"
    }

    /// What every sentinel says the master's port is (`nil` where one does not answer).
    public func masterPorts() async -> [Int?] {
        var ports: [Int?] = []
        for port in sentinelPorts {
            let reply = try? await RedisServer.command(port: port, ["SENTINEL", "get-master-addr-by-name", name])
            ports.append(reply?.array?.last?.string.flatMap { Int($0) })
        }
        return ports
    }
}

/// Runs `body` with a master, a replica and three sentinels (quorum 2, a master is down after
/// 1 s), all stopped afterwards however `body` ends.
public func withSentinels<T>(_ body: (RedisSentinels) async throws -> T) async throws -> T {
    try await withRedis { master in
        try await withRedis(arguments: ["--replicaof", "127.0.0.1", String(master.port)]) { replica in
            try await waitUntil("the replica to sync with the master", timeout: .seconds(10)) {
                let info = try await replica.command("INFO", "replication").string ?? ""
                return info.contains("master_link_status:up")
            }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-sentinels-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var children: [ChildProcess] = []
            do {
                var ports: [Int] = []
                for index in 0..<3 {
                    let port = try freePort()
                    let config = directory.appendingPathComponent("sentinel-\(index).conf")
                    try """
                        port \(port)
                        bind 127.0.0.1
                        protected-mode no
                        dir \(directory.path)
                        sentinel monitor herald 127.0.0.1 \(master.port) 2
                        sentinel down-after-milliseconds herald 1000
                        sentinel failover-timeout herald 5000
                        sentinel parallel-syncs herald 1

                        """.write(to: config, atomically: true, encoding: .utf8)
                    children.append(try ChildProcess(try RedisServer.executable(), [config.path, "--sentinel"]))
                    ports.append(port)
                }
                // Ready for a failover: each sentinel knows the replica and the two others.
                for port in ports {
                    try await waitUntil("sentinel \(port) to know the replica and its peers", timeout: .seconds(20)) {
                        let replicas = try? await RedisServer.command(port: port, ["SENTINEL", "replicas", "herald"]).array?.count
                        let peers = try? await RedisServer.command(port: port, ["SENTINEL", "sentinels", "herald"]).array?.count
                        return replicas == 1 && peers == 2
                    }
                }
                let result = try await body(RedisSentinels(master: master, replica: replica, sentinelPorts: ports))
                for child in children { await child.terminate() }
                try? FileManager.default.removeItem(at: directory)
                return result
            } catch {
                for child in children { await child.terminate() }
                try? FileManager.default.removeItem(at: directory)
                throw error
            }
        }
    }
}

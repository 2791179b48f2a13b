import Foundation
import HeraldProtocol
import HeraldTesting
import Testing

/// A pub/sub link that stops delivering while its TCP connection stays open is noticed by its
/// probe and rebuilt, against a real redis-server.
@Suite(.serialized) struct PubSubLivenessClusterTests {
    /// The ids of Redis' pub/sub clients.
    static func pubsubClients(_ redis: RedisServer) async throws -> Set<String> {
        let list = try await redis.command("CLIENT", "LIST", "TYPE", "pubsub").string ?? ""
        return Set(list.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("id=") }.map(String.init)
        })
    }

    static func publishCalls(_ redis: RedisServer) async throws -> Int {
        let stats = try await redis.command("INFO", "commandstats").string ?? ""
        guard let line = stats.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_publish:") }),
            let calls = line.split(separator: "=").dropFirst().first?.split(separator: ",").first
        else { return 0 }
        return Int(calls) ?? 0
    }

    @Test func aQuietLinkIsKeptByItsProbesAndASilentOneIsRebuiltAndHealed() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis, { $0.redisProbeInterval = .milliseconds(200) }) { nodes in
                let subscriber = try await nodes[0].subscriber("quiet")
                let links = try await Self.pubsubClients(redis)
                #expect(links.count == 2, "one pub/sub link per node")
                // Idle: each link probes itself, the probes come back, nothing is rebuilt.
                let before = try await Self.publishCalls(redis)
                try await waitUntil("both nodes to probe their idle links a few times") {
                    try await Self.publishCalls(redis) >= before + 6
                }
                #expect(try await Self.pubsubClients(redis) == links)

                // Redis stops answering every client for 1.5 s: no probe comes back, so each
                // node gives its link up and builds a new one once Redis answers again.
                _ = try await redis.command("CLIENT", "PAUSE", "1500", "ALL")
                try await waitUntil("both pub/sub links to be rebuilt", timeout: .seconds(15)) {
                    let now = try await Self.pubsubClients(redis)
                    return now.count == 2 && now.isDisjoint(with: links)
                }
                try await waitUntil("node 2 to publish again") {
                    (try? await nodes[1].request(.POST, "/api/notify/quiet", body: #"{"title":"after"}"#).status) == 200
                }
                _ = try await subscriber.notification(titled: "after")
            }
        }
    }
}

import Foundation
import HeraldProtocol
import HeraldRedis
import HeraldTesting
import Synchronization
import Logging
import NIOPosix
import RedisBridge
import Testing

/// Nodes over a Redis Sentinel deployment (`redis+sentinel://…/herald`): a master, a replica
/// and three sentinels, all real processes.
@Suite(.serialized) struct SentinelTests {
    @Test func nodesFollowAFailoverAndSubscribersGetEveryNotificationOnceInOrder() async throws {
        try await withSentinels { sentinels in
            let deployment = try RedisDeployment(parsing: sentinels.url)
            try await withCluster(2, shards: [sentinels.master], { $0.redis = deployment }) { nodes in
                let subscribers = [try await nodes[0].subscriber("feed"), try await nodes[1].subscriber("feed")]
                let publisher = NumberedPublisher(urls: nodes.map(\.baseURL), channel: "feed")
                let total = 300
                let killed = Mutex<ContinuousClock.Instant?>(nil)
                let firstAfter = Mutex<ContinuousClock.Instant?>(nil)
                let retries = try await publisher.publish(total) { number in
                    if number == 100 {
                        try await sentinels.master.kill()
                        killed.withLock { $0 = .now }
                    }
                    if number == 101 { firstAfter.withLock { $0 = .now } }
                }
                // Refused while no master was known, accepted again (same keys) after the switch.
                #expect(retries > 0, "no publish was refused during the failover")
                let gap = try #require(firstAfter.withLock { $0 }) - #require(killed.withLock { $0 })
                #expect(gap < .seconds(15), "publishing resumed \(gap) after the master died")
                #expect(await sentinels.masterPorts() == [sentinels.replica.port, sentinels.replica.port, sentinels.replica.port])
                for node in nodes {
                    let health = try await node.request(.GET, "/health").object()
                    #expect(health["brokerStatus"] == .string("up"))
                }
                for subscriber in subscribers {
                    var titles: [String] = []
                    while titles.count < total {
                        titles.append(try await subscriber.nextNotification(timeout: .seconds(10)).title ?? "")
                    }
                    #expect(titles == (0..<total).map(String.init), "first difference at \(titles.indices.first { titles[$0] != String($0) } ?? -1)")
                }
                // Nothing was written to the old master after it died; the new one holds the stream.
                let length = try await sentinels.replica.command("XLEN", "\(nodes[0].configuration.redisPrefix):hist:{feed}").int
                #expect(length == min(total, 100))
            }
        }
    }

    @Test func aReplicaIsNeverWrittenTo() async throws {
        try await withSentinels { sentinels in
            // A locator pointed at the replica directly must refuse it (ROLE), then find the master.
            let locator = SentinelLocator(
                sentinels: sentinels.sentinelPorts.map { RedisURL(host: "127.0.0.1", port: $0) }, masterName: sentinels.name,
                template: RedisURL(), group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let toReplica = try await RedisConnection.connect(to: sentinels.replica.url, group: MultiThreadedEventLoopGroup.singleton)
            defer { toReplica.close() }
            await #expect(throws: SentinelError.self) { try await locator.admit(toReplica, at: sentinels.replica.url) }
            let master = try await locator.locate()
            #expect(master.port == sentinels.master.port)
            let toMaster = try await RedisConnection.connect(to: master, group: MultiThreadedEventLoopGroup.singleton)
            defer { toMaster.close() }
            try await locator.admit(toMaster, at: master)
        }
    }

    @Test func aSentinelURLIsParsedAndBadOnesAreRefused() throws {
        let parsed = try RedisDeployment(parsing: "redis+sentinel://:secret@10.0.0.1:26379,10.0.0.2:26380/mymaster/2")
        guard case .sentinel(let sentinels, let name, let master) = parsed else {
            Issue.record("not a sentinel deployment: \(parsed)")
            return
        }
        #expect(sentinels.map(\.port) == [26379, 26380])
        #expect(name == "mymaster")
        #expect(master.password == "secret" && master.database == 2)
        #expect("\(parsed)" == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster")
        for bad in ["redis+sentinel://10.0.0.1:26379", "redis+sentinel://10.0.0.1:26379/", "redis+sentinel:///m", "redis+sentinel://h:x/m"] {
            #expect(throws: RedisDeployment.ParseError.self, "\(bad)") { try RedisDeployment(parsing: bad) }
        }
    }
}

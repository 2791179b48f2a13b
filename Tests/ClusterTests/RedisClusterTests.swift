import Foundation
import HeraldProtocol
import HeraldRedis
import HeraldTesting
import Synchronization
import Testing

/// Nodes over a Redis Cluster (`redis+cluster://…`): six real redis-servers (three masters,
/// three replicas), three nodes behind nginx. A numbered notification goes out every 10 ms
/// on one channel per master while a master fails over, dies, or gives a slot away; every
/// client must end with every notification once and in order — or see an epoch change where
/// writes were lost (its explicit `recovered:false`), never a reused offset, a duplicate or a
/// silent gap.
@Suite(.serialized) struct RedisClusterTests {
    /// How many notifications each channel gets; the fault comes after ``faultAt``.
    static let total = 200
    static let faultAt = 50

    /// One channel per master (its slot served there), three subscribers of each through nginx.
    struct Stage {
        let cluster: RedisClusterServers
        let nodes: [RunningNode]
        let balancer: NginxBalancer
        let channels: [String]
        let owners: [RedisServer]
        let subscribers: [[TestWebSocket]]
        var prefix: String { nodes[0].configuration.redisPrefix }
    }

    func withStage(_ body: (Stage) async throws -> Void) async throws {
        try await withRedisCluster { cluster in
            let deployment = try RedisDeployment(parsing: cluster.url)
            try await withCluster(3, shards: [cluster.servers[0]], { $0.redis = deployment }) { nodes in
                try await withNginx(upstreamPorts: nodes.map(\.port)) { balancer in
                    let masters = await cluster.masters()
                    var channels: [String] = []
                    var owners: [RedisServer] = []
                    for master in masters {
                        // The first name whose slot this master serves.
                        var index = 0
                        while true {
                            let name = "c\(masters.firstIndex { $0 === master }!)-\(index)"
                            if try await cluster.owner(of: ClusterSlot.slot(ofTag: name)) === master {
                                channels.append(name)
                                owners.append(master)
                                break
                            }
                            index += 1
                        }
                    }
                    var subscribers: [[TestWebSocket]] = []
                    for channel in channels {
                        var group: [TestWebSocket] = []
                        for _ in 0..<3 {
                            let client = try await TestWebSocket.connect(port: balancer.port)
                            try await client.send(.subscribe(channel: channel))
                            _ = try await client.next { if case .subscribed = $0 { true } else { false } }
                            group.append(client)
                        }
                        subscribers.append(group)
                    }
                    try await body(
                        Stage(
                            cluster: cluster, nodes: nodes, balancer: balancer, channels: channels, owners: owners,
                            subscribers: subscribers))
                }
            }
        }
    }

    /// Publishes ``total`` numbered notifications to every channel at once, through nginx,
    /// running `fault` once each channel passed ``faultAt``.
    @discardableResult
    func publishAll(_ stage: Stage, fault: @escaping @Sendable () async throws -> Void) async throws -> Int {
        let faulted = Passed()
        let (port, channels) = (stage.balancer.port, stage.channels)
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for channel in channels {
                group.addTask {
                    let publisher = NumberedPublisher(urls: ["http://127.0.0.1:\(port)"], channel: channel)
                    return try await publisher.publish(Self.total) { number in
                        guard number == Self.faultAt else { return }
                        let all = faulted.count.withLock { $0 += 1; return $0 == channels.count }
                        if all { try await fault() }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }

    /// How many channels passed ``faultAt``, shared by their publishers.
    final class Passed: Sendable {
        let count = Mutex(0)
    }

    /// Every subscriber's notifications: in order, each number once; where the epoch changed
    /// (writes lost in a failover) numbers may be missing, nowhere else. Returns the epoch
    /// changes seen.
    @discardableResult
    func expectEveryNotificationOnce(_ stage: Stage) async throws -> Int {
        var epochChanges = 0
        for (channel, group) in zip(stage.channels, stage.subscribers) {
            for client in group {
                var received: [(number: Int, position: StreamPosition)] = []
                while received.last?.number != Self.total - 1 {
                    let notification = try await client.nextNotification(timeout: .seconds(15))
                    let position = try #require(notification.position, "a notification without a position on \(channel)")
                    received.append((Int(notification.title ?? "") ?? -1, position))
                }
                for (previous, next) in zip(received, received.dropFirst()) {
                    if next.position.epoch == previous.position.epoch {
                        #expect(
                            next.number == previous.number + 1 && next.position.offset == previous.position.offset + 1,
                            "\(channel): \(previous) then \(next): a gap or a duplicate within one epoch")
                    } else {
                        epochChanges += 1
                        #expect(next.number > previous.number, "\(channel): \(previous) then \(next): a duplicate across epochs")
                    }
                }
                #expect(received.first?.number == 0, "\(channel): started at \(received.first.map { "\($0)" } ?? "nothing")")
            }
        }
        return epochChanges
    }

    @Test func aGracefulFailoverLosesNothing() async throws {
        try await withStage { stage in
            let replica = try await stage.cluster.replica(of: stage.owners[0])
            try await publishAll(stage) {
                _ = try await replica.command("CLUSTER", "FAILOVER")
            }
            #expect(try await stage.cluster.owner(of: ClusterSlot.slot(ofTag: stage.channels[0])) === replica)
            #expect(try await expectEveryNotificationOnce(stage) == 0)
        }
    }

    @Test func aKilledMasterIsReplacedAndClientsSeeEveryNotificationOrTheEpochChange() async throws {
        try await withStage { stage in
            let victim = stage.owners[0]
            let replica = try await stage.cluster.replica(of: victim)
            let (port, channel, node) = (stage.balancer.port, stage.channels[0], stage.nodes[0])
            let retries = try await publishAll(stage) {
                try await victim.kill()
                // Until its replica takes over: its channels refused within 5 s, the node degraded.
                let started = ContinuousClock.now
                let refused = try await HTTPResult.send(
                    .POST, "http://127.0.0.1:\(port)/api/notify/\(channel)", body: #"{"title":"refused"}"#)
                #expect(ContinuousClock.now - started < .seconds(5))
                #expect(refused.status == 503, "\(refused.text)")
                #expect(try refused.object()["code"] == .string("unavailable"))
                // Every node sees the link drop within moments: wait for it, bounded.
                try await waitUntil("node 1's /health to name the dead master", timeout: .seconds(5)) {
                    let health = try await node.request(.GET, "/health").object()
                    return health["status"] == .string("degraded")
                        && "\(health["brokerStatus"] ?? .null)".contains("127.0.0.1:\(victim.port)")
                }
            }
            #expect(retries > 0, "no publish was refused while the master was down")
            #expect(try await stage.cluster.owner(of: ClusterSlot.slot(ofTag: stage.channels[0])) === replica)
            try await expectEveryNotificationOnce(stage)
            // The other masters' channels never noticed.
            for node in stage.nodes {
                let health = try await node.request(.GET, "/health").object()
                #expect(health["brokerStatus"] == .string("up"), "\(health)")
            }
        }
    }

    @Test func aSubscribedChannelFollowsALiveSlotMigration() async throws {
        try await withStage { stage in
            let slot = ClusterSlot.slot(ofTag: stage.channels[0])
            let target = stage.owners[1]
            try await publishAll(stage) {
                try await stage.cluster.migrate(slot: slot, to: target)
            }
            #expect(try await stage.cluster.owner(of: slot) === target)
            #expect(try await expectEveryNotificationOnce(stage) == 0)
            // Sharded pub/sub: the nodes listen for the channel at its new owner only.
            let key = "\(stage.prefix):ch:{\(stage.channels[0])}"
            try await waitUntil("the nodes to listen at the new owner only") {
                let there = try await target.command("PUBSUB", "SHARDNUMSUB", key).array?.last?.int
                let before = try await stage.owners[0].command("PUBSUB", "SHARDNUMSUB", key).array?.last?.int
                return there == subscribedNodes(stage, 0) && before == 0
            }
        }
    }

    /// How many nodes have a subscriber of channel `index` (nginx picks the nodes).
    func subscribedNodes(_ stage: Stage, _ index: Int) -> Int {
        stage.nodes.filter { $0.hub.subscriberCount(stage.channels[index]) > 0 }.count
    }

    @Test func eachNodeListensOnTheOwningShardOnly() async throws {
        try await withRedisCluster { cluster in
            let deployment = try RedisDeployment(parsing: cluster.url)
            try await withCluster(3, shards: [cluster.servers[0]], { $0.redis = deployment }) { nodes in
                let names = (0..<30).map { "spread\($0)" }
                var clients: [TestWebSocket] = []
                for node in nodes {
                    // A client per channel, subscribing all at once: the node subscribes them in
                    // batches, and Redis takes one slot per SSUBSCRIBE only.
                    var group: [TestWebSocket] = []
                    for _ in names { group.append(try await node.connect()) }
                    for (client, name) in zip(group, names) { try await client.send(.subscribe(channel: name)) }
                    for client in group { _ = try await client.next { if case .subscribed = $0 { true } else { false } } }
                    clients += group
                }
                let prefix = nodes[0].configuration.redisPrefix
                let masters = await cluster.masters()
                var owners = Set<Int>()
                for name in names {
                    let owner = try await cluster.owner(of: ClusterSlot.slot(ofTag: name))
                    owners.insert(owner.port)
                    for master in masters {
                        let count = try await master.command("PUBSUB", "SHARDNUMSUB", "\(prefix):ch:{\(name)}").array?.last?.int
                        #expect(count == (master === owner ? 3 : 0), "\(name) at \(master.port): \(count ?? -1)")
                    }
                    // Plain pub/sub is not used at all: nothing would reach every Redis node.
                    #expect(try await owner.command("PUBSUB", "NUMSUB", "\(prefix):ch:{\(name)}").array?.last?.int == 0)
                }
                #expect(owners.count == 3, "30 channels all on \(owners)")
                // Each channel's keys live on its owner, and a publish through any node reaches all.
                let reply = try await nodes[0].request(.POST, "/api/notify/spread7", body: #"{"title":"hi"}"#).object()
                #expect(reply["delivered"] == .integer(3))
                for client in clients where client === clients[7] || client === clients[37] || client === clients[67] {
                    #expect(try await client.nextNotification().title == "hi")
                }
                let owner = try await cluster.owner(of: ClusterSlot.slot(ofTag: "spread7"))
                #expect(try await owner.command("EXISTS", "\(prefix):hist:{spread7}").int == 1)
            }
        }
    }

    /// A channel's presence moves with its slot: the node writes its members at the new
    /// master and keeps them alive there, so they outlive the old entries' expiry.
    @Test func presenceFollowsASlotMigration() async throws {
        struct Page: Decodable { var total: Int }
        try await withRedisCluster { cluster in
            let deployment = try RedisDeployment(parsing: cluster.url)
            try await withCluster(2, shards: [cluster.servers[0]], { $0.redis = deployment }) { nodes in
                let member = try await nodes[0].connect()
                try await member.send(.setName("ada"))
                try await member.send(.subscribe(channel: "lobby"))
                _ = try await member.next { if case .subscribed = $0 { true } else { false } }
                let node = nodes[1]
                @Sendable func total() async throws -> Int {
                    let response = try await node.request(.GET, "/api/presence/lobby")
                    guard response.status == 200 else { throw TimeoutError(what: "presence: \(response.status) \(response.text)") }
                    return try response.json(Page.self).total
                }
                try await waitUntil("node 2 to see the member") { try await total() == 1 }
                let slot = ClusterSlot.slot(ofTag: "lobby")
                let owner = try await cluster.owner(of: slot)
                let target = try #require(await cluster.masters().first { $0 !== owner })
                try await cluster.migrate(slot: slot, to: target)
                // Read at once, from a node that has not heard of the move yet (nothing of its
                // own is on that channel): answered from the new owner, not refused.
                #expect(try await total() == 1)
                // Three heartbeats (0.2 s each) and more: entries not refreshed would be gone. The
                // time passing is what is tested, so it is slept, with a read every 100 ms.
                let deadline = ContinuousClock.now + .seconds(2)
                while ContinuousClock.now < deadline {
                    #expect(try await total() == 1)
                    try await Task.sleep(for: .milliseconds(100))
                }
                let key = "\(nodes[0].configuration.redisPrefix):pres:{lobby}"
                #expect(try await cluster.owner(of: slot) === target)
                #expect(try await target.command("ZCARD", key).int == 1)
            }
        }
    }

    @Test func clusterURLsAreParsedAndBadOnesRefused() throws {
        let parsed = try RedisDeployment(parsing: "redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7001")
        guard case .cluster(let seeds) = parsed else {
            Issue.record("not a cluster deployment: \(parsed)")
            return
        }
        #expect(seeds.map(\.port) == [7000, 7001])
        #expect(seeds.allSatisfy { $0.password == "secret" })
        #expect("\(parsed)" == "redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
        for bad in ["redis+cluster://", "redis+cluster://h:x", "redis+cluster://h:7000/2", "redis+cluster://h:7000/x/y"] {
            #expect(throws: RedisDeployment.ParseError.self, "\(bad)") { try RedisDeployment(parsing: bad) }
        }
        // TLS is refused by name: this hiredis has none.
        #expect(throws: RedisDeployment.ParseError.invalid(
            "rediss:// (TLS to Redis) is not supported by this build's hiredis 0.14: reach Redis over a private network or a TLS tunnel"
        )) { try RedisDeployment(parsing: "rediss://h:6379") }
    }
}

import Foundation
import HeraldCore
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The cluster registry in Redis: who is alive, and each node's channel counts and clients.
///
/// Keys (named by ``RedisKeys``, one slot per deployment, each node writing only its own):
/// - `<p>:{<p>}:nodes` — set of node ids that ever registered (pruned by readers);
/// - `<p>:{<p>}:node:<id>` — the node's ``NodeStats`` as JSON, expiring after ``ttl``;
/// - `…:node:<id>:channels` — hash channel → local subscribers (for listings; the count a
///   publish or a `subscribed` needs is kept per channel, on the channel's shard, by the
///   broker: ``SubscriberCountStore``, written from here);
/// - `…:node:<id>:clients` — sorted set client id by connection sequence (for paging);
/// - `…:node:<id>:clientinfo` — hash client id → ``ClientInfo`` JSON.
///
/// A node rewrites its stats and refreshes every expiry each ``interval`` (a heartbeat), and
/// sends changes within ``flushDelay`` of them happening. A node that dies stops refreshing,
/// so all its keys expire after `ttl = 3 × interval`: that bounds how long a dead node's
/// clients and counts stay in the cluster's figures.
public final class RedisClusterRegistry: ClusterDirectory, HubObserver, Service {
    private struct Pending {
        var channels = Set<String>()
        var clients: [String: (sequence: UInt64, info: ClientInfo?)] = [:]
        var flushScheduled = false
        /// A full registration is being written: flushes wait for it, since its `DEL` would
        /// erase whatever they wrote first.
        var registering = false
    }

    public let nodeID: String
    public let interval: TimeAmount
    public var ttl: TimeAmount { .nanoseconds(interval.nanoseconds * 3) }
    public let flushDelay = TimeAmount.milliseconds(20)
    private let topology: RedisTopology
    private let keys: RedisKeys
    private let supervisor: RedisSupervisor
    private let logger: Logger
    private let loop: any EventLoop
    private let pending = Mutex(Pending())
    private let liveNodes = Mutex<[String]>([])
    private let localBox = Mutex<(any LocalNodeState)?>(nil)
    private let countsBox = Mutex<(any SubscriberCountStore)?>(nil)

    public init(
        nodeID: String, topology: RedisTopology, interval: TimeAmount
    ) {
        self.topology = topology
        let (keys, logger) = (topology.keys, topology.logger)
        self.nodeID = nodeID
        self.keys = keys
        self.interval = interval
        self.logger = logger
        self.loop = topology.nextLoop()
        self.supervisor = topology.link("registry")
    }

    /// Starts mirroring this node's state; the Hub tells of changes through ``HubObserver``.
    /// Called once, before `run()`.
    public func attach(_ local: any LocalNodeState, hub: Hub) {
        localBox.withLock { $0 = local }
        hub.setObserver(self)
    }

    private var local: (any LocalNodeState)? { localBox.withLock { $0 } }

    /// Where this node's subscriber counts per channel are written (the broker, which keeps them
    /// on each channel's shard). Called once, before `run()`.
    public func attach(counts: any SubscriberCountStore) {
        countsBox.withLock { $0 = counts }
    }

    private var counts: (any SubscriberCountStore)? { countsBox.withLock { $0 } }

    /// Writes every channel's count again: their entries' expiry, and whatever Redis lost.
    private func writeAllCounts() {
        guard let counts, let local else { return }
        counts.writeCounts(local.channelCounts().map { ($0.key, $0.value) }, ttl: ttl)
    }

    // MARK: Keys

    /// Where this registry keeps the nodes' channel counts, for the broker's count after a publish.
    public var subscriberCounting: RedisSubscriberCounting {
        RedisSubscriberCounting(keys: keys, nodeID: nodeID)
    }

    private var nodesKey: String { keys.nodes }
    private func nodeKey(_ id: String) -> String { keys.node(id) }
    private func channelsKey(_ id: String) -> String { keys.nodeChannels(id) }
    private func clientsKey(_ id: String) -> String { keys.nodeClients(id) }
    private func clientInfoKey(_ id: String) -> String { keys.nodeClientInfo(id) }

    // MARK: Service

    /// How long a clean shutdown waits for Redis to remove this node's entries.
    static let deregisterTimeout = TimeAmount.seconds(1)

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await self.supervisor.run { connection in try await self.registerFully(on: connection) }
                }
                group.addTask { await self.heartbeat() }
            }
        }
        await deregister()
    }

    /// At a fixed rate, not "an interval after the last one ended": every key lives
    /// `3 × interval`, and a beat that waited a whole interval after round trips that a busy
    /// node or Redis made slow let counts lapse between beats (a publish then counted one
    /// node's subscribers short).
    private func heartbeat() async {
        let clock = ContinuousClock()
        let period = Duration.nanoseconds(interval.nanoseconds)
        var next = clock.now
        while !Task.isCancelled {
            // A beat that is late does not make the next ones burst to catch up.
            next = max(next + period, clock.now)
            try? await Task.sleep(until: next, clock: clock)
            guard !Task.isCancelled else { continue }
            writeAllCounts()
            guard let connection = supervisor.connection else { continue }
            do {
                try await writeStats(on: connection)
                try await refreshLiveNodes(on: connection)
            } catch {
                logger.debug("registry heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// On every (re)connection: replace whatever this node had in Redis with the truth.
    private func registerFully(on connection: RedisConnection) async throws {
        guard let local else { return }
        // Changes from here on stay pending and are flushed once the snapshot is in Redis:
        // dropping them (as a reset after the snapshot did) lost a subscription made while
        // the node registered, for good. Flushing one twice is harmless: a flush writes the
        // current count, not a difference.
        pending.withLock { $0.registering = true }
        defer { finishRegistering(on: connection) }
        let clients = await local.clients(after: 0, limit: Int.max)
        let counts = local.channelCounts()
        var commands: [[String]] = [
            ["DEL", channelsKey(nodeID), clientsKey(nodeID), clientInfoKey(nodeID)],
        ]
        commands += chunked(counts.map { [$0.key, String($0.value)] }.flatMap { $0 }, prefix: ["HSET", channelsKey(nodeID)])
        commands += chunked(clients.flatMap { [String($0.sequence), $0.info.id] }, prefix: ["ZADD", clientsKey(nodeID)])
        commands += chunked(clients.flatMap { [$0.info.id, Self.json($0.info)] }, prefix: ["HSET", clientInfoKey(nodeID)])
        _ = try await connection.pipeline(commands.map { $0.map { ByteBuffer(string: $0) } })
        try await writeStats(on: connection)
        try await refreshLiveNodes(on: connection)
        logger.debug("registered in the cluster", metadata: ["channels": "\(counts.count)", "clients": "\(clients.count)"])
    }

    /// Flushes what changed during the registration, on its connection: the supervisor hands
    /// that connection out only once the registration has returned.
    private func finishRegistering(on connection: RedisConnection) {
        let flushNow = pending.withLock { pending -> Bool in
            pending.registering = false
            guard !pending.flushScheduled, !pending.channels.isEmpty || !pending.clients.isEmpty else { return false }
            pending.flushScheduled = true
            return true
        }
        if flushNow { flush(on: connection) }
    }

    private func writeStats(on connection: RedisConnection) async throws {
        guard let local else { return }
        let ttlMillis = String(ttl.nanoseconds / 1_000_000)
        let commands: [[String]] = [
            ["SADD", nodesKey, nodeID],
            ["SET", nodeKey(nodeID), Self.json(local.stats), "PX", ttlMillis],
            ["PEXPIRE", channelsKey(nodeID), ttlMillis],
            ["PEXPIRE", clientsKey(nodeID), ttlMillis],
            ["PEXPIRE", clientInfoKey(nodeID), ttlMillis],
        ]
        _ = try await connection.pipeline(commands.map { $0.map { ByteBuffer(string: $0) } })
    }

    /// Reads which nodes are alive (their stats key exists) and forgets the dead.
    private func refreshLiveNodes(on connection: RedisConnection) async throws {
        let members = try await connection.send(["SMEMBERS", nodesKey]).array?.compactMap(\.string) ?? []
        guard !members.isEmpty else {
            liveNodes.withLock { $0 = [] }
            return
        }
        let exists = try await connection.pipeline(members.map { [ByteBuffer(string: "EXISTS"), ByteBuffer(string: nodeKey($0))] })
        var live: [String] = []
        var dead: [String] = []
        for (member, reply) in zip(members, exists) {
            if reply.int == 1 { live.append(member) } else { dead.append(member) }
        }
        if !dead.isEmpty { _ = try await connection.send(["SREM", nodesKey] + dead) }
        liveNodes.withLock { $0 = live.sorted() }
    }

    /// Removes this node's entries on a clean shutdown, so figures drop at once.
    ///
    /// Bounded by ``deregisterTimeout``: a Redis that accepts the connection but never answers
    /// (frozen, or shutting down at the same moment) must not hold the node's exit; the
    /// heartbeat TTL removes the entries anyway.
    private func deregister() async {
        guard
            let connection = try? await topology.connectOnce(on: loop, timeout: Self.deregisterTimeout)
        else { return }
        defer { connection.close() }
        let deadline = loop.scheduleTask(in: Self.deregisterTimeout) { connection.close() }
        defer { deadline.cancel() }
        _ = try? await connection.pipeline(
            [
                ["SREM", nodesKey, nodeID],
                ["DEL", nodeKey(nodeID), channelsKey(nodeID), clientsKey(nodeID), clientInfoKey(nodeID)],
            ].map { $0.map { ByteBuffer(string: $0) } })
    }

    // MARK: HubObserver

    public func channelCountChanged(_ channel: String) {
        schedule { $0.channels.insert(channel) }
    }

    public func clientChanged(_ info: ClientInfo, sequence: UInt64) {
        schedule { $0.clients[info.id] = (sequence, info) }
    }

    public func clientRemoved(id: String, sequence: UInt64) {
        schedule { $0.clients[id] = (sequence, nil) }
    }

    private func schedule(_ change: (inout Pending) -> Void) {
        let start = pending.withLock { pending -> Bool in
            change(&pending)
            guard !pending.flushScheduled else { return false }
            pending.flushScheduled = true
            return true
        }
        if start {
            loop.scheduleTask(in: flushDelay) { self.flush() }
        }
    }

    /// Writes the accumulated changes in one pipeline. If Redis is down they are dropped: the
    /// full re-registration on reconnect restores the truth.
    private func flush(on registering: RedisConnection? = nil) {
        let batch = pending.withLock { pending -> Pending? in
            if pending.registering {
                // finishRegistering() flushes what is pending.
                pending.flushScheduled = false
                return nil
            }
            defer { pending = Pending() }
            return pending
        }
        guard let batch, let local else { return }
        let changed = batch.channels.map { ($0, local.subscriberCount($0)) }
        // Beside each channel's keys, whether or not the registry's own Redis is reachable.
        if !changed.isEmpty { counts?.writeCounts(changed, ttl: ttl) }
        guard let connection = registering ?? supervisor.connection else { return }
        var commands: [[String]] = []
        var setCounts: [String] = []
        var removedChannels: [String] = []
        for (channel, count) in changed {
            if count > 0 { setCounts += [channel, String(count)] } else { removedChannels.append(channel) }
        }
        commands += chunked(setCounts, prefix: ["HSET", channelsKey(nodeID)])
        commands += chunked(removedChannels, prefix: ["HDEL", channelsKey(nodeID)])
        var added: [String] = []
        var infos: [String] = []
        var removed: [String] = []
        for (id, change) in batch.clients {
            if let info = change.info {
                added += [String(change.sequence), id]
                infos += [id, Self.json(info)]
            } else {
                removed.append(id)
            }
        }
        commands += chunked(added, prefix: ["ZADD", clientsKey(nodeID)])
        commands += chunked(infos, prefix: ["HSET", clientInfoKey(nodeID)])
        commands += chunked(removed, prefix: ["ZREM", clientsKey(nodeID)])
        commands += chunked(removed, prefix: ["HDEL", clientInfoKey(nodeID)])
        let ttlMillis = String(ttl.nanoseconds / 1_000_000)
        commands.append(["PEXPIRE", channelsKey(nodeID), ttlMillis])
        commands.append(["PEXPIRE", clientsKey(nodeID), ttlMillis])
        commands.append(["PEXPIRE", clientInfoKey(nodeID), ttlMillis])
        for command in commands {
            _ = connection.sendFuture(command.map { ByteBuffer(string: $0) })
        }
    }

    // MARK: ClusterDirectory

    /// The other live nodes, read fresh from Redis (the figures endpoints are not hot paths).
    private var otherLiveNodes: [String] {
        get async throws {
            try await refreshLiveNodes(on: connection())
            return liveNodes.withLock { $0 }.filter { $0 != nodeID }
        }
    }

    private func connection() throws -> RedisConnection {
        guard let connection = supervisor.connection else { throw RedisConnectionError.notConnected }
        return connection
    }

    /// Sums the channel's count over the other live nodes in one round trip, from the
    /// channel's count hash on its shard (``RedisScripts/countChannel``): exact as of the last
    /// flush of every node, a dead node's entry gone once it expired. Runs on every
    /// cluster-wide `subscribed` and user notification (a REST publish counts beside its
    /// publish script instead).
    public func remoteSubscriberCount(of channel: String) async throws -> Int {
        guard let counts else { return 0 }
        return try await counts.countOthers(of: channel)
    }

    public func remoteChannelCounts() async throws -> [String: Int] {
        let nodes = try await otherLiveNodes
        guard !nodes.isEmpty else { return [:] }
        let replies = try await connection().pipeline(nodes.map { ["HGETALL", channelsKey($0)].map { ByteBuffer(string: $0) } })
        var counts: [String: Int] = [:]
        for reply in replies {
            let items = reply.array ?? []
            var index = 0
            while index + 1 < items.count {
                if let name = items[index].string, let count = items[index + 1].int { counts[name, default: 0] += count }
                index += 2
            }
        }
        return counts
    }

    public func remoteNodes() async throws -> [NodeStats] {
        let nodes = try await otherLiveNodes
        guard !nodes.isEmpty else { return [] }
        let replies = try await connection().pipeline(nodes.map { ["GET", nodeKey($0)].map { ByteBuffer(string: $0) } })
        return replies.compactMap { reply in
            guard case .bulkString(let buffer) = reply else { return nil }
            return try? JSONDecoder().decode(NodeStats.self, from: Data(buffer.readableBytesView))
        }
    }

    public func remoteClients(of nodeID: String, after sequence: UInt64, limit: Int) async throws -> [(UInt64, ClientInfo)] {
        let connection = try connection()
        let reply = try await connection.send([
            "ZRANGEBYSCORE", clientsKey(nodeID), "(\(sequence)", "+inf", "WITHSCORES", "LIMIT", "0", String(limit),
        ])
        let items = reply.array ?? []
        var ids: [String] = []
        var sequences: [UInt64] = []
        var index = 0
        while index + 1 < items.count {
            if let id = items[index].string, let score = items[index + 1].string.flatMap({ Double($0) }) {
                ids.append(id)
                sequences.append(UInt64(score))
            }
            index += 2
        }
        guard !ids.isEmpty else { return [] }
        let infos = try await connection.send(["HMGET", clientInfoKey(nodeID)] + ids).array ?? []
        return zip(sequences, infos).compactMap { sequence, reply in
            guard case .bulkString(let buffer) = reply,
                let info = try? JSONDecoder().decode(ClientInfo.self, from: Data(buffer.readableBytesView))
            else { return nil }
            return (sequence, info)
        }
    }

    public func remoteClientCounts() async throws -> [String: Int] {
        let nodes = try await otherLiveNodes
        guard !nodes.isEmpty else { return [:] }
        let replies = try await connection().pipeline(nodes.map { ["ZCARD", clientsKey($0)].map { ByteBuffer(string: $0) } })
        return Dictionary(uniqueKeysWithValues: zip(nodes, replies.map { $0.int ?? 0 }))
    }

    // MARK: Helpers

    /// Splits a long argument list into commands of at most 1000 arguments each.
    private func chunked(_ arguments: [String], prefix: [String]) -> [[String]] {
        guard !arguments.isEmpty else { return [] }
        let step = 1000
        return stride(from: 0, to: arguments.count, by: step).map { start in
            prefix + arguments[start..<min(start + step, arguments.count)]
        }
    }

    private static func json(_ value: some Encodable) -> String {
        (try? String(decoding: JSONEncoder().encode(value), as: UTF8.self)) ?? "{}"
    }
}


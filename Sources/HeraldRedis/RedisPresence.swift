import Foundation
import HeraldCore
import HeraldProtocol
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// Presence in Redis: each node writes its own members of each channel, and any node reads a
/// channel's members of the whole cluster (``RedisPresenceScripts`` has the keys).
///
/// Changes are collected as the Hub reports them and written within ``flushDelay``, one
/// script call per channel and batch; a read first writes what is pending, on the same
/// connection, so a node's answers always include its own changes. Every ``interval`` the
/// node re-adds all its members (their expiry, and the keys' TTL), and again after every
/// reconnection, which restores whatever Redis lost. Memory here is one entry per local
/// membership, bounded by the node's connections and their subscription limit.
public final class RedisPresence: PresenceStore, MembershipObserver, Service {
    private struct State {
        var local: [String: [String: PresenceMember]] = [:]
        /// Channel → client id → the member to write, or `nil` to remove.
        var pending: [String: [String: PresenceMember?]] = [:]
        var flushScheduled = false
    }

    public let interval: TimeAmount
    public var ttl: TimeAmount { .nanoseconds(interval.nanoseconds * 3) }
    public let flushDelay = TimeAmount.milliseconds(20)
    /// Most operations in one script call (each is 2 or 3 arguments).
    static let batchSize = 300
    private let topology: RedisTopology
    private let redisKeys: RedisKeys
    private let supervisor: RedisSupervisor
    private let metrics: NodeMetrics
    /// Round trips to this store's Redis.
    private let timers: NodeMetrics.RedisTimers
    private let logger: Logger
    private let loop: any EventLoop
    private let state = Mutex(State())

    public init(
        topology: RedisTopology, interval: TimeAmount
    ) {
        self.topology = topology
        let (keys, metrics, logger) = (topology.keys, topology.metrics, topology.logger)
        self.redisKeys = keys
        self.interval = interval
        self.metrics = metrics
        self.timers = metrics.redisTimers(shard: topology.locator.name)
        self.logger = logger
        self.loop = topology.nextLoop()
        self.supervisor = topology.link("presence")
    }

    private func keys(_ channel: String) -> [ByteBuffer] {
        redisKeys.presence(channel)
    }

    // MARK: MembershipObserver

    public func joined(_ channel: String, _ member: PresenceMember) {
        change { state in
            state.local[channel, default: [:]][member.clientId] = member
            state.pending[channel, default: [:]][member.clientId] = .some(member)
        }
    }

    public func left(_ channel: String, _ member: PresenceMember) {
        change { state in
            state.local[channel]?[member.clientId] = nil
            if state.local[channel]?.isEmpty == true { state.local[channel] = nil }
            state.pending[channel, default: [:]][member.clientId] = .some(nil)
        }
    }

    public func updated(_ member: PresenceMember, channels: [String]) {
        change { state in
            for channel in channels where state.local[channel]?[member.clientId] != nil {
                state.local[channel]?[member.clientId] = member
                state.pending[channel, default: [:]][member.clientId] = .some(member)
            }
        }
    }

    // MARK: Redis Cluster: channels that change hands

    /// Channels with members on this node, kept here.
    var channels: [String] { state.withLock { Array($0.local.keys) } }

    /// Gives up `channel` (another master serves it now): its local members, to be written
    /// there. Nothing is removed from this master: the slot's keys moved with it, or the
    /// master is gone.
    func handOver(_ channel: String) -> [String: PresenceMember] {
        state.withLock { state in
            state.pending[channel] = nil
            return state.local.removeValue(forKey: channel) ?? [:]
        }
    }

    /// Takes `channel`'s local members over from another master and writes them here.
    func adopt(_ channel: String, _ members: [String: PresenceMember]) {
        guard !members.isEmpty else { return }
        change { state in
            for (id, member) in members {
                state.local[channel, default: [:]][id] = member
                state.pending[channel, default: [:]][id] = .some(member)
            }
        }
    }

    private func change(_ body: (inout State) -> Void) {
        let schedule = state.withLock { state -> Bool in
            body(&state)
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { loop.scheduleTask(in: flushDelay) { self.flush() } }
    }

    // MARK: Writing

    /// Writes what is pending, in call order (the commands are queued on the connection under
    /// the lock). Dropped if Redis is down: the full refresh after reconnecting restores it.
    @discardableResult
    private func flush() -> [EventLoopFuture<RESPValue>] {
        state.withLock { state in
            state.flushScheduled = false
            let pending = state.pending
            state.pending = [:]
            guard let connection = supervisor.connection else { return [] }
            return pending.flatMap { channel, changes in
                write(channel, changes.map { ($0.key, $0.value) }, on: connection)
            }
        }
    }

    /// Re-adds every local member: their expiry and the keys' TTL.
    private func refreshAll(on connection: RedisConnection) -> [EventLoopFuture<RESPValue>] {
        state.withLock { state in
            state.local.flatMap { channel, members in
                write(channel, members.map { ($0.key, Optional($0.value)) }, on: connection)
            }
        }
    }

    private func write(_ channel: String, _ changes: [(String, PresenceMember?)], on connection: RedisConnection) -> [EventLoopFuture<RESPValue>] {
        let ttlMillis = ByteBuffer(string: String(ttl.nanoseconds / 1_000_000))
        return changes.chunks(of: Self.batchSize).map { batch in
            var arguments = [ByteBuffer(string: "EVAL"), ByteBuffer(string: RedisPresenceScripts.update), ByteBuffer(string: "3")]
            arguments += keys(channel)
            arguments.append(ttlMillis)
            for (id, member) in batch {
                if let member {
                    arguments += [ByteBuffer(string: "+"), ByteBuffer(string: id), ByteBuffer(bytes: Self.encode(member))]
                } else {
                    arguments += [ByteBuffer(string: "-"), ByteBuffer(string: id)]
                }
            }
            return connection.sendFuture(arguments)
        }
    }

    private static let encoder = JSONEncoder()

    static func encode(_ member: PresenceMember) -> [UInt8] {
        Array((try? encoder.encode(member)) ?? Data("{}".utf8))
    }

    // MARK: PresenceStore

    public func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage {
        guard let connection = supervisor.connection else { throw .unavailable("Redis is unreachable") }
        let reply: RESPValue
        do {
            reply = try await timers.time(.presence) {
                // Our own pending changes first, on the same connection: the read sees them.
                let written = flush()
                var arguments = [ByteBuffer(string: "EVAL"), ByteBuffer(string: RedisPresenceScripts.read), ByteBuffer(string: "3")]
                arguments += keys(channel)
                arguments += [ByteBuffer(string: cursor ?? ""), ByteBuffer(string: String(limit))]
                let read = connection.sendFuture(arguments)
                for write in written { _ = try? await write.get() }
                return try await read.get()
            }
        } catch {
            throw .unavailable("reading presence from Redis failed: \(error)")
        }
        guard let items = reply.array, let total = items.first?.int else { throw .unavailable("unexpected reply to the presence script") }
        let decoder = JSONDecoder()
        let members = items.dropFirst().compactMap { item -> PresenceMember? in
            guard case .bulkString(let buffer) = item else { return nil }
            return try? decoder.decode(PresenceMember.self, from: Data(buffer.readableBytesView))
        }
        return PresencePage(members: members, total: total, nextCursor: items.count - 1 == limit ? members.last?.clientId : nil)
    }

    // MARK: Service

    /// How long a clean shutdown waits for Redis to take this node's members out.
    static let goodbyeTimeout = TimeAmount.seconds(1)

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await self.supervisor.run { connection in
                        for write in self.refreshAll(on: connection) { _ = try await write.get() }
                    }
                }
                group.addTask { await self.heartbeat() }
            }
        }
        await sayGoodbye()
    }

    private func heartbeat() async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
            guard !Task.isCancelled, let connection = supervisor.connection else { continue }
            for write in refreshAll(on: connection) {
                if (try? await write.get()) == nil {
                    logger.debug("presence refresh failed")
                    break
                }
            }
        }
    }

    /// The node's clients are gone by now (the drain runs first): take their entries out at
    /// once rather than leaving them to expire. Bounded: a Redis that does not answer must not
    /// hold the node's exit.
    private func sayGoodbye() async {
        let removals = state.withLock { state -> [String: [String: PresenceMember?]] in
            var all = state.pending
            for (channel, members) in state.local {
                for id in members.keys { all[channel, default: [:]][id] = .some(nil) }
            }
            state.local = [:]
            state.pending = [:]
            return all
        }
        guard !removals.isEmpty,
            let connection = try? await topology.connectOnce(on: loop, timeout: Self.goodbyeTimeout)
        else { return }
        defer { connection.close() }
        let deadline = loop.scheduleTask(in: Self.goodbyeTimeout) { connection.close() }
        defer { deadline.cancel() }
        let writes = removals.flatMap { channel, changes in
            write(channel, changes.map { ($0.key, $0.value) }.filter { $0.1 == nil }, on: connection)
        }
        for write in writes { _ = try? await write.get() }
    }
}

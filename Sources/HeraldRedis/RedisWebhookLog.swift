import HeraldCore
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The cluster's webhook log in Redis (``WebhookLog``'s contract).
///
/// - **Occupancy**: per key a set of the nodes holding it, per node the set of keys it holds;
///   claims and releases run as scripts (``RedisWebhookScripts``) that queue an event only
///   when a set goes from empty to one holder or back. Each node refreshes a liveness key
///   (`alive:<node>`, TTL three heartbeats); every node sweeps, at each heartbeat, the holds of
///   nodes whose key expired — a SIGKILLed node's channels and users become vacated and
///   offline once it has been silent for three heartbeats. Sweeping is idempotent, so it does
///   not matter how many nodes do it.
/// - **Events**: a stream, bounded (`MAXLEN ~`), read through a consumer group. Exactly one node
///   sends at a time: the holder of a lease (`sender`, TTL three heartbeats, renewed every
///   third of one). A node that takes the lease over first claims (`XAUTOCLAIM`) the entries a
///   previous sender read and did not remove, so they go out before newer ones, in stream
///   order. Removed entries are acknowledged and deleted.
///
/// Two links: one for claims, sweeps and the lease, one the sender blocks on while it waits
/// for events.
public final class RedisWebhookLog: WebhookLog, Service {
    public let nodeID: String
    private let control: RedisSupervisor
    private let reader: RedisSupervisor
    private let scripts = ScriptCache()
    private let topology: RedisTopology
    private let logger: Logger
    private let interval: TimeAmount
    /// How long this node's holds outlive a clean shutdown: long enough for its clients to
    /// reconnect elsewhere without a vacated/occupied pair.
    private let shutdownLinger: TimeAmount
    private let base: String
    private let eventsKey: String
    private let nodesKey: String
    private let senderKey: String
    private static let group = "herald"

    private struct State {
        /// Bumped on every (re)connection of the control link: Redis may have lost the holds.
        var generation = 0
        /// The generation last resynced; a mismatch makes ``apply(_:)`` ask for a resync.
        var synced = -1
        var isSender = false
        /// The lease was just taken: the previous sender's unremoved entries are claimed first.
        var mustTakeOver = false
    }

    private let state = Mutex(State())

    public init(nodeID: String, topology: RedisTopology, interval: TimeAmount, shutdownLinger: TimeAmount) {
        self.nodeID = nodeID
        self.logger = topology.logger
        self.topology = topology
        self.interval = interval
        self.shutdownLinger = shutdownLinger
        self.control = topology.link("webhooks")
        self.reader = topology.link("webhook-sender")
        let base = topology.keys.webhooks
        self.base = base
        self.eventsKey = base + "events"
        self.nodesKey = base + "nodes"
        self.senderKey = base + "sender"
    }

    private var ttl: TimeAmount { .nanoseconds(interval.nanoseconds * 3) }
    private var ttlMillis: String { String(max(ttl.nanoseconds / 1_000_000, 1)) }

    private func shared() -> [ByteBuffer] {
        [base, nodeID, ttlMillis, String(Self.maxQueued)].map { ByteBuffer(string: $0) }
    }

    private func connection(_ link: RedisSupervisor) throws -> RedisConnection {
        guard let connection = link.connection else { throw RedisConnectionError.notConnected }
        return connection
    }

    private func run(_ script: LoadedScript, keys: [String], arguments: [ByteBuffer], on link: RedisSupervisor) async throws -> RESPValue {
        try await script.run(keys.map { ByteBuffer(string: $0) }, arguments, on: connection(link), sha: scripts).get()
    }

    // MARK: WebhookLog

    public func apply(_ changes: [OccupancyChange]) async throws {
        let current = state.withLock { $0.synced == $0.generation }
        guard current else { throw WebhookLogError.resyncNeeded }
        guard !changes.isEmpty else { return }
        let arguments = changes.map { ByteBuffer(string: ($0.held ? "+" : "-") + $0.key.encoded) }
        _ = try await run(RedisWebhookScripts.apply, keys: [eventsKey, nodesKey], arguments: shared() + arguments, on: control)
    }

    public func resync(_ held: Set<OccupancyKey>) async throws {
        let generation = state.withLock { $0.generation }
        let arguments = held.sorted().map { ByteBuffer(string: $0.encoded) }
        _ = try await run(RedisWebhookScripts.resync, keys: [eventsKey, nodesKey], arguments: shared() + arguments, on: control)
        state.withLock { $0.synced = generation }
    }

    public func next(max: Int, wait: TimeAmount) async throws -> [WebhookEvent] {
        let (isSender, takeOver) = state.withLock { state in
            defer { state.mustTakeOver = false }
            return (state.isSender, state.mustTakeOver)
        }
        guard isSender, let connection = reader.connection else {
            try? await Task.sleep(nanoseconds: UInt64(Swift.max(wait.nanoseconds, 0)))
            return []
        }
        do {
            if takeOver { try await claimAbandoned(on: connection) }
            // This node's own unremoved entries first (a failed send), then new ones.
            var events = try await read(from: "0", count: max, block: nil, on: connection)
            if events.count < max {
                let block = events.isEmpty ? min(wait, .seconds(1)) : nil
                events += try await read(from: ">", count: max - events.count, block: block, on: connection)
            }
            return events
        } catch RedisConnectionError.server(let message) where message.hasPrefix("NOGROUP") {
            // Redis lost the stream (a restart without persistence): start it again.
            try await createGroup(on: connection)
            return []
        }
    }

    /// `XREADGROUP` from `id` (`0`: this consumer's pending entries; `>`: new ones).
    private func read(from id: String, count: Int, block: TimeAmount?, on connection: RedisConnection) async throws -> [WebhookEvent] {
        var command = ["XREADGROUP", "GROUP", Self.group, nodeID, "COUNT", String(count)]
        if let block { command += ["BLOCK", String(Swift.max(block.nanoseconds / 1_000_000, 1))] }
        command += ["STREAMS", eventsKey, id]
        let reply = try await connection.send(command)
        let entries = reply.array?.first?.array?.dropFirst().first?.array ?? []
        var events: [WebhookEvent] = []
        var gone: [String] = []
        for entry in entries {
            guard let parts = entry.array, let entryID = parts.first?.string else { continue }
            guard let fields = parts.dropFirst().first?.array, let event = Self.event(entryID, fields) else {
                // Trimmed away while pending (the stream's bound): nothing left to send.
                gone.append(entryID)
                continue
            }
            events.append(event)
        }
        if !gone.isEmpty { try await remove(gone) }
        return events
    }

    private static func event(_ id: String, _ fields: [RESPValue]) -> WebhookEvent? {
        var values: [String: String] = [:]
        var index = 0
        while index + 1 < fields.count {
            if let name = fields[index].string, let value = fields[index + 1].string { values[name] = value }
            index += 2
        }
        guard let name = values["name"].flatMap(WebhookEvent.Name.init(rawValue:)) else { return nil }
        return WebhookEvent(id: id, name: name, channel: values["channel"], user: values["user"])
    }

    /// Moves every entry other consumers read and did not remove to this one.
    private func claimAbandoned(on connection: RedisConnection) async throws {
        var cursor = "0-0"
        var claimed = 0
        repeat {
            let reply = try await connection.send(["XAUTOCLAIM", eventsKey, Self.group, nodeID, "0", cursor, "COUNT", "1000"])
            let parts = reply.array ?? []
            cursor = parts.first?.string ?? "0-0"
            claimed += parts.dropFirst().first?.array?.count ?? 0
        } while cursor != "0-0"
        if claimed > 0 { logger.notice("took over webhook events a previous sender had not sent", metadata: ["events": "\(claimed)"]) }
    }

    public func remove(_ ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        let connection = try connection(reader)
        _ = try await connection.pipeline([
            (["XACK", eventsKey, Self.group] + ids).map { ByteBuffer(string: $0) },
            (["XDEL", eventsKey] + ids).map { ByteBuffer(string: $0) },
        ])
    }

    public func depth() async throws -> (count: Int, oldestMillis: Int64?) {
        let replies = try await connection(control).pipeline([
            ["XLEN", eventsKey].map { ByteBuffer(string: $0) },
            ["XRANGE", eventsKey, "-", "+", "COUNT", "1"].map { ByteBuffer(string: $0) },
        ])
        let oldest = replies[1].array?.first?.array?.first?.string
        return (replies[0].int ?? 0, oldest.map(WebhookEvent.queuedAtMillis(ofID:)))
    }

    // MARK: Service

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await self.control.run { connection in
                        self.state.withLock { $0.generation += 1 }
                        try await self.createGroup(on: connection)
                    }
                }
                group.addTask { await self.reader.run { connection in try await self.createGroup(on: connection) } }
                group.addTask { await self.heartbeat() }
            }
        }
        await linger()
    }

    private func createGroup(on connection: RedisConnection) async throws {
        do {
            _ = try await connection.send(["XGROUP", "CREATE", eventsKey, Self.group, "0", "MKSTREAM"])
        } catch RedisConnectionError.server(let message) where message.hasPrefix("BUSYGROUP") {
            // Another node (or an earlier run) made it.
        }
    }

    /// Every third of a heartbeat: keep or take the sender lease; every heartbeat: refresh
    /// this node's liveness and sweep the dead's holds.
    private func heartbeat() async {
        let tick = TimeAmount.nanoseconds(Swift.max(interval.nanoseconds / 3, 1_000_000))
        var ticks = 0
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(tick.nanoseconds))
            guard !Task.isCancelled else { break }
            do {
                try await keepLease()
                ticks += 1
                if ticks % 3 == 0 {
                    _ = try await run(RedisWebhookScripts.apply, keys: [eventsKey, nodesKey], arguments: shared(), on: control)
                    let swept = try await run(RedisWebhookScripts.sweep, keys: [eventsKey, nodesKey], arguments: shared(), on: control)
                    if let swept = swept.int, swept > 0 {
                        logger.info("released the webhook holds of nodes that stopped", metadata: ["nodes": "\(swept)"])
                    }
                }
            } catch {
                state.withLock { $0.isSender = false }
                logger.debug("webhook heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func keepLease() async throws {
        let reply = try await run(RedisWebhookScripts.lease, keys: [senderKey], arguments: [nodeID, ttlMillis].map { ByteBuffer(string: $0) }, on: control)
        let result = reply.int ?? 0
        let isSender = result > 0
        let wasSender = state.withLock { state in
            let was = state.isSender
            state.isSender = isSender
            if result == 2 { state.mustTakeOver = true }
            return was
        }
        if result == 2 || isSender != wasSender {
            logger.info(isSender ? "this node now sends the cluster's webhooks" : "another node sends the webhooks now")
        }
    }

    /// On a clean shutdown: give the lease up (another node sends at once) and let this node's
    /// holds expire after ``shutdownLinger`` instead of releasing them now: its clients are
    /// reconnecting elsewhere, and a release now would report them vacated, then occupied.
    private func linger() async {
        guard let connection = try? await topology.connectOnce(on: topology.nextLoop(), timeout: .seconds(1)) else { return }
        defer { connection.close() }
        _ = try? await RedisWebhookScripts.resign.run(
            [ByteBuffer(string: senderKey)], [ByteBuffer(string: nodeID)], on: connection, sha: scripts
        ).get()
        let linger = String(Swift.max(shutdownLinger.nanoseconds / 1_000_000, 1))
        _ = try? await connection.send(["PEXPIRE", base + "alive:" + nodeID, linger])
    }
}

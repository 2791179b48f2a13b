import HeraldSupport
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// Follows a Redis Cluster's slot map (`redis+cluster://h1:7000,h2:7001`): the one place that
/// knows which master serves which slot, for the broker, presence and the registry alike.
///
/// - Asks `CLUSTER SLOTS` of a known master, or else of the seed nodes in order, at start, every
///   ``interval``, and at once when a caller saw the map go stale (``refreshSoon()``: a
///   `MOVED`, an `ASK`, a sharded subscription the server dropped, a link that broke).
/// - Tells its observers the new map when it changed (a failover, a slot migration), and
///   closes every connection it admitted (``locator(forSlot:)``) to a node that no longer
///   serves that slot: such links reconnect to the new owner at once.
public final class ClusterMonitor: RedisTopologyMonitor {
    private struct State {
        var map: ClusterSlotMap?
        var version = 0
        var observers: [@Sendable (ClusterSlotMap) -> Void] = []
        var admitted: [ObjectIdentifier: (connection: RedisConnection, slot: Int, node: ClusterSlotMap.Node)] = [:]
        var confirmed: NIODeadline?
    }

    public let seeds: [RedisURL]
    /// Credentials for every node (the seeds' own).
    private let template: RedisURL
    public let interval: TimeAmount
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onChange: @Sendable () -> Void
    private let state = Mutex(State())
    private let requests: AsyncStream<Void>
    private let requester: AsyncStream<Void>.Continuation
    static let askTimeout = TimeAmount.seconds(1)

    /// - Parameter onChange: a map change was followed (the failovers metric).
    public init(
        seeds: [RedisURL], interval: TimeAmount = .seconds(1), group: any EventLoopGroup, logger: Logger,
        onChange: @escaping @Sendable () -> Void = {}
    ) {
        precondition(!seeds.isEmpty, "a Redis Cluster needs at least one seed node")
        self.seeds = seeds
        self.template = seeds[0]
        self.interval = interval
        self.group = group
        self.logger = logger
        self.onChange = onChange
        (requests, requester) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The map as last read; `nil` before the first answer.
    public var map: ClusterSlotMap? { state.withLock { $0.map } }

    /// Calls `observer` with every new map (and with the current one, if there is one).
    public func observe(_ observer: @escaping @Sendable (ClusterSlotMap) -> Void) {
        let current = state.withLock { state in
            state.observers.append(observer)
            return state.map
        }
        if let current { observer(current) }
    }

    /// The URL of `node`, with the deployment's credentials.
    public func url(of node: ClusterSlotMap.Node) -> RedisURL {
        var url = template
        url.host = node.host
        url.port = node.port
        url.database = 0
        return url
    }

    /// Asks for a refresh without waiting for it; many requests before it runs make one.
    public func refreshSoon() {
        requester.yield()
    }

    /// Reads the map now: from a master it knows, else from the seeds, the first answer wins.
    @discardableResult
    public func refresh() async throws -> ClusterSlotMap {
        let known = (map?.masters ?? []).map(url(of:))
        var lastError: (any Error)?
        for node in known + seeds {
            do {
                let connection = try await RedisConnection.connect(to: node, group: group, connectTimeout: Self.askTimeout)
                defer { connection.close() }
                let timer = connection.eventLoop.scheduleTask(in: Self.askTimeout) { connection.close() }
                defer { timer.cancel() }
                let reply = try await connection.send(["CLUSTER", "SLOTS"])
                guard let map = ClusterSlotMap.parse(clusterSlots: reply, askedHost: node.host), !map.masters.isEmpty
                else { throw ClusterError.noSlots(node: "\(node.host):\(node.port)") }
                adopt(map, from: node)
                return map
            } catch {
                lastError = error
            }
        }
        throw lastError ?? ClusterError.noSlots(node: "")
    }

    private func adopt(_ map: ClusterSlotMap, from node: RedisURL) {
        let (changed, first, observers, stale) = state.withLock {
            state -> (Bool, Bool, [@Sendable (ClusterSlotMap) -> Void], [RedisConnection]) in
            state.confirmed = .now()
            guard state.map != map else { return (false, false, [], []) }
            let first = state.map == nil
            state.map = map
            state.version += 1
            let stale = state.admitted.values.filter { map.owner(of: $0.slot) != $0.node }.map(\.connection)
            return (true, first, state.observers, stale)
        }
        guard changed else { return }
        if !first { onChange() }
        logger.log(level: first ? .info : .notice, "Redis Cluster slot map", metadata: [
            "masters": "\(map.masters.map(\.description).joined(separator: ","))", "uncovered": "\(map.uncovered)",
            "from": "\(node.host):\(node.port)",
        ])
        for observer in observers { observer(map) }
        for connection in stale { connection.close() }
    }

    public var topologyAge: TimeAmount? {
        state.withLock { state in state.confirmed.map { .now() - $0 } }
    }

    /// Changes whenever the map does: a link waiting to reconnect goes at once.
    var version: Int { state.withLock { $0.version } }

    /// A locator for the master of `slot` (the registry's keys).
    public func locator(forSlot slot: Int) -> ClusterSlotLocator {
        ClusterSlotLocator(monitor: self, slot: slot)
    }

    /// The master that serves `slot`, asking the cluster if the map is not known yet.
    func owner(of slot: Int) async throws -> RedisURL {
        var map = self.map
        if map == nil { map = try await refresh() }
        guard let map else { throw ClusterError.uncovered(slot: slot) }
        guard let node = map.owner(of: slot) else { throw ClusterError.uncovered(slot: slot) }
        return url(of: node)
    }

    /// Remembers `connection` as one to `slot`'s owner, to be closed when the owner changes.
    func admit(_ connection: RedisConnection, slot: Int, at url: RedisURL) throws {
        let node = ClusterSlotMap.Node(host: url.host, port: url.port)
        let id = ObjectIdentifier(connection)
        let current = state.withLock { state -> Bool in
            guard state.map?.owner(of: slot) == node else { return false }
            state.admitted[id] = (connection, slot, node)
            return true
        }
        guard current else { throw ClusterError.notOwner(node: node.description, slot: slot) }
        connection.closeFuture.whenComplete { _ in
            _ = self.state.withLock { $0.admitted.removeValue(forKey: id) }
        }
    }

    // MARK: Service

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // Wakes the loop below every interval, as if asked.
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(nanoseconds: UInt64(self.interval.nanoseconds))
                        self.requester.yield()
                    }
                }
                group.addTask {
                    await self.refreshLogged()
                    for await _ in self.requests {
                        await self.refreshLogged()
                    }
                }
            }
        }
    }

    private func refreshLogged() async {
        do {
            try await refresh()
        } catch {
            logger.warning("no Redis Cluster node answered CLUSTER SLOTS", metadata: ["error": "\(error)"])
        }
    }
}

/// The master of one slot, followed through failovers and migrations (``ClusterMonitor``).
public struct ClusterSlotLocator: RedisLocator {
    let monitor: ClusterMonitor
    let slot: Int

    public func locate() async throws -> RedisURL { try await monitor.owner(of: slot) }

    public func admit(_ connection: RedisConnection, at url: RedisURL) async throws {
        try monitor.admit(connection, slot: slot, at: url)
    }

    public var generation: Int { monitor.version }
    public var name: String { "cluster/slot-\(slot)" }
    public var description: String {
        monitor.map?.owner(of: slot)?.description ?? "cluster slot \(slot) (owner unknown)"
    }
}

public enum ClusterError: Error, CustomStringConvertible {
    case noSlots(node: String)
    case uncovered(slot: Int)
    case notOwner(node: String, slot: Int)

    public var description: String {
        switch self {
        case .noSlots(let node): "Redis at \(node) answered no Redis Cluster slots"
        case .uncovered(let slot): "no Redis Cluster master serves slot \(slot)"
        case .notOwner(let node, let slot): "Redis at \(node) no longer serves slot \(slot)"
        }
    }
}

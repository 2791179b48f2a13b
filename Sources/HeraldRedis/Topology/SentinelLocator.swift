import HeraldSupport
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The master of a Redis Sentinel deployment (`redis+sentinel://s1:26379,s2:26380/mymaster`),
/// followed through failovers.
///
/// - Asks the sentinels, in order, `SENTINEL get-master-addr-by-name` (the first that answers
///   wins); listens on one sentinel for `+switch-master`; and asks again every ``interval``,
///   since a pub/sub event is lost with the connection that carried it.
/// - Every link's fresh connection is checked with `ROLE` before use (``admit(_:at:)``): a
///   server that is not a master is refused and the sentinels are asked again, so a node never
///   writes to a demoted master (the `READONLY` loop).
/// - When the master changes, every admitted connection to the old address is closed and
///   ``generation`` moves on: the links reconnect to the new master at once, not after their
///   backoff; until then publishes fail with `unavailable` (a 503 the caller may retry with its
///   `Idempotency-Key`).
public final class SentinelLocator: RedisLocator, RedisTopologyMonitor {
    private struct State {
        var master: RedisURL?
        var generation = 0
        /// Connections admitted to the current master, closed when it changes.
        var admitted: [ObjectIdentifier: (connection: RedisConnection, url: RedisURL)] = [:]
        /// When a sentinel last named the master.
        var confirmed: NIODeadline?
    }

    public let sentinels: [RedisURL]
    public let masterName: String
    /// Credentials and database for the master (the sentinels are asked without).
    private let template: RedisURL
    public let interval: TimeAmount
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onFailover: @Sendable () -> Void
    private let state = Mutex(State())
    static let askTimeout = TimeAmount.seconds(1)

    public init(
        sentinels: [RedisURL], masterName: String, template: RedisURL, interval: TimeAmount = .seconds(1),
        group: any EventLoopGroup, logger: Logger, onFailover: @escaping @Sendable () -> Void = {}
    ) {
        self.onFailover = onFailover
        self.sentinels = sentinels
        self.masterName = masterName
        self.template = template
        self.interval = interval
        self.group = group
        self.logger = logger
    }

    public var generation: Int { state.withLock { $0.generation } }
    public var name: String { "sentinel/\(masterName)" }

    /// `host:port` of the master as last known, for health and errors.
    public var description: String {
        let master = state.withLock { $0.master }
        return master.map { "\($0.host):\($0.port)" } ?? "the master '\(masterName)' (no sentinel answered yet)"
    }

    public func locate() async throws -> RedisURL {
        if let master = state.withLock({ $0.master }) { return master }
        return try await ask()
    }

    public func admit(_ connection: RedisConnection, at url: RedisURL) async throws {
        let role = try await connection.send(["ROLE"]).array?.first?.string
        guard role == "master" else {
            // A failover the sentinels have not told us of yet, or a demoted master: forget
            // it, so the next attempt asks again.
            state.withLock { state in
                if state.master == url {
                    state.master = nil
                    state.generation += 1
                }
            }
            throw SentinelError.notMaster(url: "\(url.host):\(url.port)", role: role ?? "unknown")
        }
        let id = ObjectIdentifier(connection)
        let current = state.withLock { state -> Bool in
            guard state.master == nil || state.master == url else { return false }
            state.admitted[id] = (connection, url)
            return true
        }
        guard current else { throw SentinelError.notMaster(url: "\(url.host):\(url.port)", role: "replaced") }
        connection.closeFuture.whenComplete { _ in
            _ = self.state.withLock { $0.admitted.removeValue(forKey: id) }
        }
    }

    public var topologyAge: TimeAmount? {
        state.withLock { state in state.confirmed.map { .now() - $0 } }
    }

    /// Asks the sentinels in order; the first answer is the master.
    @discardableResult
    func ask() async throws -> RedisURL {
        var lastError: (any Error)?
        for sentinel in sentinels {
            do {
                let connection = try await RedisConnection.connect(to: sentinel, group: group, connectTimeout: Self.askTimeout)
                defer { connection.close() }
                let timer = connection.eventLoop.scheduleTask(in: Self.askTimeout) { connection.close() }
                defer { timer.cancel() }
                let reply = try await connection.send(["SENTINEL", "get-master-addr-by-name", masterName])
                guard let fields = reply.array, fields.count == 2, let host = fields[0].string,
                    let port = fields[1].string.flatMap({ Int($0) })
                else { throw SentinelError.unknownMaster(masterName) }
                let master = masterURL(host: host, port: port)
                state.withLock { $0.confirmed = .now() }
                follow(master, reason: "asked \(sentinel.host):\(sentinel.port)")
                return master
            } catch {
                lastError = error
            }
        }
        throw lastError ?? SentinelError.unknownMaster(masterName)
    }

    private func masterURL(host: String, port: Int) -> RedisURL {
        var url = template
        url.host = host
        url.port = port
        return url
    }

    /// Takes `master` as the master; if it changed, closes every connection to the old one.
    private func follow(_ master: RedisURL, reason: String) {
        let (changed, stale) = state.withLock { state -> (Bool, [RedisConnection]) in
            guard state.master != master else { return (false, []) }
            let previous = state.master
            state.master = master
            state.generation += 1
            let stale = state.admitted.values.filter { $0.url != master }.map(\.connection)
            return (previous != nil, stale)
        }
        if changed {
            onFailover()
            logger.notice("following the new Redis master", metadata: [
                "master": "\(master.host):\(master.port)", "name": "\(masterName)", "reason": "\(reason)",
            ])
        }
        for connection in stale { connection.close() }
    }

    // MARK: Service

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.askPeriodically() }
                group.addTask { await self.listenForSwitches() }
            }
        }
    }

    private func askPeriodically() async {
        while !Task.isCancelled {
            do {
                try await ask()
            } catch {
                logger.warning("no sentinel named the Redis master", metadata: ["name": "\(masterName)", "error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
        }
    }

    /// Subscribes to `+switch-master` on one sentinel after the other, for as long as it runs.
    private func listenForSwitches() async {
        var backoff = Backoff(base: .milliseconds(100), cap: .seconds(2))
        var next = 0
        while !Task.isCancelled {
            let sentinel = sentinels[next % sentinels.count]
            next += 1
            do {
                let name = masterName
                let connection = try await RedisConnection.connect(
                    to: sentinel, group: group, connectTimeout: Self.askTimeout,
                    onMessage: { [weak self] _, payload in
                        // "<name> <old ip> <old port> <new ip> <new port>"
                        let fields = String(buffer: payload).split(separator: " ")
                        guard let self, fields.count == 5, fields[0] == name, let port = Int(fields[4]) else { return }
                        self.follow(self.masterURL(host: String(fields[3]), port: port), reason: "+switch-master")
                    })
                try await withTaskCancellationHandler {
                    try await connection.pubsub("SUBSCRIBE", [ByteBuffer(string: "+switch-master")]).get()
                    backoff.reset()
                    try? await connection.closeFuture.get()
                } onCancel: {
                    connection.close()
                }
            } catch {
                logger.debug("cannot listen to a sentinel", metadata: ["sentinel": "\(sentinel.host):\(sentinel.port)", "error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next())
        }
    }
}

public enum SentinelError: Error, CustomStringConvertible {
    case unknownMaster(String)
    case notMaster(url: String, role: String)

    public var description: String {
        switch self {
        case .unknownMaster(let name): "no sentinel knows a master named '\(name)'"
        case .notMaster(let url, let role): "Redis at \(url) is not the master (\(role))"
        }
    }
}

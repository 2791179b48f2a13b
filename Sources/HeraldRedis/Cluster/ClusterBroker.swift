import HeraldCore
import HeraldProtocol
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The broker over a Redis Cluster: one ``RedisBroker`` per master (``ClusterMembers``), each
/// channel served by the master that owns its slot — its publish script, stream, meta,
/// idempotency keys and sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`) all there.
///
/// - **Redirections.** A `MOVED`, `ASK`, `TRYAGAIN` or `CLUSTERDOWN` reply means nothing ran:
///   the map is refreshed and the call retried at the slot's owner, with a short backoff,
///   for at most ``retryFor``; only then is it refused (`unavailable`, a 503). A master that
///   cannot be reached is refused at once, as with one Redis: the write may have happened.
/// - **Channels that change hands** (a failover, a slot migration — Redis drops the sharded
///   subscription with a `sunsubscribe`): the old master's broker gives the channel up and
///   says the last position it delivered; the new one subscribes and, once subscribed, reads
///   what was published after that position from the stream — nothing missed, nothing twice.
/// - **Counting.** The nodes' subscriber counts of a channel live in its slot too, so
///   `delivered` is counted in the publish's own round trip, at the channel's master.
public final class ClusterBroker: Broker, SubscriberCountStore {
    private struct State {
        /// Channels with local subscribers, and the master each is subscribed at (`nil`:
        /// no master serves its slot now).
        var wanted: [String: ClusterSlotMap.Node?] = [:]
        var sink: (any PublicationSink)?
    }

    private let members: ClusterMembers<RedisBroker>
    private let state = Mutex(State())
    /// How long a redirected call is retried before it is refused: inside the 5 s in which an
    /// unreachable slot's publishes must be answered.
    public static let retryFor = TimeAmount.seconds(3)

    public init(
        topology: RedisTopology, policy: HistoryPolicy = HistoryPolicy(), replication: ReplicationPolicy = ReplicationPolicy(),
        counting: RedisSubscriberCounting? = nil
    ) {
        let monitor = topology.cluster
        members = ClusterMembers(
            topology: topology,
            make: { node in
                RedisBroker(
                    topology: node, policy: policy, replication: replication, counting: counting,
                    onStale: { monitor?.refreshSoon() })
            },
            run: { broker in try? await broker.run() })
        members.observe { [weak self] change in self?.mapChanged(change) }
    }

    public var kind: String { "redis" }

    // MARK: Following the map

    /// Moves every wanted channel whose master changed, and hands new members the sink.
    private func mapChanged(_ change: ClusterMembers<RedisBroker>.Change) {
        let (moves, sink) = state.withLock { state -> ([(String, ClusterSlotMap.Node?, ClusterSlotMap.Node?)], (any PublicationSink)?) in
            var moves: [(String, ClusterSlotMap.Node?, ClusterSlotMap.Node?)] = []
            for (channel, current) in state.wanted {
                let owner = change.map.owner(ofChannel: channel)
                guard owner != current else { continue }
                state.wanted[channel] = owner
                moves.append((channel, current, owner))
            }
            return (moves, state.sink)
        }
        if let sink { for broker in change.members.values { broker.attach(sink) } }
        let retiring = Dictionary(change.retiring.map { ($0.node, $0.member) }, uniquingKeysWith: { a, _ in a })
        for (channel, from, to) in moves {
            let old = from.flatMap { change.members[$0] ?? retiring[$0] }
            let last = old?.abandon(channel)
            to.flatMap { change.members[$0] }?.adopt(channel, after: last)
        }
    }

    // MARK: Broker

    /// Up when every slot has a master and every master's links are; `partial` naming the
    /// masters that cannot be reached (or the uncovered slots); `degraded` before the first
    /// map or when no master can be reached.
    public var status: BrokerStatus {
        guard let map = members.map else { return .degraded("no Redis Cluster node answered CLUSTER SLOTS") }
        let parts = self.parts
        let down = parts.filter { !$0.isUp }.map(\.name)
        if down.isEmpty, map.uncovered == 0 { return .up }
        if !parts.isEmpty, down.count == parts.count { return .degraded("Redis Cluster masters \(down.joined(separator: ", ")) unreachable") }
        var reasons: [String] = []
        if !down.isEmpty { reasons.append("Redis Cluster master\(down.count == 1 ? "" : "s") \(down.joined(separator: ", ")) unreachable") }
        if map.uncovered > 0 { reasons.append("\(map.uncovered) Redis Cluster slots have no master") }
        return .partial(reasons.joined(separator: "; "))
    }

    public var parts: [(name: String, isUp: Bool)] {
        members.all.map { ($0.node.description, $0.member.status.isUp) }
    }

    public func attach(_ sink: any PublicationSink) {
        state.withLock { $0.sink = sink }
        for (_, broker) in members.all { broker.attach(sink) }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.members.run()
        }
    }

    public func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
        let promise = loop.makePromise(of: PublishReceipt.self)
        attempt(publication, on: loop, until: .now() + Self.retryFor, delay: Self.firstRetry, promise: promise)
        return promise.futureResult
    }

    private static let firstRetry = TimeAmount.milliseconds(20)
    private static let maxRetry = TimeAmount.milliseconds(400)

    private func attempt(
        _ publication: Publication, on loop: any EventLoop, until deadline: NIODeadline, delay: TimeAmount,
        promise: EventLoopPromise<PublishReceipt>
    ) {
        let retry = { @Sendable (error: BrokerError) in
            guard NIODeadline.now() + delay < deadline else { return promise.fail(Self.final(error)) }
            loop.scheduleTask(in: delay) {
                self.attempt(
                    publication, on: loop, until: deadline, delay: min(delay * 2, Self.maxRetry), promise: promise)
            }
        }
        guard let (_, broker) = members.of(publication.channel) else {
            members.monitor.refreshSoon()
            return retry(.unavailable("no Redis Cluster master serves channel '\(publication.channel)'"))
        }
        broker.publish(publication, on: loop).whenComplete { result in
            switch result {
            case .success(let receipt):
                promise.succeed(receipt)
            case .failure(let error):
                guard case BrokerError.redirected = error else { return promise.fail(error) }
                retry(error as! BrokerError)
            }
        }
    }

    /// What callers see of an error that outlived its retries.
    private static func final(_ error: BrokerError) -> BrokerError {
        if case .redirected(let reason) = error { return .unavailable(reason) }
        return error
    }

    /// Runs `body` against the channel's master, retrying redirections (nothing ran) for at
    /// most ``retryFor``.
    private func routed<T>(_ channel: String, _ body: (RedisBroker) async throws(BrokerError) -> T) async throws(BrokerError) -> T {
        let deadline = NIODeadline.now() + Self.retryFor
        var delay = Self.firstRetry
        while true {
            let error: BrokerError
            if let (_, broker) = members.of(channel) {
                do throws(BrokerError) {
                    return try await body(broker)
                } catch let failure {
                    guard case .redirected = failure else { throw failure }
                    error = failure
                }
            } else {
                members.monitor.refreshSoon()
                error = .unavailable("no Redis Cluster master serves channel '\(channel)'")
            }
            guard NIODeadline.now() + delay < deadline else { throw Self.final(error) }
            try? await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
            delay = min(delay * 2, Self.maxRetry)
        }
    }

    public func writeCounts(_ counts: [(channel: String, count: Int)], ttl: TimeAmount) {
        var byMaster: [ClusterSlotMap.Node: (RedisBroker, [(channel: String, count: Int)])] = [:]
        // A channel no master serves now is written by the next heartbeat.
        for entry in counts {
            guard let (node, broker) = members.of(entry.channel) else { continue }
            byMaster[node, default: (broker, [])].1.append(entry)
        }
        for (broker, counts) in byMaster.values { broker.writeCounts(counts, ttl: ttl) }
    }

    public func countOthers(of channel: String) async throws(BrokerError) -> Int {
        try await routed(channel) { broker throws(BrokerError) in try await broker.countOthers(of: channel) }
    }

    public func publishTransient(_ publication: Publication) async throws(BrokerError) {
        try await routed(publication.channel) { broker throws(BrokerError) in try await broker.publishTransient(publication) }
    }

    public func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) {
        try await routed(channel) { broker throws(BrokerError) in try await broker.send(signal, to: channel) }
    }

    public func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
        try await routed(channel) { broker throws(BrokerError) in try await broker.history(of: channel, after: offset, limit: limit) }
    }

    public func setInterest(in channel: String, _ interested: Bool) {
        let target = state.withLock { state -> ClusterSlotMap.Node? in
            if interested {
                let owner = self.members.map?.owner(ofChannel: channel)
                state.wanted[channel] = .some(owner)
                return owner
            }
            return state.wanted.removeValue(forKey: channel) ?? nil
        }
        guard let target, let broker = members.all.first(where: { $0.node == target })?.member else { return }
        broker.setInterest(in: channel, interested)
    }

    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        awaitSubscription(channel, on: loop, until: .now() + RedisBroker.subscribeWait, promise: promise)
        return promise.futureResult
    }

    /// The subscription at the channel's master; while no master serves it (before the first
    /// map, during a failover), waits for one, bounded like a subscribe on a link that is down.
    private func awaitSubscription(_ channel: String, on loop: any EventLoop, until deadline: NIODeadline, promise: EventLoopPromise<Void>) {
        let target = state.withLock { $0.wanted[channel] ?? nil }
        if let target, let broker = members.all.first(where: { $0.node == target })?.member {
            return broker.whenSubscribed(channel, on: loop).cascade(to: promise)
        }
        guard NIODeadline.now() < deadline else {
            return promise.fail(BrokerError.unavailable("no Redis Cluster master serves channel '\(channel)'"))
        }
        loop.scheduleTask(in: .milliseconds(100)) { self.awaitSubscription(channel, on: loop, until: deadline, promise: promise) }
    }
}

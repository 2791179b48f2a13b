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
    /// How long a redirected call is retried before it is refused (``RedirectRetry``).
    public static var retryFor: TimeAmount { RedirectRetry.budget }

    public init(
        topology: RedisTopology, policy: HistoryPolicy = HistoryPolicy(), rules: NamespaceRules? = nil, replication: ReplicationPolicy = ReplicationPolicy(),
        counting: RedisSubscriberCounting? = nil
    ) {
        let monitor = topology.cluster
        members = ClusterMembers(
            topology: topology,
            make: { node in
                RedisBroker(
                    topology: node, policy: policy, rules: rules, replication: replication, counting: counting,
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
        attempt(publication, on: loop, retry: RedirectRetry(), promise: promise)
        return promise.futureResult
    }

    private func attempt(_ publication: Publication, on loop: any EventLoop, retry: RedirectRetry, promise: EventLoopPromise<PublishReceipt>) {
        guard let (_, broker) = members.of(publication.channel) else {
            members.monitor.refreshSoon()
            return again(publication, on: loop, retry: retry, after: Self.unserved(publication.channel), promise: promise)
        }
        broker.publish(publication, on: loop).whenComplete { result in
            switch result {
            case .success(let receipt): promise.succeed(receipt)
            case .failure(let error as BrokerError) where error.isRedirect:
                self.again(publication, on: loop, retry: retry, after: error, promise: promise)
            case .failure(let error): promise.fail(error)
            }
        }
    }

    /// Tries `publication` again after the retry's pause, or fails it once the budget is spent.
    private func again(
        _ publication: Publication, on loop: any EventLoop, retry: RedirectRetry, after error: BrokerError,
        promise: EventLoopPromise<PublishReceipt>
    ) {
        var next = retry
        guard let pause = next.next() else { return promise.fail(Self.final(error)) }
        let retry = next
        loop.scheduleTask(in: pause) { self.attempt(publication, on: loop, retry: retry, promise: promise) }
    }

    private static func unserved(_ channel: String) -> BrokerError {
        .unavailable("no Redis Cluster master serves channel '\(channel)'")
    }

    /// What callers see of an error that outlived its retries.
    private static func final(_ error: BrokerError) -> BrokerError {
        if case .redirected(let reason) = error { return .unavailable(reason) }
        return error
    }

    /// Runs `body` against the channel's master, retrying redirections (nothing ran) within
    /// one ``RedirectRetry`` budget.
    private func routed<T>(_ channel: String, _ body: (RedisBroker) async throws(BrokerError) -> T) async throws(BrokerError) -> T {
        var retry = RedirectRetry()
        while true {
            let error: BrokerError
            if let (_, broker) = members.of(channel) {
                do throws(BrokerError) {
                    return try await body(broker)
                } catch let failure {
                    guard failure.isRedirect else { throw failure }
                    error = failure
                }
            } else {
                members.monitor.refreshSoon()
                error = Self.unserved(channel)
            }
            guard await retry.wait() else { throw Self.final(error) }
        }
    }

    public func writeCounts(_ counts: [(channel: String, count: Int)], ttl: TimeAmount) {
        // A channel no master serves now is written by the next heartbeat.
        let byChannel = Dictionary(counts.map { ($0.channel, $0.count) }, uniquingKeysWith: { _, last in last })
        for (broker, channels) in members.grouped(counts.map(\.channel)) {
            broker.writeCounts(channels.map { ($0, byChannel[$0] ?? 0) }, ttl: ttl)
        }
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
        members.member(at: target)?.setInterest(in: channel, interested)
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
        if let broker = members.member(at: target) {
            return broker.whenSubscribed(channel, on: loop).cascade(to: promise)
        }
        guard NIODeadline.now() < deadline else { return promise.fail(Self.unserved(channel)) }
        loop.scheduleTask(in: .milliseconds(100)) { self.awaitSubscription(channel, on: loop, until: deadline, promise: promise) }
    }
}

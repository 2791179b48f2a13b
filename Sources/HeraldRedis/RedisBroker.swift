import Foundation
import HeraldCore
import HeraldProtocol
import HeraldSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The broker between nodes: Redis pub/sub, spoken through hiredis over SwiftNIO.
///
/// - **Publish** goes out on a command connection, pipelined: every PUBLISH is written at
///   once and its reply matched in order, so throughput is not one round trip per message.
/// - **Interest** is per channel: this node SUBSCRIBEs to `<prefix>:ch:{<channel>}` only while
///   one of its sockets wants the channel. ``InterestStateMachine`` tracks wanted and
///   confirmed channels; changes are coalesced on the broker's event loop and sent as one
///   SUBSCRIBE/UNSUBSCRIBE per batch (up to ``batchSize`` channels each), and a channel counts
///   as subscribed only once Redis confirmed it — which is what ``whenSubscribed(_:on:)``, and
///   so a client's `subscribed`, waits for. A refused command is logged and retried with
///   backoff while the channel is still wanted.
/// - **Failures**: each connection is kept up by a ``RedisSupervisor`` (backoff with jitter);
///   after the pub/sub connection returns, every channel with local subscribers is subscribed
///   again. While the command connection is down, `publish` throws `unavailable` (REST 503).
///
/// Ordering: one node's publications to a channel reach every node in publish order (one
/// pipelined connection in, Redis' single-threaded fan-out, one pub/sub connection out).
public final class RedisBroker: Broker, SubscriberCountStore {
    /// Most channels in one SUBSCRIBE or UNSUBSCRIBE command.
    public static let batchSize = 512

    struct State {
        var pubsub: RedisConnection?
        var machine = InterestStateMachine()
        /// Promises of ``whenSubscribed(_:on:)`` callers, by channel.
        var waiters: [String: [EventLoopPromise<Void>]] = [:]
        var flushScheduled = false
        /// Backoff for refused (UN)SUBSCRIBE commands; reset by a success.
        var retryBackoff = Backoff(base: .milliseconds(100), cap: .seconds(5))
    }

    public let topology: RedisTopology
    var keys: RedisKeys { topology.keys }
    /// Each channel's history policy, by namespace (reloaded with the configuration file).
    public let rules: NamespaceRules
    let logger: Logger
    private let scripts = ScriptCache()
    /// Pub/sub messages in offset order, gaps healed from the stream (``GapHealingStateMachine``);
    /// its lock is never taken while the Hub's is held, so delivering under it keeps order.
    let gaps: Mutex<GapHealingStateMachine>
    private let fetches: AsyncStream<(channel: String, after: Int64)>.Continuation
    private let fetchRequests: AsyncStream<(channel: String, after: Int64)>
    let loop: any EventLoop
    private let commands: RedisSupervisor
    private let subscriptions: RedisSupervisor
    let state = Mutex(State())
    /// Set once by `attach`, read on every incoming message.
    private let sink: NIOLockedValueBox<(any PublicationSink)?>
    private let metrics: NodeMetrics
    /// Round trips to this broker's Redis, by operation.
    private let timers: NodeMetrics.RedisTimers
    /// Where the nodes' subscriber counts are, for `delivered`: this node's id.
    private let counting: RedisSubscriberCounting?
    /// `PUBLISH`, or `SPUBLISH` in a Redis Cluster, encoded once: every publish passes it.
    private let publishCommand: ByteBuffer
    /// How long the pub/sub link may be silent before it is probed (``PubSubLiveness``).
    public static let defaultProbeInterval = TimeAmount.seconds(5)
    /// `nil` in a Redis Cluster, where a probe channel would have to follow one of the link's
    /// slots; the cluster's slot map, refreshed every second, and the command timeout watch
    /// its links instead.
    private let probe: PubSubProbe?
    /// Called when Redis Cluster said this node's map is stale (`MOVED`, `ASK`, a sharded
    /// subscription dropped); set by ``ClusterBroker``.
    let onStale: (@Sendable () -> Void)?
    public let replication: ReplicationPolicy
    /// `WAIT <replicas> <timeout>`, encoded once.
    private let waitCommand: [ByteBuffer]

    /// - Parameter counting: this node's id, so each publish counts the other nodes'
    ///   subscribers in the same round trip; `nil` for a broker without a registry.
    public init(
        topology: RedisTopology, policy: HistoryPolicy = HistoryPolicy(), rules: NamespaceRules? = nil,
        replication: ReplicationPolicy = ReplicationPolicy(),
        probeInterval: TimeAmount = RedisBroker.defaultProbeInterval, counting: RedisSubscriberCounting? = nil,
        onStale: (@Sendable () -> Void)? = nil
    ) {
        let (logger, metrics, keys) = (topology.logger, topology.metrics, topology.keys)
        self.topology = topology
        self.onStale = onStale
        let probe = topology.cluster != nil
            ? nil : PubSubProbe(interval: probeInterval, keys: keys, address: topology.address, logger: logger, metrics: metrics)
        self.probe = probe
        self.replication = replication
        self.waitCommand = [
            ByteBuffer(string: "WAIT"), ByteBuffer(string: String(replication.minReplicas)),
            ByteBuffer(string: String(replication.timeout.nanoseconds / 1_000_000)),
        ]
        self.counting = counting
        let rules = rules ?? NamespaceRules(history: policy)
        self.rules = rules
        self.logger = logger
        self.metrics = metrics
        self.timers = metrics.redisTimers(shard: topology.locator.name)
        self.publishCommand = ByteBuffer(string: topology.publishCommand)
        self.gaps = Mutex(GapHealingStateMachine(fetchLimit: { Self.pageSize(of: $0, rules) }))
        (fetchRequests, fetches) = AsyncStream.makeStream(of: (channel: String, after: Int64).self, bufferingPolicy: .unbounded)
        self.loop = topology.nextLoop()
        let sink = NIOLockedValueBox<(any PublicationSink)?>(nil)
        self.sink = sink
        self.commands = topology.link("publish")
        // The callback sits in a struct: a bare closure in the box would be re-abstracted on
        // every `withLockedValue` (its inout write-back wraps it in two more thunks), so each
        // message would call through a chain one link longer than the last.
        let received = NIOLockedValueBox<ReceivedCallback?>(nil)
        let dropped = NIOLockedValueBox<DroppedCallback?>(nil)
        self.subscriptions = topology.link(
            "subscribe",
            onMessage: { key, payload in
                probe?.heard()
                guard let message = PublicationEnvelope.decode(key: key, payload: payload, keys: keys) else { return }
                received.withLockedValue { $0 }?.call(message)
            },
            onDropped: { key in
                guard let channel = keys.channel(ofPubSub: key) else { return }
                dropped.withLockedValue { $0 }?.call(channel)
            })
        received.withLockedValue { $0 = ReceivedCallback { [weak self] message in self?.received(message) } }
        dropped.withLockedValue { $0 = DroppedCallback { [weak self] channel in self?.slotMoved(channel) } }
    }

    private struct ReceivedCallback: Sendable {
        let call: @Sendable (PublicationEnvelope.Message) -> Void
    }

    private struct DroppedCallback: Sendable {
        let call: @Sendable (String) -> Void
    }

    /// A pub/sub message: a publication through the gap healer to the Hub; a signal to the Hub
    /// under the healer's lock, so it keeps its place among the channel's transient publications.
    private func received(_ message: PublicationEnvelope.Message) {
        switch message {
        case .publication(let publication):
            gaps.withLock { gaps in perform(gaps.received(publication)) }
        case .signal(let signal, let channel):
            gaps.withLock { _ in sink.withLockedValue { $0 }?.deliver(signal, to: channel) }
        }
    }

    /// Carries out the gap healer's actions; called with its lock held, so deliveries keep
    /// their order.
    func perform(_ actions: [GapHealingStateMachine.Action]) {
        for action in actions {
            switch action {
            case .deliver(let publications):
                guard let sink = sink.withLockedValue({ $0 }) else { continue }
                for publication in publications { sink.deliver(publication) }
            case .fetch(let channel, let after):
                logger.notice("reading missed publications from the stream", metadata: ["channel": "\(channel)", "after": "\(after)"])
                fetches.yield((channel, after))
            case .fetchLater(let channel, let after, let delay):
                logger.notice(
                    "retrying the read of missed publications",
                    metadata: ["channel": "\(channel)", "after": "\(after)", "delay": "\(delay)"])
                let fetches = fetches
                loop.scheduleTask(in: .nanoseconds(Int64(delay / .nanoseconds(1)))) { fetches.yield((channel, after)) }
            }
        }
    }

    /// How much of `channel`'s stream one gap read asks for: all its namespace keeps.
    static func pageSize(of channel: String, _ rules: NamespaceRules) -> Int {
        max(rules.history(for: channel).size, 1)
    }

    /// Reads what a gap needs, one request after the other, for as long as the broker runs.
    private func healGaps() async {
        for await request in fetchRequests {
            let page: HistoryPage?
            do {
                page = try await history(
                    of: request.channel, after: request.after, limit: Self.pageSize(of: request.channel, rules), seeding: false)
            } catch {
                logger.warning("could not read missed publications", metadata: ["channel": "\(request.channel)", "error": "\(error)"])
                page = nil
            }
            gaps.withLock { gaps in
                perform(page.map { gaps.fetched(request.channel, $0) } ?? gaps.fetchFailed(request.channel))
            }
        }
    }

    public var kind: String { "redis" }

    public var status: BrokerStatus {
        if commands.connection != nil, subscriptions.connection != nil { return .up }
        return .degraded(topology.unreachable)
    }

    public func attach(_ sink: any PublicationSink) {
        self.sink.withLockedValue { $0 = sink }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.commands.run() }
                group.addTask { await self.healGaps() }
                if let probe = self.probe {
                    group.addTask {
                        await probe.watch(pubsub: { self.state.withLock { $0.pubsub } }, commands: { self.commands.connection })
                    }
                }
                group.addTask {
                    await self.subscriptions.run { connection in
                        try await self.probe?.connected(connection)
                        // A new connection is subscribed to nothing: ask for everything again.
                        self.state.withLock { state in
                            state.pubsub = connection
                            state.machine.connected()
                        }
                        connection.closeFuture.whenComplete { _ in self.pubsubClosed(connection) }
                        self.flush()
                    }
                }
            }
        }
        fetches.finish()
    }

    // MARK: Publishing and history


    private func connected() throws(BrokerError) -> RedisConnection {
        guard let connection = commands.connection else { throw .unavailable(topology.unreachable) }
        return connection
    }

    /// One round trip: the publish script (position, history, idempotency — the channel's
    /// keys only), or a plain `PUBLISH` when there is nothing to keep; in a cluster the count
    /// of the other nodes' subscribers goes in the same write, so `delivered` needs no second
    /// trip (the channel's count hash is on the same shard). Written at once, pipelined behind other publishes on the command connection,
    /// without a Swift task.
    public func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
        guard let connection = commands.connection else {
            return loop.makeFailedFuture(BrokerError.unavailable(topology.unreachable))
        }
        let start = NIODeadline.now()
        let policy = rules.history(for: publication.channel)
        let plain = !policy.isOn && publication.idempotencyKey == nil
        var commands: [PipelinedCommand] = []
        commands.reserveCapacity(2)
        if plain {
            commands.append(.plain([
                publishCommand, keys.pubsub(publication.channel), PublicationEnvelope.encode(publication),
            ]))
        } else {
            let (keys, arguments) = publishScriptInput(publication, policy)
            commands.append(.script(LoadedScript.publish, keys: keys, arguments: arguments))
        }
        // Durability before anything else is trusted: WAIT right behind the write it guards.
        if replication.isOn { commands.append(.plain(waitCommand)) }
        if let counting {
            commands.append(publication.receipt == nil ? counting.count(publication.channel) : counting.countNodes(publication.channel))
        }
        let replies = PipelinedCommand.send(commands, on: connection, sha: scripts)
        let acknowledgements = replication.isOn ? replies[1] : nil
        let count = counting == nil ? nil : replies[replies.count - 1]
        // One promise on the caller's loop, completed from nested callbacks: chaining
        // map/and/recover/hop per publish cost a future (promise + closure) each.
        let promise = loop.makePromise(of: PublishReceipt.self)
        let (timers, replicas) = (self.timers, replication.minReplicas)
        let finish = { @Sendable (receipt: PublishReceipt) in
            guard let count else {
                timers.record(.publish, since: start)
                return promise.succeed(receipt)
            }
            // The count is a figure, not the publish: if it fails, `delivered` counts this node only.
            count.whenComplete { others in
                timers.record(.publish, since: start)
                var receipt = receipt
                let reply = try? others.get()
                if publication.receipt != nil, let fields = reply?.array {
                    // {total, node, node, …}: the nodes a receipt waits for.
                    receipt.otherNodesSubscribers = receipt.duplicate ? nil : fields.first?.int
                    receipt.otherNodes = fields.dropFirst().compactMap(\.string)
                } else {
                    receipt.otherNodesSubscribers = receipt.duplicate ? nil : reply?.int
                }
                promise.succeed(receipt)
            }
        }
        replies[0].whenComplete { published in
            let receipt: PublishReceipt
            do {
                let reply = try published.get()
                receipt = plain ? PublishReceipt(id: publication.id, position: nil) : try Self.receipt(from: reply)
            } catch {
                timers.record(.publish, since: start)
                return promise.fail(self.brokerError(error, "publish to Redis failed"))
            }
            guard let acknowledgements else { return finish(receipt) }
            acknowledgements.whenComplete { acknowledged in
                let count = (try? acknowledged.get())?.int ?? 0
                guard count >= replicas else {
                    timers.record(.publish, since: start)
                    return promise.fail(BrokerError.replicationTimeout(
                        "\(count) of \(replicas) Redis replicas acknowledged publication \(receipt.id) in time"))
                }
                finish(receipt)
            }
        }
        return promise.futureResult
    }

    // MARK: Subscriber counts (SubscriberCountStore)

    /// Most channels in one call of the count script: a heartbeat rewrites every channel, and
    /// one call holds Redis for its whole batch.
    static let countBatch = 100

    public func writeCounts(_ counts: [(channel: String, count: Int)], ttl: TimeAmount) {
        guard let counting, let connection = commands.connection, !counts.isEmpty else { return }
        // A cluster's script may touch one slot only.
        let groups = topology.cluster == nil
            ? [counts] : Array(Dictionary(grouping: counts) { ClusterSlot.slot(ofTag: $0.channel) }.values)
        let calls = groups.flatMap { $0.chunks(of: Self.countBatch) }.map { counting.write($0, ttl: ttl) }
        _ = PipelinedCommand.send(calls, on: connection, sha: scripts)
    }

    public func countOthers(of channel: String) async throws(BrokerError) -> Int {
        guard let counting else { return 0 }
        let connection = try connected()
        do {
            return try await PipelinedCommand.send([counting.count(channel)], on: connection, sha: scripts)[0].get().int ?? 0
        } catch {
            throw brokerError(error, "counting subscribers in Redis failed")
        }
    }

    /// Every publication in one write — one round trip for the whole batch — each with its
    /// own script (or `PUBLISH`) and count, in order, and one `WAIT` behind them all when
    /// replicas must acknowledge.
    public func publish(batch publications: [Publication], on loop: any EventLoop) -> EventLoopFuture<[Result<PublishReceipt, BrokerError>]> {
        guard let connection = commands.connection else {
            return loop.makeSucceededFuture(publications.map { _ in .failure(.unavailable(topology.unreachable)) })
        }
        let start = NIODeadline.now()
        var pipelined: [PipelinedCommand] = []
        pipelined.reserveCapacity(publications.count * 2 + 1)
        var slots: [(plain: Bool, publish: Int, count: Int?)] = []
        slots.reserveCapacity(publications.count)
        for publication in publications {
            let policy = rules.history(for: publication.channel)
            let plain = !policy.isOn && publication.idempotencyKey == nil
            let index = pipelined.count
            if plain {
                pipelined.append(.plain([publishCommand, keys.pubsub(publication.channel), PublicationEnvelope.encode(publication)]))
            } else {
                let (keys, arguments) = publishScriptInput(publication, policy)
                pipelined.append(.script(LoadedScript.publish, keys: keys, arguments: arguments))
            }
            var count: Int?
            if let counting {
                count = pipelined.count
                pipelined.append(counting.count(publication.channel))
            }
            slots.append((plain, index, count))
        }
        let waitIndex = replication.isOn ? pipelined.count : nil
        if replication.isOn { pipelined.append(.plain(waitCommand)) }
        let replies = PipelinedCommand.send(pipelined, on: connection, sha: scripts)
        let items = zip(publications, slots).map { publication, slot -> EventLoopFuture<Result<PublishReceipt, BrokerError>> in
            replies[slot.publish].flatMapThrowing { reply in
                slot.plain ? PublishReceipt(id: publication.id, position: nil) : try Self.receipt(from: reply)
            }.flatMap { receipt -> EventLoopFuture<PublishReceipt> in
                guard let count = slot.count else { return connection.eventLoop.makeSucceededFuture(receipt) }
                // The count is a figure, not the publish: if it fails, `delivered` counts this node only.
                return replies[count].map { others in
                    var counted = receipt
                    counted.otherNodesSubscribers = receipt.duplicate ? nil : others.int
                    return counted
                }.recover { _ in receipt }
            }.map { .success($0) }.recover { error in .failure(self.brokerError(error, "publish to Redis failed")) }
        }
        let (timers, replicas) = (self.timers, replication.minReplicas)
        let all = EventLoopFuture.whenAllSucceed(items, on: loop)
        guard let waitIndex else {
            return all.always { _ in timers.record(.publish, since: start) }
        }
        return all.and(replies[waitIndex].map { $0.int ?? 0 }.recover { _ in 0 }).map { results, acknowledged in
            timers.record(.publish, since: start)
            guard acknowledged < replicas else { return results }
            return results.map { result in
                guard case .success(let receipt) = result else { return result }
                return .failure(.replicationTimeout("\(acknowledged) of \(replicas) Redis replicas acknowledged publication \(receipt.id) in time"))
            }
        }
    }

    private func publishScriptInput(_ publication: Publication, _ policy: HistoryPolicy) -> (keys: [ByteBuffer], arguments: [ByteBuffer]) {
        let channel = publication.channel
        let idempotency = publication.idempotencyKey.map { self.keys.idempotency(channel, key: $0) } ?? ByteBuffer()
        // In a cluster the never-existing keys go in ARGV (``RedisScripts/publish``).
        let declared = topology.cluster == nil
        var keys = [self.keys.stream(channel), self.keys.meta(channel)]
        if declared { keys += [idempotency, self.keys.pubsub(channel)] }
        var arguments = [
            publication.payload, ByteBuffer(string: String(policy.size)),
            ByteBuffer(string: String(policy.ttl.nanoseconds / 1_000_000)),
            ByteBuffer(string: PositionedPayload.newEpoch()),
            ByteBuffer(string: String(policy.idempotencyWindow.nanoseconds / 1_000_000)),
            ByteBuffer(string: publication.id), ByteBuffer(string: publication.excludedClient ?? ""),
            ByteBuffer(string: Self.acceptedField(publication, positioned: policy.size > 0)),
        ]
        appendFloor(of: channel, to: &arguments)
        arguments.append(publishCommand)
        if !declared { arguments += [idempotency, self.keys.pubsub(channel)] }
        return (keys, arguments)
    }

    /// The header field the script writes after the excluded client: when it was accepted, and
    /// the receipt its publisher waits for (after an empty type field in the `!` form; see
    /// ``PublicationEnvelope``).
    static func acceptedField(_ publication: Publication, positioned: Bool) -> String {
        guard let receipt = publication.receipt else { return String(publication.acceptedAtMicros) }
        return "\(publication.acceptedAtMicros)\(positioned ? " " : "  ")\(receipt.token)"
    }

    /// What a failed Redis call means to callers: Redis Cluster's redirections
    /// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`: nothing ran) are ``BrokerError/redirected(_:)``,
    /// which ``ClusterBroker`` retries at the slot's owner; anything else is `unavailable`.
    func brokerError(_ error: any Error, _ what: String) -> BrokerError {
        if let error = error as? BrokerError { return error }
        if let redirect = redirection(error) { return .redirected("\(what): \(redirect)") }
        return .unavailable("\(what): \(error)")
    }

    /// The message of a Redis Cluster redirection, after telling the cluster broker its map is
    /// stale; `nil` for any other failure.
    func redirection(_ error: any Error) -> String? {
        guard case RedisConnectionError.server(let message) = error,
            ["MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"].contains(where: message.hasPrefix)
        else { return nil }
        onStale?()
        return message
    }

    /// The scripts' floor: the newest position this node delivered for `channel`, so that
    /// Redis never hands out a position again after losing it (``ChannelHistory``).
    private func appendFloor(of channel: String, to arguments: inout [ByteBuffer]) {
        if let floor = gaps.withLock({ $0.channels[channel]?.last }) {
            arguments.append(ByteBuffer(string: floor.epoch))
            arguments.append(ByteBuffer(string: String(floor.offset)))
        } else {
            arguments.append(ByteBuffer())
            arguments.append(ByteBuffer(string: "0"))
        }
    }

    static func receipt(from reply: RESPValue) throws -> PublishReceipt {
        guard let fields = reply.array, fields.count == 4, let id = fields[1].string, let offset = fields[2].int,
            let epoch = fields[3].string
        else { throw RedisConnectionError.server("unexpected reply to the publish script: \(reply)") }
        let position = epoch.isEmpty ? nil : StreamPosition(offset: Int64(offset), epoch: epoch)
        return PublishReceipt(id: id, position: position, duplicate: fields[0].int == 1)
    }

    public func publishTransient(_ publication: Publication) async throws(BrokerError) {
        let connection = try connected()
        do {
            if publication.idempotencyKey != nil {
                // The publish script with history off: the key is checked and set in the same
                // step as the PUBLISH, so a retry after a crash between them cannot repeat it.
                var policy = rules.history(for: publication.channel)
                policy.size = 0
                let (keys, arguments) = publishScriptInput(publication, policy)
                _ = try await LoadedScript.publish.run(keys, arguments, on: connection, sha: scripts).get()
            } else {
                try await plainPublish(publication, on: connection)
            }
        } catch {
            throw brokerError(error, "publish to Redis failed")
        }
    }

    private func plainPublish(_ publication: Publication, on connection: RedisConnection) async throws {
        _ = try await timers.time(.publish) {
            try await connection.sendFuture([
                publishCommand, keys.pubsub(publication.channel), PublicationEnvelope.encode(publication),
            ]).get()
        }
    }

    public func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) {
        let connection = try connected()
        do {
            _ = try await timers.time(.publish) {
                try await connection.sendFuture([publishCommand, keys.pubsub(channel), PublicationEnvelope.encode(signal)]).get()
            }
        } catch {
            throw brokerError(error, "publish to Redis failed")
        }
    }

    public func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
        try await history(of: channel, after: offset, limit: limit, seeding: true)
    }

    /// - Parameter seeding: the position read is one a subscriber is given (so the node must
    ///   deliver everything after it); false for the gap healer's own reads.
    private func history(of channel: String, after offset: Int64?, limit: Int, seeding: Bool) async throws(BrokerError) -> HistoryPage {
        let policy = rules.history(for: channel)
        guard policy.isOn else { return HistoryPage(latest: nil, publications: [], oldest: 0) }
        let connection = try connected()
        let reply: RESPValue
        do {
            var arguments = [
                ByteBuffer(string: PositionedPayload.newEpoch()), ByteBuffer(string: String(offset ?? -1)),
                ByteBuffer(string: String(limit)), ByteBuffer(string: String(policy.ttl.nanoseconds / 1_000_000)),
            ]
            appendFloor(of: channel, to: &arguments)
            reply = try await timers.time(.history) {
                try await LoadedScript.history.run(
                    [keys.stream(channel), keys.meta(channel)], arguments, on: connection, sha: scripts
                ).get()
            }
        } catch {
            throw brokerError(error, "reading the history from Redis failed")
        }
        guard let fields = reply.array, fields.count >= 3, let epoch = fields[0].string, let latest = fields[1].int,
            let oldest = fields[2].int
        else { throw .unavailable("unexpected reply to the history script") }
        var publications: [Publication] = []
        var index = 3
        while index + 1 < fields.count {
            if let id = fields[index].string, let entry = Int64(id.prefix { $0 != "-" }),
                case .bulkString(let payload) = fields[index + 1]
            {
                publications.append(Publication(channel: channel, payload: payload, position: StreamPosition(offset: entry, epoch: epoch)))
            }
            index += 2
        }
        let position = StreamPosition(offset: Int64(latest), epoch: epoch)
        if seeding, isWanted(channel) { gaps.withLock { $0.seed(channel, position) } }
        return HistoryPage(latest: position, publications: publications, oldest: Int64(oldest))
    }

    private func isWanted(_ channel: String) -> Bool {
        state.withLock { $0.machine.entries[channel]?.wanted == true }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    func chunks(of size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

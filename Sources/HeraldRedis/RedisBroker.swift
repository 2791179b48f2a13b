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
/// - **Interest** is per channel: this node SUBSCRIBEs to `<prefix>:ch:<channel>` only while
///   one of its sockets wants the channel. ``SubscriptionStateMachine`` tracks wanted and
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
public final class RedisBroker: Broker {
    /// Most channels in one SUBSCRIBE or UNSUBSCRIBE command.
    public static let batchSize = 512

    private struct State {
        var pubsub: RedisConnection?
        var machine = SubscriptionStateMachine()
        /// Promises of ``whenSubscribed(_:on:)`` callers, by channel.
        var waiters: [String: [EventLoopPromise<Void>]] = [:]
        var flushScheduled = false
        /// Backoff for refused (UN)SUBSCRIBE commands; reset by a success.
        var retryBackoff = Backoff(base: .milliseconds(100), cap: .seconds(5))
    }

    public let url: RedisURL
    public let prefix: String
    private let logger: Logger
    private let loop: any EventLoop
    private let commands: RedisSupervisor
    private let subscriptions: RedisSupervisor
    private let state = Mutex(State())
    /// Set once by `attach`, read on every incoming message.
    private let sink: NIOLockedValueBox<(any PublicationSink)?>
    private let channelPrefix: [UInt8]

    public init(url: RedisURL, prefix: String, group: any EventLoopGroup, logger: Logger) {
        self.url = url
        self.prefix = prefix
        self.logger = logger
        self.loop = group.next()
        let channelPrefix = Array("\(prefix):ch:".utf8)
        self.channelPrefix = channelPrefix
        let sink = NIOLockedValueBox<(any PublicationSink)?>(nil)
        self.sink = sink
        self.commands = RedisSupervisor(url: url, name: "publish", group: group, logger: logger)
        self.subscriptions = RedisSupervisor(url: url, name: "subscribe", group: group, logger: logger) { key, payload in
            guard let sink = sink.withLockedValue({ $0 }),
                let publication = PublicationEnvelope.decode(key: key, payload: payload, prefix: channelPrefix)
            else { return }
            sink.deliver(publication)
        }
    }

    public var kind: String { "redis" }

    public var status: BrokerStatus {
        if commands.connection != nil, subscriptions.connection != nil { return .up }
        return .degraded("Redis at \(url.host):\(url.port) is unreachable")
    }

    public func attach(_ sink: any PublicationSink) {
        self.sink.withLockedValue { $0 = sink }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.commands.run() }
                group.addTask {
                    await self.subscriptions.run { connection in
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
    }

    public func publish(_ publication: Publication) async throws(BrokerError) {
        guard let connection = commands.connection else {
            throw .unavailable("Redis at \(url.host):\(url.port) is unreachable")
        }
        let key = ByteBuffer(bytes: channelPrefix + Array(publication.channel.utf8))
        do {
            _ = try await connection.sendFuture([
                ByteBuffer(string: "PUBLISH"), key, PublicationEnvelope.encode(publication),
            ]).get()
        } catch {
            throw .unavailable("publish to Redis failed: \(error)")
        }
    }

    // MARK: Interest

    public func setInterest(in channel: String, _ interested: Bool) {
        let schedule = state.withLock { state -> Bool in
            state.machine.interestChanged(channel, wanted: interested)
            if !interested { Self.take(state.waiters.removeValue(forKey: channel)) }
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { loop.execute { self.flush() } }
    }

    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let readiness = state.withLock { state -> SubscriptionStateMachine.Readiness in
            let readiness = state.machine.readiness(of: channel)
            if readiness == .pending { state.waiters[channel, default: []].append(promise) }
            return readiness
        }
        switch readiness {
        case .ready: promise.succeed()
        case .pending: break
        case .unavailable: promise.fail(BrokerError.unavailable("Redis at \(url.host):\(url.port) is unreachable"))
        }
        return promise.futureResult
    }

    /// Waiters dropped with their interest: the subscriber that waited is gone already.
    private static func take(_ promises: [EventLoopPromise<Void>]?) {
        for promise in promises ?? [] { promise.fail(BrokerError.unavailable("unsubscribed before Redis confirmed")) }
    }

    /// Sends what the machine says is due, in batches.
    private func flush() {
        let work = state.withLock { state -> (RedisConnection, SubscriptionStateMachine.Commands)? in
            state.flushScheduled = false
            guard let connection = state.pubsub, connection.isActive else { return nil }
            return (connection, state.machine.flush())
        }
        guard let (connection, due) = work else { return }
        send(due, on: connection)
    }

    private func send(_ due: SubscriptionStateMachine.Commands, on connection: RedisConnection) {
        guard !due.isEmpty else { return }
        logger.trace("interest changed", metadata: ["subscribe": "\(due.subscribe.count)", "unsubscribe": "\(due.unsubscribe.count)"])
        for batch in due.subscribe.chunks(of: Self.batchSize) {
            connection.pubsub("SUBSCRIBE", batch.map(key)).whenComplete { result in
                self.settled(subscribe: true, batch, result, on: connection)
            }
        }
        for batch in due.unsubscribe.chunks(of: Self.batchSize) {
            connection.pubsub("UNSUBSCRIBE", batch.map(key)).whenComplete { result in
                self.settled(subscribe: false, batch, result, on: connection)
            }
        }
    }

    /// Redis answered a (UN)SUBSCRIBE: confirm or fail the waiters, and retry what failed.
    private func settled(subscribe: Bool, _ channels: [String], _ result: Result<Void, any Error>, on connection: RedisConnection) {
        // A reply lost with its connection: pubsubClosed settles everything at once.
        if case .failure(let error) = result, (error as? RedisConnectionError) == .closed { return }
        var succeed: [EventLoopPromise<Void>] = []
        var fail: [EventLoopPromise<Void>] = []
        var retryDelay: Duration?
        let next = state.withLock { state -> SubscriptionStateMachine.Commands in
            // Replies from a connection that is gone were settled by pubsubClosed already.
            guard state.pubsub === connection else { return .init() }
            let outcome: SubscriptionStateMachine.Settled
            switch (subscribe, result) {
            case (true, .success):
                outcome = state.machine.subscribeSucceeded(channels)
                state.retryBackoff.reset()
            case (true, .failure):
                outcome = state.machine.subscribeFailed(channels)
                retryDelay = state.retryBackoff.next()
            case (false, .success):
                outcome = state.machine.unsubscribeSucceeded(channels)
            case (false, .failure):
                state.machine.unsubscribeFailed(channels)
                outcome = .init()
                retryDelay = state.retryBackoff.next()
            }
            for channel in outcome.confirmed { succeed += state.waiters.removeValue(forKey: channel) ?? [] }
            for channel in outcome.failed { fail += state.waiters.removeValue(forKey: channel) ?? [] }
            return outcome.commands
        }
        if case .failure(let error) = result {
            logger.error("Redis refused \(subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"); retrying", metadata: [
                "channels": "\(channels.prefix(5).joined(separator: ","))\(channels.count > 5 ? ",…" : "")",
                "count": "\(channels.count)", "error": "\(error)",
            ])
        }
        for promise in succeed { promise.succeed() }
        for promise in fail { promise.fail(BrokerError.unavailable("Redis refused to subscribe: \(result)")) }
        send(next, on: connection)
        if let retryDelay {
            loop.scheduleTask(in: .nanoseconds(retryDelay.nanoseconds)) {
                self.state.withLock { $0.machine.retry(channels) }
                self.flush()
            }
        }
    }

    /// The pub/sub connection dropped: every waiter fails; the supervisor reconnects.
    private func pubsubClosed(_ connection: RedisConnection) {
        let failed = state.withLock { state -> [EventLoopPromise<Void>] in
            guard state.pubsub === connection else { return [] }
            state.pubsub = nil
            return state.machine.disconnected().flatMap { state.waiters.removeValue(forKey: $0) ?? [] }
        }
        for promise in failed { promise.fail(BrokerError.unavailable("lost the connection to Redis")) }
    }

    private func key(_ channel: String) -> ByteBuffer {
        ByteBuffer(bytes: channelPrefix + Array(channel.utf8))
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    func chunks(of size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

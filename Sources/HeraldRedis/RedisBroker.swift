import HeraldCore
import Logging
import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// The broker between nodes: Redis pub/sub, spoken through hiredis over SwiftNIO.
///
/// - **Publish** goes out on a command connection, pipelined: every PUBLISH is written at
///   once and its reply matched in order, so throughput is not one round trip per message.
/// - **Interest** is per channel: this node SUBSCRIBEs to `<prefix>:ch:<channel>` only while
///   one of its sockets wants the channel. Changes are coalesced on the broker's event loop
///   and sent as one SUBSCRIBE/UNSUBSCRIBE per batch (up to ``batchSize`` channels each).
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
        /// Channels with local subscribers: what Redis should be sending us.
        var desired = Set<String>()
        /// What the current pub/sub connection has been asked to send.
        var subscribed = Set<String>()
        var flushScheduled = false
    }

    public let url: RedisURL
    public let prefix: String
    private let logger: Logger
    private let loop: any EventLoop
    private let commands: RedisSupervisor
    private let subscriptions: RedisSupervisor
    private let state = Mutex(State())
    /// Set once by `attach`, read on every incoming message.
    private let sink = Locked<(any PublicationSink)?>(nil)
    private let channelPrefix: [UInt8]

    public init(url: RedisURL, prefix: String, group: any EventLoopGroup, logger: Logger) {
        self.url = url
        self.prefix = prefix
        self.logger = logger
        self.loop = group.next()
        let channelPrefix = Array("\(prefix):ch:".utf8)
        self.channelPrefix = channelPrefix
        let sink = self.sink
        self.commands = RedisSupervisor(url: url, name: "publish", group: group, logger: logger)
        self.subscriptions = RedisSupervisor(url: url, name: "subscribe", group: group, logger: logger) { key, payload in
            guard let sink = sink.value,
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
        self.sink.value = sink
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
                            state.subscribed = []
                        }
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

    public func setInterest(in channel: String, _ interested: Bool) {
        let schedule = state.withLock { state -> Bool in
            if interested { state.desired.insert(channel) } else { state.desired.remove(channel) }
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { loop.execute { self.flush() } }
    }

    /// Sends the difference between desired and subscribed channels, in batches.
    private func flush() {
        let work = state.withLock { state -> (RedisConnection, [String], [String])? in
            state.flushScheduled = false
            guard let connection = state.pubsub, connection.isActive else { return nil }
            let add = Array(state.desired.subtracting(state.subscribed))
            let remove = Array(state.subscribed.subtracting(state.desired))
            state.subscribed = state.desired
            return (connection, add, remove)
        }
        guard let (connection, add, remove) = work else { return }
        send("SUBSCRIBE", add, on: connection)
        send("UNSUBSCRIBE", remove, on: connection)
        if !add.isEmpty || !remove.isEmpty {
            logger.trace("interest changed", metadata: ["subscribe": "\(add.count)", "unsubscribe": "\(remove.count)"])
        }
    }

    private func send(_ command: String, _ channels: [String], on connection: RedisConnection) {
        var start = 0
        while start < channels.count {
            let batch = channels[start..<min(start + Self.batchSize, channels.count)]
            let keys = batch.map { ByteBuffer(bytes: channelPrefix + Array($0.utf8)) }
            connection.sendWithoutReply([ByteBuffer(string: command)] + keys)
            start += Self.batchSize
        }
    }
}

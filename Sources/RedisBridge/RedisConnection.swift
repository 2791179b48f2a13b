import NIOCore
import NIOPosix

/// One TCP connection to Redis, authenticated and with its database selected.
///
/// Thread-safe: commands may be sent from any thread; NIO serialises the writes on the
/// connection's event loop and replies come back in order. Nothing here ever blocks a thread.
public final class RedisConnection: Sendable {
    public let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects, then sends AUTH and SELECT as the URL asks.
    /// - Parameter commandTimeout: see ``RESPChannelHandler``: commands left without any reply
    ///   this long close the connection.
    /// - Parameter onMessage: makes this a pub/sub connection; called on the event loop for
    ///   every `message` push with the Redis channel and the payload.
    public static func connect(
        to url: RedisURL, group: any EventLoopGroup, connectTimeout: TimeAmount = .seconds(5),
        commandTimeout: TimeAmount? = nil, onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)? = nil,
        onDropped: (@Sendable (ByteBuffer) -> Void)? = nil
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RESPChannelHandler(onMessage: onMessage, commandTimeout: commandTimeout, onDropped: onDropped))
                }
            }
            .connect(host: url.host, port: url.port).get()
        let connection = RedisConnection(channel: channel)
        do {
            if let password = url.password {
                let credentials = [url.username, password].compactMap { $0 }
                _ = try await connection.send(["AUTH"] + credentials)
            }
            if url.database != 0 {
                _ = try await connection.send(["SELECT", String(url.database)])
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Sends one command and returns its reply; an error reply throws.
    public func send(_ arguments: [ByteBuffer]) async throws -> RESPValue {
        try await sendFuture(arguments).get()
    }

    public func send(_ arguments: [String]) async throws -> RESPValue {
        try await send(arguments.map { ByteBuffer(string: $0) })
    }

    /// Sends several commands in one write and returns their replies in order.
    public func pipeline(_ commands: [[ByteBuffer]]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let futures = sendFutures(commands)
        var replies: [RESPValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures { replies.append(try await future.get()) }
        return replies
    }

    /// Several commands in one write (one flush), their replies as futures in order: a
    /// pipeline for callers on an event loop.
    public func sendFutures(_ commands: [[ByteBuffer]]) -> [EventLoopFuture<RESPValue>] {
        guard commands.count > 1 else { return commands.map { writeCommand($0) } }
        var bytes = channel.allocator.buffer(capacity: commands.reduce(0) { $0 + $1.reduce(16) { $0 + $1.readableBytes + 16 } })
        for command in commands { RESPCommand.encode(command, into: &bytes) }
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        write(RESPRequest(bytes: bytes, reply: promises[0], pipelined: Array(promises.dropFirst())), failing: promises)
        return promises.map(\.futureResult)
    }

    /// The reply as a future, for callers on an event loop.
    public func sendFuture(_ arguments: [ByteBuffer]) -> EventLoopFuture<RESPValue> {
        writeCommand(arguments)
    }

    /// An error reply fails the future with ``RedisConnectionError/server(_:)``.
    private func writeCommand(_ arguments: [ByteBuffer], expects: RESPRequest.Answer = .reply) -> EventLoopFuture<RESPValue> {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RESPRequest(
            bytes: RESPCommand.encode(arguments, allocator: channel.allocator), reply: promise, expects: expects)
        write(request, failing: [promise])
        return promise.futureResult
    }

    /// A write that cannot happen (the connection closed, perhaps long enough ago that its
    /// handlers are gone) fails only its own promise: fail the replies with it, or they would
    /// be awaited forever — a node hung on shutdown when Redis went away under a burst of
    /// registry writes.
    private func write(_ request: RESPRequest, failing replies: [EventLoopPromise<RESPValue>]) {
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            for reply in replies { reply.fail(error) }
        }
        channel.writeAndFlush(request, promise: written)
    }

    /// Sends a pub/sub `SUBSCRIBE` or `UNSUBSCRIBE` (or the sharded `SSUBSCRIBE`,
    /// `SUNSUBSCRIBE`) of `channels` (at least one); succeeds once Redis confirmed every
    /// channel, fails with its error reply (an ACL `NOPERM`, a cluster's `MOVED`).
    public func pubsub(_ command: String, _ channels: [ByteBuffer]) -> EventLoopFuture<Void> {
        precondition(!channels.isEmpty, "an empty (UN)SUBSCRIBE means 'all channels' to Redis")
        let expects = RESPRequest.Answer.confirmations(channels.count, unsubscribing: command.hasSuffix("UNSUBSCRIBE"))
        return writeCommand([ByteBuffer(string: command)] + channels, expects: expects)
            .map { _ in }
    }

    public var isActive: Bool { channel.isActive }

    /// The event loop replies complete on.
    public var eventLoop: any EventLoop { channel.eventLoop }

    /// Completes when the connection closes, for whatever reason.
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    public func close() {
        channel.close(promise: nil)
    }
}

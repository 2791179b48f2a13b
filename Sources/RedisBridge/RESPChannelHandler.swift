import NIOCore

/// The Redis connection's pipeline handler: bytes in through ``HiredisReader``, replies
/// matched to requests in order, and pub/sub pushes handed to a callback.
///
/// Requests are pipelined: every write carries its own promise, appended to a FIFO, and each
/// reply completes the oldest one, so any number of commands may be in flight. On a pub/sub
/// connection a (UN)SUBSCRIBE of *n* channels is answered by *n* confirmation pushes, or by one
/// error reply (an ACL `NOPERM`) for the whole command: such commands wait in a FIFO of their
/// own, so a refusal is reported to the command that caused it instead of being dropped. A
/// reader failure poisons hiredis' reader, so the connection is closed and every waiter fails.
///
/// A connection whose replies stop while commands wait (a frozen or unreachable server, a
/// half-open TCP connection) is closed after `commandTimeout` without progress, failing every
/// waiter: callers get an error in bounded time instead of waiting for TCP to give up. One
/// check per connection and interval, not a timer per command.
public final class RESPChannelHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = RESPRequest
    public typealias OutboundOut = ByteBuffer

    /// What pub/sub connections receive: `message` pushes; other pushes are confirmations.
    public typealias PushHandler = (_ channel: ByteBuffer, _ payload: ByteBuffer) -> Void
    /// A sharded channel the server unsubscribed this connection from on its own: its slot
    /// moved to another Redis Cluster node.
    public typealias DropHandler = (_ channel: ByteBuffer) -> Void

    private let reader = HiredisReader()
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>?>()
    /// Pub/sub (UN)SUBSCRIBEs in flight: confirmations still due, whether they are
    /// unsubscribes, and the promise to complete.
    private var confirming = CircularBuffer<(remaining: Int, unsubscribing: Bool, promise: EventLoopPromise<RESPValue>?)>()
    private let onMessage: PushHandler?
    private let onDropped: DropHandler?
    private let commandTimeout: TimeAmount?
    /// When a reply last arrived, or the queue last went from empty to waiting.
    private var lastProgress = NIODeadline.now()
    private var watchdog: RepeatedTask?

    /// - Parameters:
    ///   - onMessage: set for a pub/sub connection; arrays that are pushes (`message`,
    ///     `subscribe`, `unsubscribe`) then bypass the reply queue.
    ///   - commandTimeout: how long commands may wait without any reply before the connection
    ///     is closed; `nil` never.
    ///   - onDropped: a `sunsubscribe` push no SUNSUBSCRIBE of ours asked for.
    public init(onMessage: PushHandler? = nil, commandTimeout: TimeAmount? = nil, onDropped: DropHandler? = nil) {
        self.onMessage = onMessage
        self.onDropped = onDropped
        self.commandTimeout = commandTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        guard let commandTimeout else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let every = TimeAmount.nanoseconds(max(commandTimeout.nanoseconds / 4, 1_000_000))
        watchdog = context.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
            let (handler, context) = loopBound.value
            guard handler.isWaiting, NIODeadline.now() - handler.lastProgress > commandTimeout else { return }
            context.fireErrorCaught(RedisConnectionError.timedOut)
            context.close(promise: nil)
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        watchdog?.cancel()
        watchdog = nil
    }

    private var isWaiting: Bool { !waiting.isEmpty || !confirming.isEmpty }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if commandTimeout != nil, !isWaiting { lastProgress = .now() }
        // A write after the connection closed fails its promise, and RedisConnection fails
        // the reply with it; no reply can come on a closed connection anyway.
        switch request.expects {
        case .reply:
            waiting.append(request.reply)
            for reply in request.pipelined { waiting.append(reply) }
        case .confirmations(let count, let unsubscribing): confirming.append((count, unsubscribing, request.reply))
        }
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if commandTimeout != nil { lastProgress = .now() }
        do {
            try reader.feed(unwrapInboundIn(data))
            while let value = try reader.next() {
                if let onMessage {
                    switch Self.push(value) {
                    case .message(let channel, let payload):
                        onMessage(channel, payload)
                        continue
                    case .confirmation:
                        confirmed()
                        continue
                    case .shardUnsubscribed(let channel):
                        // Ours when an unsubscribe waits for it; else Redis Cluster moved the
                        // channel's slot and dropped the subscription itself.
                        if let head = confirming.first, head.unsubscribing {
                            confirmed()
                        } else {
                            onDropped?(channel)
                        }
                        continue
                    case .other:
                        continue
                    case nil:
                        if case .error(let message) = value, !confirming.isEmpty {
                            confirming.removeFirst().promise?.fail(RedisConnectionError.server(message))
                            continue
                        }
                    }
                }
                guard let promise = waiting.popFirst() else { continue }
                // An error reply fails the command's promise here, so no caller needs a
                // future of its own per command to turn it into an error.
                if case .error(let message) = value {
                    promise?.fail(RedisConnectionError.server(message))
                } else {
                    promise?.succeed(value)
                }
            }
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    /// One (un)subscribe confirmation push: counts towards the oldest command in flight.
    private func confirmed() {
        guard !confirming.isEmpty else { return }
        confirming[confirming.startIndex].remaining -= 1
        if confirming[confirming.startIndex].remaining <= 0 {
            confirming.removeFirst().promise?.succeed(.simpleString("OK"))
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let error = RedisConnectionError.closed
        while let promise = waiting.popFirst() { promise?.fail(error) }
        while let pending = confirming.popFirst() { pending.promise?.fail(error) }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private enum Push {
        case message(ByteBuffer, ByteBuffer)
        /// A `subscribe`/`unsubscribe`/`ssubscribe` confirmation.
        case confirmation
        /// A `sunsubscribe`: a confirmation, or the server's own after a slot moved.
        case shardUnsubscribed(ByteBuffer)
        case other
    }

    /// The kind of push `value` is; `nil` for an ordinary reply.
    private static func push(_ value: RESPValue) -> Push? {
        guard case .array(let items) = value, let kind = items.first?.string else { return nil }
        switch kind {
        case "message", "smessage":
            guard items.count == 3, case .bulkString(let channel) = items[1], case .bulkString(let payload) = items[2]
            else { return .other }
            return .message(channel, payload)
        case "subscribe", "unsubscribe", "ssubscribe":
            return .confirmation
        case "sunsubscribe":
            guard items.count == 3, case .bulkString(let channel) = items[1] else { return .confirmation }
            return .shardUnsubscribed(channel)
        case "psubscribe", "punsubscribe", "pmessage":
            return .other
        default:
            return nil
        }
    }
}

/// A command on its way to Redis: its RESP bytes and the promise its answer completes.
public struct RESPRequest: Sendable {
    /// How Redis answers the command.
    public enum Answer: Sendable, Equatable {
        /// One reply.
        case reply
        /// A pub/sub (UN)SUBSCRIBE: one confirmation push per channel, or one error reply.
        case confirmations(Int, unsubscribing: Bool = false)
    }

    public var bytes: ByteBuffer
    public var reply: EventLoopPromise<RESPValue>?
    /// With `.reply`: the promises of further commands encoded in `bytes` after the first,
    /// in order — a pipeline written as one request (one write, one flush, one wakeup).
    public var pipelined: [EventLoopPromise<RESPValue>]
    public var expects: Answer

    public init(
        bytes: ByteBuffer, reply: EventLoopPromise<RESPValue>?, pipelined: [EventLoopPromise<RESPValue>] = [],
        expects: Answer = .reply
    ) {
        self.bytes = bytes
        self.reply = reply
        self.pipelined = pipelined
        self.expects = expects
    }
}

public enum RedisConnectionError: Error, Equatable, CustomStringConvertible {
    case closed
    case notConnected
    /// Commands waited longer than the connection's command timeout without any reply.
    case timedOut
    case server(String)

    public var description: String {
        switch self {
        case .closed: "connection to Redis closed"
        case .notConnected: "not connected to Redis"
        case .timedOut: "Redis did not answer in time"
        case .server(let message): "Redis error: \(message)"
        }
    }
}

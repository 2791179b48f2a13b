import NIOCore

/// The Redis connection's pipeline handler: bytes in through ``HiredisReader``, replies
/// matched to requests in order, and pub/sub pushes handed to a callback.
///
/// Requests are pipelined: every write carries its own promise, appended to a FIFO, and each
/// reply completes the oldest one, so any number of commands may be in flight. A reader
/// failure poisons hiredis' reader, so the connection is closed and every waiter fails.
public final class RESPChannelHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = RESPRequest
    public typealias OutboundOut = ByteBuffer

    /// What pub/sub connections receive: `message` pushes; other pushes are confirmations.
    public typealias PushHandler = (_ channel: ByteBuffer, _ payload: ByteBuffer) -> Void

    private let reader = HiredisReader()
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>?>()
    private let onMessage: PushHandler?

    /// - Parameter onMessage: set for a pub/sub connection; arrays that are pushes
    ///   (`message`, `subscribe`, `unsubscribe`) then bypass the reply queue.
    public init(onMessage: PushHandler? = nil) {
        self.onMessage = onMessage
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        // A write after the connection closed fails its promise, and RedisConnection fails
        // the reply with it; no reply can come on a closed connection anyway.
        if request.expectsReply { waiting.append(request.reply) }
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try reader.feed(unwrapInboundIn(data))
            while let value = try reader.next() {
                if let onMessage, let push = Self.push(value) {
                    if let message = push { onMessage(message.0, message.1) }
                    continue
                }
                guard let promise = waiting.popFirst() else { continue }
                promise?.succeed(value)
            }
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let error = RedisConnectionError.closed
        while let promise = waiting.popFirst() { promise?.fail(error) }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// `.some(message)` for a `message` push, `.some(nil)` for another push, `nil` for a reply.
    private static func push(_ value: RESPValue) -> (ByteBuffer, ByteBuffer)?? {
        guard case .array(let items) = value, let kind = items.first?.string else { return nil }
        switch kind {
        case "message":
            guard items.count == 3, case .bulkString(let channel) = items[1], case .bulkString(let payload) = items[2]
            else { return .some(nil) }
            return .some((channel, payload))
        case "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "pmessage":
            return .some(nil)
        default:
            return nil
        }
    }
}

/// A command on its way to Redis: its RESP bytes and, unless fire-and-forget, the promise
/// its reply completes.
public struct RESPRequest: Sendable {
    public var bytes: ByteBuffer
    public var reply: EventLoopPromise<RESPValue>?
    /// False for pub/sub (UN)SUBSCRIBE, whose confirmations arrive as pushes.
    public var expectsReply: Bool

    public init(bytes: ByteBuffer, reply: EventLoopPromise<RESPValue>?, expectsReply: Bool = true) {
        self.bytes = bytes
        self.reply = reply
        self.expectsReply = expectsReply
    }
}

public enum RedisConnectionError: Error, Equatable, CustomStringConvertible {
    case closed
    case notConnected
    case server(String)

    public var description: String {
        switch self {
        case .closed: "connection to Redis closed"
        case .notConnected: "not connected to Redis"
        case .server(let message): "Redis error: \(message)"
        }
    }
}

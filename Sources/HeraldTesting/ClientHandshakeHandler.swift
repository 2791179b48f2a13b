import NIOCore
import NIOWebSocket

/// The client side of the WebSocket opening handshake, done by hand so that tests control
/// every byte and see the status of refused upgrades.
///
/// Sends the upgrade request on activation, reads the response head, and on `101` replaces
/// itself with NIO's frame codec and the ``InboxHandler``, passing on any bytes that came
/// with the response (a server may send its first frame in the same segment).
final class ClientHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    enum Outcome: Sendable {
        case upgraded(FrameInbox)
        case refused(status: Int, head: String)
    }

    private let request: String
    private let promise: EventLoopPromise<Outcome>
    private var received: ByteBuffer?

    init(request: String, promise: EventLoopPromise<Outcome>) {
        self.request = request
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        if received == nil {
            received = chunk
        } else {
            received!.writeBuffer(&chunk)
        }
        guard var buffer = received,
            let end = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))
        else { return }
        let headLength = end.upperBound - buffer.readerIndex
        let head = buffer.readString(length: headLength) ?? ""
        let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        guard status == 101 else {
            promise.succeed(.refused(status: status, head: head))
            context.close(promise: nil)
            return
        }
        let inbox = FrameInbox(eventLoop: context.eventLoop)
        do {
            try context.pipeline.syncOperations.addHandlers(
                [
                    WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 26)),
                    InboxHandler(inbox: inbox),
                ],
                position: .after(self)
            )
        } catch {
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        promise.succeed(.upgraded(inbox))
        if buffer.readableBytes > 0 { context.fireChannelRead(NIOAny(buffer)) }
        received = nil
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

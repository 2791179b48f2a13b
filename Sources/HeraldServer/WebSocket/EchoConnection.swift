import HeraldCore
import NIOCore
import NIOWebSocket

/// `/ws/echo`: sends every text and binary message back unchanged.
///
/// A diagnostic for operators and the target of the RFC 6455 conformance run; it shares
/// ``FrameAssembler`` with `/ws`, so conformance measured here holds there too.
final class EchoConnection: WebSocketEndpoint {
    typealias InboundIn = WebSocketFrame

    private let outlet: RawFrameOutlet
    let maxMessageBytes: Int
    private var assembler: FrameAssembler
    private var closing = false

    init(outlet: RawFrameOutlet, maxMessageBytes: Int) {
        self.outlet = outlet
        self.maxMessageBytes = maxMessageBytes
        self.assembler = FrameAssembler(maxMessageBytes: maxMessageBytes)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closing else {
            if frame.opcode == .connectionClose { context.close(promise: nil) }
            return
        }
        switch assembler.frameReceived(frame) {
        case .none:
            break
        case .text(let buffer):
            send(ServerFrame.text(buffer.readableBytesView))
        case .binary(let buffer):
            send(ServerFrame.binary(buffer.readableBytesView))
        case .pong(let payload):
            send(ServerFrame.pong(payload.readableBytesView))
        case .peerClosed(let code):
            send(ServerFrame.close(code: code))
            context.close(promise: nil)
        case .fail(let code, let reason):
            fail(context: context, code, reason: reason)
        }
    }

    private func send(_ frame: ByteBuffer) {
        outlet.context?.writeAndFlush(NIOAny(frame), promise: nil)
    }

    func fail(context: ChannelHandlerContext, _ code: CloseCode, reason: String) {
        guard !closing else { return }
        closing = true
        send(ServerFrame.close(code: code.rawValue, reason: reason))
        let channel = context.channel
        context.eventLoop.scheduleTask(in: WebSocketConnection.closeTimeout) { channel.close(promise: nil) }
    }
}

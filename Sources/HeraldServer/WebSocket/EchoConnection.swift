import HeraldCore
import HeraldProtocol
import NIOCore
import NIOWebSocket

/// `/ws/echo`: sends every text and binary message back unchanged.
///
/// A diagnostic for operators and the target of the RFC 6455 conformance run; it shares
/// ``FrameAssembler`` and the closing rules of ``ConnectionStateMachine`` with `/ws`, so
/// conformance measured here holds there too.
final class EchoConnection: WebSocketEndpoint {
    typealias InboundIn = WebSocketFrame

    private var context: ChannelHandlerContext?
    let maxMessageBytes: Int
    private var assembler: FrameAssembler
    private var machine: ConnectionStateMachine
    private var closeTimer: Scheduled<Void>?

    init(maxMessageBytes: Int, rules: ConnectionStateMachine.Configuration) {
        self.maxMessageBytes = maxMessageBytes
        self.assembler = FrameAssembler(maxMessageBytes: maxMessageBytes)
        var rules = rules
        rules.pingInterval = nil
        self.machine = ConnectionStateMachine(configuration: rules, now: .now())
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch machine.frameReceived(isClose: frame.opcode == .connectionClose, now: .now()) {
        case .ignore: return
        case .closeSocket: context.close(promise: nil); return
        case .process: break
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
            perform(machine.peerClosed(code: code), context: context)
        case .fail(let code, let reason):
            fail(context: context, code, reason: reason)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        _ = machine.channelClosed()
        closeTimer?.cancel()
        context.fireChannelInactive()
    }

    private func send(_ frame: ByteBuffer) {
        context?.writeAndFlush(NIOAny(frame), promise: nil)
    }

    func fail(context: ChannelHandlerContext, _ code: CloseCode, reason: String) {
        perform(machine.close(code, reason: reason, error: nil, now: .now()), context: context)
    }

    private func perform(_ action: ConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .send, .refreshExpiry:
            break
        case .close(let code, let reason, _):
            send(ServerFrame.close(code: code.rawValue, reason: reason))
        case .answerClose(let code):
            send(ServerFrame.close(code: code))
            context.close(promise: nil)
        case .closeSocket:
            context.close(promise: nil)
        }
        guard closeTimer == nil, let deadline = machine.nextDeadline else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        closeTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (connection, context) = loopBound.value
            connection.perform(connection.machine.deadlineReached(now: .now()), context: context)
        }
    }
}

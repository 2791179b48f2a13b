import HeraldProtocol
import NIOCore
import NIOWebSocket
import Synchronization

/// Reads one connection's frames for ``HeraldClient``: decodes server messages, answers
/// `ping`s and protocol pings, completes the close handshake, and hands the first message
/// (the `welcome`) to whoever is waiting for it.
final class ClientConnectionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame

    private let continuation: AsyncStream<HeraldClient.Event>.Continuation
    /// Sees every server message first (the client's position bookkeeping).
    private let observe: @Sendable (ServerMessage) -> Void
    private let welcomeState = Mutex<(waiter: CheckedContinuation<ServerMessage, any Error>?, value: Result<ServerMessage, any Error>?)>((nil, nil))
    private let closeCodeState = Mutex<UInt16?>(nil)

    /// The code of the server's close frame, once one arrived.
    var closeCode: UInt16? { closeCodeState.withLock { $0 } }

    init(continuation: AsyncStream<HeraldClient.Event>.Continuation, observe: @escaping @Sendable (ServerMessage) -> Void) {
        self.continuation = continuation
        self.observe = observe
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            guard let message = try? ServerMessage.decode(frame.unmaskedData.readableBytesView) else { return }
            if case .ping = message {
                write(context: context, opcode: .text, data: ByteBuffer(string: #"{"type":"pong"}"#))
            }
            if !resolveWelcome(.success(message)) {
                observe(message)
                continuation.yield(.message(message))
            }
        case .ping:
            write(context: context, opcode: .pong, data: frame.unmaskedData)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self)
            closeCodeState.withLock { $0 = code }
            var reply = ByteBuffer()
            if let code { reply.writeInteger(code) }
            write(context: context, opcode: .connectionClose, data: reply)
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        _ = resolveWelcome(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Waits for the first message, up to `timeout`.
    func welcome(timeout: TimeAmount, on loop: any EventLoop) async throws -> ServerMessage {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ServerMessage, any Error>) in
            let ready = welcomeState.withLock { state -> Result<ServerMessage, any Error>? in
                if let value = state.value { return value }
                state.waiter = continuation
                return nil
            }
            if let ready {
                continuation.resume(with: ready)
                return
            }
            loop.scheduleTask(in: timeout) {
                _ = self.resolveWelcome(.failure(HeraldClient.ClientError.notConnected))
            }
        }
    }

    /// Delivers the first message to the welcome waiter; `false` once that has happened.
    private func resolveWelcome(_ result: Result<ServerMessage, any Error>) -> Bool {
        let (consumed, waiter) = welcomeState.withLock { state -> (Bool, CheckedContinuation<ServerMessage, any Error>?) in
            guard state.value == nil else { return (false, nil) }
            state.value = result
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume(with: result)
        return consumed
    }

    private func write(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
        context.writeAndFlush(NIOAny(frame), promise: nil)
    }
}

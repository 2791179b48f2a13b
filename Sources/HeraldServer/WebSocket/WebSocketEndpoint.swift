import HeraldCore
import HeraldProtocol
import NIOCore
import NIOWebSocket

/// What `/ws` and `/ws/echo` handle alike: the peer half-closing, and decoder errors.
protocol WebSocketEndpoint: ChannelInboundHandler {
    /// Largest frame the decoder accepts, for the 1009 reason text.
    var maxMessageBytes: Int { get }
    /// Sends a close frame with `code` and closes the connection after the handshake.
    func fail(context: ChannelHandlerContext, _ code: CloseCode, reason: String)
}

extension WebSocketEndpoint {
    /// Hummingbird enables half-closure on child channels; a WebSocket peer that shuts down
    /// its sending side is gone, so the connection closes rather than lingering half-open.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // The listener is shutting down and waits for every connection to end; notification
            // clients had their goodbye from ConnectionDrain already (this is for the rest), so
            // a close frame and no waiting for its answer.
            let goodbye = ServerFrame.close(code: CloseCode.goingAway.rawValue, reason: "server shutting down")
            context.writeAndFlush(NIOAny(goodbye), promise: nil)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// NIO's frame decoder reports oversized frames (1009) and malformed headers (1002).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error as? NIOWebSocketError {
        case .invalidFrameLength:
            fail(context: context, .messageTooBig, reason: "frame larger than \(maxMessageBytes) bytes")
        case .some:
            fail(context: context, .protocolError, reason: "malformed frame")
        case .none:
            context.close(promise: nil)
        }
    }
}

import NIOCore

/// A pass-through outbound handler placed first in a WebSocket pipeline, so that writes made
/// through its context reach the socket without crossing any other handler.
///
/// Herald writes frames it has already encoded (``HeraldCore/ServerFrame``) as plain
/// `ByteBuffer`s. NIO's `WebSocketFrameEncoder`, which the upgrader always installs, expects
/// `WebSocketFrame` values and cannot be removed, so writes enter the pipeline below it.
final class RawFrameOutlet: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }
}

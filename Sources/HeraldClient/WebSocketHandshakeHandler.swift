import Foundation
import NIOCore
import NIOSSL
import NIOPosix
import NIOWebSocket

/// The client side of the WebSocket opening handshake, done by hand so that callers control
/// the request and see the status of refused upgrades.
///
/// Sends the upgrade request on activation, reads the response head, and on `101` adds NIO's
/// frame codec plus the caller's handlers, passing on any bytes that came with the response
/// (a server may send its first frame in the same segment), then removes itself.
public final class WebSocketHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer

    public enum Outcome: Sendable {
        case upgraded
        case refused(status: Int, head: String)
    }

    private let request: String
    private let promise: EventLoopPromise<Outcome>
    private let install: (ChannelPipeline.SynchronousOperations) throws -> Void
    private var received: ByteBuffer?

    init(request: String, promise: EventLoopPromise<Outcome>, install: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void) {
        self.request = request
        self.promise = promise
        self.install = install
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        if received == nil {
            received = chunk
        } else {
            received!.writeBuffer(&chunk)
        }
        guard var buffer = received,
            let end = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))
        else { return }
        let head = buffer.readString(length: end.upperBound - buffer.readerIndex) ?? ""
        let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        guard status == 101 else {
            promise.succeed(.refused(status: status, head: head))
            context.close(promise: nil)
            return
        }
        do {
            let pipeline = context.pipeline.syncOperations
            try pipeline.addHandlers(
                [WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 26))],
                position: .after(self))
            try install(pipeline)
        } catch {
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        promise.succeed(.upgraded)
        if buffer.readableBytes > 0 { context.fireChannelRead(NIOAny(buffer)) }
        received = nil
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

/// Opens WebSocket connections with ``WebSocketHandshakeHandler``.
public enum WebSocketDialer {
    /// The server accepted the connection but did not answer the upgrade in time.
    public struct HandshakeTimedOut: Error, CustomStringConvertible {
        public var description: String { "no answer to the WebSocket upgrade" }
    }

    /// The server refused the upgrade with this HTTP status.
    public struct Refused: Error, CustomStringConvertible {
        public var status: Int
        public var head: String
        public var description: String { "upgrade refused with HTTP \(status)" }
    }

    /// Connects to `ws://host:port/path` and returns the upgraded channel, whose pipeline then
    /// holds NIO's frame codec followed by the handlers `install` added.
    /// - Parameters:
    ///   - connectTimeout: for the TCP (and TLS) connection, and again for the answer to the
    ///     upgrade request: a server that accepts and never answers must not hold the caller.
    ///   - localAddress: the source address (load generators spread connections over
    ///     several loopback addresses when one address's ports would run out).
    ///   - receiveBufferBytes: `SO_RCVBUF`, set before connecting (a small one stops the kernel
    ///     from absorbing megabytes for a client that does not read: slow-consumer tests).
    public static func connect(
        host: String, port: Int, path: String, headers: [(String, String)] = [], tls: TLSConfiguration? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, connectTimeout: TimeAmount = .seconds(10),
        localAddress: SocketAddress? = nil, receiveBufferBytes: Int? = nil,
        install: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) async throws -> any Channel {
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let loop = group.next()
        let promise = loop.makePromise(of: WebSocketHandshakeHandler.Outcome.self)
        let channel: any Channel
        do {
            let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
            // SNI takes a name, never an IP address.
            let serverName = host.contains(where: { $0.isLetter }) && !host.contains(":") ? host : nil
            var bootstrap = ClientBootstrap(group: loop).connectTimeout(connectTimeout)
            if let localAddress { bootstrap = bootstrap.bind(to: localAddress) }
            if let receiveBufferBytes {
                bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
            }
            channel = try await bootstrap
                .channelInitializer { [request] channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            WebSocketHandshakeHandler(request: request, promise: promise, install: install))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            throw error
        }
        let deadline = loop.scheduleTask(in: connectTimeout) {
            promise.fail(HandshakeTimedOut())
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        switch try await promise.futureResult.get() {
        case .upgraded: return channel
        case .refused(let status, let head): throw Refused(status: status, head: head)
        }
    }
}

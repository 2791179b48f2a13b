import HTTPTypes
import HeraldCore
import HeraldProtocol
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// Serves `POST /api/notify/{channel}` and `POST /api/broadcast` on the connection's event
/// loop, ahead of Hummingbird: the publish path without the async channel, the router, the
/// middleware chain and a Swift task per request (profiled at about a third of a publish's
/// user-space time). Everything else goes on to the router untouched.
///
/// Every publish rule is ``PublishEndpoint``'s, the chain the router's ``PublishRoutes`` run
/// too (API key, body limit, JSON, CORS, counting, logging); this handler adds only the
/// HTTP/1 framing — `Date` and `Server` headers, keep-alive and `Connection: close` — and
/// responses in request order however requests are pipelined (``FastPublishStateMachine``).
/// One difference: an HTTP/1.0 request without keep-alive is answered in HTTP/1.0 and the
/// connection closed, as RFC 9112 says; Hummingbird answers in HTTP/1.1 and keeps it open.
/// The REST suites run every test through both ways (their `.bothPublishPaths` trait).
final class FastPublishHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The publish chain, shared with the router's way in.
    private let endpoint: PublishEndpoint
    private var machine: FastPublishStateMachine
    /// A `read` held back while an answer is in progress.
    private var readPending = false
    private var context: ChannelHandlerContext?

    init(endpoint: PublishEndpoint) {
        self.endpoint = endpoint
        self.machine = FastPublishStateMachine(maxBodyBytes: endpoint.operation.configuration.maxBodyBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.received(unwrapInboundIn(data)), context: context)
    }

    private func perform(_ action: FastPublishStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .forward(let part):
            context.fireChannelRead(wrapInboundOut(part))
        case .serve(let head, let route, let body):
            serve(head, route, body: body, context: context)
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        context.write(data, promise: promise)
        if case .end = part {
            // The router answered: what waited behind its request comes next.
            replay(machine.routerResponded(), context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        if machine.holdsReads {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        guard readPending, !machine.holdsReads else { return }
        readPending = false
        context.read()
    }

    // MARK: Serving

    private func serve(_ head: HTTPRequestHead, _ route: FastPublishRoute, body: ByteBuffer?, context: ChannelHandlerContext) {
        let request = PublishEndpoint.Request(
            route: route, method: head.method.rawValue, target: head.uri,
            authorization: head.headers.first(name: "Authorization"), apiKey: head.headers.first(name: "X-API-Key"),
            idempotencyKey: head.headers.first(name: "Idempotency-Key"), origin: head.headers.first(name: "Origin"),
            remote: context.channel.remoteAddress, body: body, requestID: RequestID(), start: .now())
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        endpoint.serve(request, on: context.eventLoop) { answer in
            let handler = loopBound.value
            guard let context = handler.context else { return }
            handler.respond(to: head, answer, context: context)
        }
    }

    /// Writes the whole answer at once, then goes on with what waited.
    private func respond(to head: HTTPRequestHead, _ answer: PublishEndpoint.Answer, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        headers.add(name: "Content-Type", value: PublishEndpoint.Answer.contentType)
        for (name, value) in answer.cors { headers.add(name: name.rawName, value: value) }
        headers.add(name: "Content-Length", value: String(answer.body.readableBytes))
        headers.add(name: "Date", value: HTTPDate.now)
        headers.add(name: "Server", value: "Herald")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = answer.status
        let responseHead = HTTPResponseHead(
            version: head.version, status: HTTPResponseStatus(statusCode: status.code, reasonPhrase: status.reasonPhrase),
            headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(answer.body))), promise: nil)
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            // Close once the response is out.
            let closed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: closed)
            let channel = context.channel
            closed.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        guard keepAlive else { return }
        replay(machine.served(), context: context)
    }

    /// Carries out what waited behind an answer, outside a read: the router's async channel
    /// hands parts to its consumer at read-complete, so one is fired after forwarding.
    private func replay(_ actions: [FastPublishStateMachine.Action], context: ChannelHandlerContext) {
        var forwarded = false
        for action in actions {
            if case .forward = action { forwarded = true }
            perform(action, context: context)
        }
        if forwarded { context.fireChannelReadComplete() }
        resumeReading(context)
    }
}

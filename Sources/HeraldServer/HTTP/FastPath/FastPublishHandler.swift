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
/// It keeps every rule of the router's way: the API key (``APIKeyMiddleware/refusal(keys:authorization:apiKey:remote:)``),
/// CORS headers (``CORSPolicy``), the body limit, the request log line and
/// `herald_http_requests_total`, the same ``PublishOperation`` (same JSON, same errors in
/// the same order), `Date` and `Server` headers, keep-alive and `Connection: close`, and
/// responses in request order however requests are pipelined (``FastPublishStateMachine``).
/// One difference: an HTTP/1.0 request without keep-alive is answered in HTTP/1.0 and the
/// connection closed, as RFC 9112 says; Hummingbird answers in HTTP/1.1 and keeps it open.
/// The REST suites run every test through both ways (their `.bothPublishPaths` trait).
final class FastPublishHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Services: Sendable {
        let operation: PublishOperation
        let apiKeys: [[UInt8]]
        let cors: CORSPolicy
        let counters: RequestMetricsMiddleware.Counters
        let logger: Logger
    }

    private let services: Services
    private var machine: FastPublishStateMachine
    /// A `read` held back while an answer is in progress.
    private var readPending = false
    private var context: ChannelHandlerContext?

    init(services: Services) {
        self.services = services
        self.machine = FastPublishStateMachine(maxBodyBytes: services.operation.configuration.maxBodyBytes)
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
        let start = NIODeadline.now()
        let requestID = RequestID()
        if let refusal = APIKeyMiddleware.refusal(
            keys: services.apiKeys, authorization: head.headers.first(name: "Authorization"),
            apiKey: head.headers.first(name: "X-API-Key"), remote: context.channel.remoteAddress)
        {
            return respond(to: head, route, error: refusal, start: start, requestID: requestID, context: context)
        }
        let prepared: PublishOperation.Prepared
        do {
            prepared = try services.operation.prepare(route, body: body, idempotencyKey: head.headers.first(name: "Idempotency-Key"))
        } catch {
            return respond(to: head, route, error: error, start: start, requestID: requestID, context: context)
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        services.operation.run(prepared, on: context.eventLoop).whenComplete { result in
            let handler = loopBound.value
            guard let context = handler.context else { return }
            switch result {
            case .success(let body):
                handler.respond(to: head, route, status: .ok, body: body, start: start, requestID: requestID, context: context)
            case .failure(let error):
                let apiError = error as? APIError ?? APIError(.serviceUnavailable, .unavailable, "\(error)")
                handler.respond(to: head, route, error: apiError, start: start, requestID: requestID, context: context)
            }
        }
    }

    private func respond(
        to head: HTTPRequestHead, _ route: FastPublishRoute, error: APIError, start: NIODeadline, requestID: RequestID,
        context: ChannelHandlerContext
    ) {
        let body = ByteBuffer(bytes: APIErrorBody(error.error).jsonBytes())
        respond(to: head, route, status: error.status, body: body, start: start, requestID: requestID, context: context)
    }

    /// Writes the whole response at once, logs and counts it, then goes on with what waited.
    private func respond(
        to head: HTTPRequestHead, _ route: FastPublishRoute, status: HTTPResponse.Status, body: ByteBuffer,
        start: NIODeadline, requestID: RequestID, context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in services.cors.headers(for: head.headers.first(name: "Origin")) {
            headers.add(name: name.rawName, value: value)
        }
        headers.add(name: "Date", value: HTTPDate.now)
        headers.add(name: "Server", value: "Herald")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(
            version: head.version, status: HTTPResponseStatus(statusCode: status.code, reasonPhrase: status.reasonPhrase),
            headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            // Close once the response is out.
            let closed = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: closed)
            let channel = context.channel
            closed.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        services.counters.count(route: route.pattern, status: status.code)
        log(head, status: status.code, start: start, requestID: requestID)
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

    /// The router's request log line, with the request id Hummingbird would have given.
    private func log(_ head: HTTPRequestHead, status: Int, start: NIODeadline, requestID: RequestID) {
        guard services.logger.logLevel <= .info else { return }
        RequestLogLine.write(
            to: services.logger, level: .info, method: head.method.rawValue, path: String(head.uri.prefix { $0 != "?" }),
            status: status, start: start, metadata: ["hb.request.id": "\(requestID)"])
    }
}

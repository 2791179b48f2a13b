import HTTPTypes
import HeraldCore
import HeraldProtocol
import HeraldSupport
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOSSL
import NIOWebSocket

/// The per-connection channel setup of a node: the first request decides between HTTP/1.1
/// for REST and a WebSocket on `/ws` and `/ws/echo`.
///
/// ``FirstRequestHandler`` reads the first request head. A WebSocket handshake is answered
/// there and the frame handlers replace it in one step (no HTTP handlers to install and tear
/// down); the connection is then served entirely by synchronous NIO handlers
/// (``WebSocketConnection``, ``EchoConnection``) and `handle(value:)` returns at once, so no
/// Swift task stays alive per socket. Anything else gets the HTTP handlers and Hummingbird's
/// responder, except publishes, which ``FastPublishHandler`` serves in front of it. See
/// docs/architecture.md for the measurements behind this choice.
struct HeraldChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        /// The connection is served by plain handlers now (a WebSocket, or a refusal being
        /// written); nothing left to do.
        case handled
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    /// What a WebSocket handshake becomes once its endpoint has decided.
    enum Opening: Sendable {
        case open(WebSocketInstall)
        case refused(status: HTTPResponse.Status, error: ProtocolError)
    }

    /// Everything the WebSocket handlers of one connection are built from.
    struct WebSocketInstall: Sendable {
        var endpoint: Endpoint
        /// The outcome of verifying the handshake's `?token=`, if it had one.
        var handshake: Result<ClientIdentity, ProtocolError>?
        var backend: (clientID: String, verdict: BackendHooks.ConnectVerdict)?
        /// The `101 Switching Protocols` answer.
        var response: ByteBuffer
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    enum Endpoint {
        case notifications
        case echo
    }

    let responder: HTTPChannelHandler.Responder
    /// What every `/ws` connection is built with.
    let services: WebSocketConnection.Services
    /// The decision on every new connection, shared with SSE streams.
    let admission: Admission
    /// Connections per address still owing their first request head.
    let pending: PendingConnections
    /// The publish chain the fast path serves ahead of the router; `nil` with
    /// `HERALD_FAST_PUBLISH=false`.
    let fastPublish: PublishEndpoint?
    let logger: Logger

    var configuration: HeraldConfiguration { services.shared.configuration }
    private var verifier: TokenVerifier? { services.verifier }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture { try setupNow(channel: channel) }
    }

    /// Installs ``FirstRequestHandler``, the connection's only handler until its first request
    /// is read; `upgradeResult` says what the connection became. On the channel's event loop.
    func setupNow(channel: any Channel) throws -> Value {
        let promise = channel.eventLoop.makePromise(of: UpgradeResult.self)
        // Every connection has a deadline until it is useful, and one address may hold only
        // so many that are not yet: past that bound it is closed at once.
        let peer = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = pending.admit(peer)
        try channel.pipeline.syncOperations.addHandler(
            FirstRequestHandler(child: self, promise: promise, pendingAddress: admitted ? peer : nil))
        if !admitted {
            logger.debug("too many pending connections from one address", metadata: ["address": "\(peer)"])
            channel.close(promise: nil)
        }
        return Value(upgradeResult: promise.futureResult, channel: channel)
    }

    /// `ServerChildChannel`'s way in; ``NodeServer`` calls ``serve(_:)`` from the future instead,
    /// without a task per connection.
    func handle(value: Value, logger: Logger) async {
        guard let result = try? await value.upgradeResult.get() else { return }
        serve(result)
    }

    /// What a connection became, served: a WebSocket or a refusal needs nothing more; an HTTP
    /// connection gets Hummingbird's request loop, in a task on its own event loop (no thread
    /// hops between reading a request, publishing and answering).
    func serve(_ result: UpgradeResult) {
        guard case .notUpgraded(let http) = result else { return }
        Task(executorPreference: EventLoopTaskExecutor(http.channel.eventLoop)) {
            await handleHTTP(asyncChannel: http, logger: logger)
        }
    }

    /// The HTTP handlers, for a connection whose first request is not a WebSocket handshake.
    /// `pendingAddress`: the connection's place among the pending, which the HTTP deadline
    /// handler now holds.
    /// `since`: when the connection was accepted, where its header timeout starts.
    func installHTTP(on channel: any Channel, pendingAddress: String?, since accepted: NIODeadline) throws -> NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart> {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withServerUpgrade: nil, withErrorHandling: false, withOutboundHeaderValidation: false)
        let limits = configuration.connectionLimits
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try pipeline.addHandler(
            RequestHeadDeadlineHandler(
                machine: RequestHeadDeadline(headerTimeout: limits.headerTimeout, idleTimeout: limits.idleTimeout, now: accepted),
                pending: pending, address: pendingAddress),
            position: .after(decoder))
        if let fastPublish {
            try pipeline.addHandler(FastPublishHandler(endpoint: fastPublish))
        }
        try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: configuration.tls != nil))
        try pipeline.addHandler(HTTPConnectionStateHandler(logger: logger))
        return try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
            wrappingChannelSynchronously: channel,
            configuration: .init(isOutboundHalfClosureEnabled: true)
        )
    }

    /// Decides a WebSocket handshake: the path, then the ``Admission`` every connection passes,
    /// then the token or the backend's connect hook. `done` runs on the channel's event loop,
    /// at once when nothing needs waiting for.
    func open(_ request: WebSocketHandshake, channel: any Channel, done: @escaping @Sendable (Opening) -> Void) {
        let endpoint: Endpoint
        switch request.path {
        case "/ws": endpoint = .notifications
        case "/ws/echo": endpoint = .echo
        default:
            return done(.refused(status: .notFound, error: ProtocolError(.notFound, "no WebSocket endpoint at \(request.path)")))
        }
        // Both endpoints hold a socket, so both count against every connection limit.
        let peer = channel.remoteAddress?.ipAddress ?? "unknown"
        switch admission.decide(origin: request.header("Origin"), peer: peer, forwardedFor: request.headerValues("X-Forwarded-For")) {
        case .failure(let refusal):
            return done(.refused(status: HTTPResponse.Status(code: refusal.status), error: refusal.error))
        case .success(let ticket):
            channel.closeFuture.whenComplete { _ in ticket.release() }
        }
        let install = WebSocketInstall(endpoint: endpoint, handshake: nil, backend: nil, response: request.switchingProtocols())
        let token = endpoint == .notifications ? URI("/?" + request.query).queryParameters["token"].map(String.init) : nil
        if token == nil, endpoint == .notifications, let hooks = services.hooks, hooks.hasConnectHook {
            // No token: the backend's connect hook decides, before the handshake is answered;
            // the connection then opens as its user or closes with its code (4503 when it
            // could not be asked).
            let clientID = RandomID.make()
            let headers = hooks.forwardedHeaders { request.header($0) }
            channel.eventLoop.makeFutureWithTask {
                await hooks.connect(client: clientID, transport: .websocket, remoteAddress: peer, headers: headers)
            }.whenSuccess { verdict in
                var decided = install
                decided.backend = (clientID, verdict)
                done(.open(decided))
            }
            return
        }
        guard let token, let verifier else { return done(.open(install)) }
        // The handshake waits for the verdict (off the loop); the connection then opens
        // already authenticated, or closes at once with 4001/4002.
        channel.eventLoop.makeFutureWithTask {
            await verifier.verify(token)
        }.whenSuccess { verdict in
            var decided = install
            decided.handshake = verdict
            done(.open(decided))
        }
    }

    /// Answers a malformed handshake with its status and a JSON error, then closes.
    func refuse(_ refusal: WebSocketHandshake.Refusal, context: ChannelHandlerContext) {
        var extra: [(String, String)] = []
        if refusal.supportedVersion { extra.append(("Sec-WebSocket-Version", "13")) }
        refuse(status: HTTPResponse.Status(code: refusal.status), error: ProtocolError(refusal.code, refusal.message), extra: extra, context: context)
    }

    /// Answers a refused handshake with `status` and a JSON error, then closes.
    func refuse(status: HTTPResponse.Status, error: ProtocolError, extra: [(String, String)] = [], context: ChannelHandlerContext) {
        let body = APIErrorBody(error).jsonBytes()
        // NIO's table has every status's reason phrase (HTTPTypes only the common ones).
        let reason = HTTPResponseStatus(statusCode: status.code).reasonPhrase
        var head = "HTTP/1.1 \(status.code) \(reason)\r\nContent-Type: application/json\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n"
        if status == .tooManyRequests || status == .serviceUnavailable { head += "Retry-After: 1\r\n" }
        for (name, value) in extra { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var buffer = ByteBuffer()
        buffer.writeString(head)
        buffer.writeBytes(body)
        let channel = context.channel
        context.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The WebSocket handlers, in the place of the handshake's reader. Frames are written
    /// already encoded (``HeraldCore/ServerFrame``) from the connection's own context: no
    /// frame encoder is installed, so nothing stands between it and the socket (or TLS).
    func installWebSocket(_ install: WebSocketInstall, on channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        let handshake = install.handshake
        let backend = install.backend
        let high = configuration.sendQueueBytes
        let options = channel.syncOptions
        try options?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
        if let bytes = configuration.socketSendBuffer {
            try options?.setOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
        }
        try pipeline.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: configuration.maxMessageBytes)))
        switch install.endpoint {
        case .notifications:
            try pipeline.addHandler(
                WebSocketConnection(
                    services: services, handshake: handshake, backend: backend?.verdict,
                    clientID: backend?.clientID ?? RandomID.make(), logger: logger))
        case .echo:
            try pipeline.addHandler(
                EchoConnection(
                    maxMessageBytes: configuration.maxMessageBytes, rules: configuration.connectionRules))
        }
    }

}

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

/// The per-connection channel setup of a node: HTTP/1.1 for REST, upgraded in place to a
/// WebSocket on `/ws` and `/ws/echo`.
///
/// REST requests go to Hummingbird's responder as usual, except publishes, which
/// ``FastPublishHandler`` serves in front of it. A WebSocket connection, once
/// upgraded, is served entirely by synchronous NIO handlers (``WebSocketConnection``,
/// ``EchoConnection``): `handle(value:)` returns at once and no Swift task stays alive per
/// socket. See docs/architecture.md for the measurements behind this choice.
struct HeraldChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        /// The channel now runs WebSocket handlers; nothing left to do.
        case websocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// A WebSocket handshake we refuse with an HTTP error.
        case rejected(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Rejection)
    }

    struct Rejection: Error, Sendable {
        var status: HTTPResponse.Status
        var error: ProtocolError
    }

    /// What the handshake decided for a `/ws` connection.
    struct Handshake {
        var endpoint: Endpoint
        /// The `?token=` of the handshake, to verify before the upgrade completes.
        var token: String?
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
        channel.eventLoop.makeCompletedFuture {
            let rejection = NIOLoopBoundBox<Rejection?>(nil, eventLoop: channel.eventLoop)
            let endpoint = NIOLoopBoundBox<Endpoint?>(nil, eventLoop: channel.eventLoop)
            let handshake = NIOLoopBoundBox<Result<ClientIdentity, ProtocolError>?>(nil, eventLoop: channel.eventLoop)
            let backend = NIOLoopBoundBox<(clientID: String, verdict: BackendHooks.ConnectVerdict)?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: configuration.maxMessageBytes,
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    switch self.decide(head, channel: channel) {
                    case .failure(let refused):
                        rejection.value = refused
                        return channel.eventLoop.makeSucceededFuture(nil)
                    case .success(let handshakeResult):
                        endpoint.value = handshakeResult.endpoint
                        if handshakeResult.token == nil, handshakeResult.endpoint == .notifications,
                            let hooks = self.services.hooks, hooks.hasConnectHook
                        {
                            // No token: the backend's connect hook decides, before the upgrade
                            // completes; the connection then opens as its user or closes with
                            // its code (4503 when it could not be asked).
                            let clientID = RandomID.make()
                            let peer = channel.remoteAddress?.ipAddress ?? "unknown"
                            let headers = hooks.forwardedHeaders { head.headers.first(name: $0) }
                            return channel.eventLoop.makeFutureWithTask {
                                await hooks.connect(client: clientID, transport: .websocket, remoteAddress: peer, headers: headers)
                            }.map { verdict in
                                backend.value = (clientID, verdict)
                                return HTTPHeaders()
                            }
                        }
                        guard let token = handshakeResult.token, let verifier = self.verifier else {
                            return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                        }
                        // The upgrade waits for the verdict (off the loop); the connection
                        // then opens already authenticated, or closes at once with 4001/4002.
                        return channel.eventLoop.makeFutureWithTask {
                            await verifier.verify(token)
                        }.map { verdict in
                            handshake.value = verdict
                            return HTTPHeaders()
                        }
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        try self.installWebSocket(endpoint.value ?? .echo, handshake: handshake.value, backend: backend.value, on: channel)
                        return UpgradeResult.websocket
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let fastPublish = self.fastPublish, rejection.value == nil {
                            try channel.pipeline.syncOperations.addHandler(FastPublishHandler(endpoint: fastPublish))
                        }
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: configuration.tls != nil))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if let refused = rejection.value {
                            return UpgradeResult.rejected(asyncChannel, refused)
                        }
                        return UpgradeResult.notUpgraded(asyncChannel)
                    }
                }
            )
            var pipelineConfiguration = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: upgradeConfiguration)
            pipelineConfiguration.enablePipelining = false
            pipelineConfiguration.enableErrorHandling = false
            pipelineConfiguration.enableResponseHeaderValidation = false
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: pipelineConfiguration
            )
            try addDeadline(to: channel)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .websocket:
                // The upgrade handler held back reads while it worked and is gone now.
                value.channel.read()
            case .notUpgraded(let http):
                // Serve the connection's requests on its own event loop (no thread hops).
                await withTaskExecutorPreference(EventLoopTaskExecutor(http.channel.eventLoop)) {
                    await handleHTTP(asyncChannel: http, logger: logger)
                }
            case .rejected(let http, let rejection):
                await reject(http, rejection)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }

    /// Every connection has a deadline until it is useful (``RequestHeadDeadline``), and one
    /// address may hold only so many that are not yet: past that bound it is closed at once.
    private func addDeadline(to channel: any Channel) throws {
        let limits = configuration.connectionLimits
        let peer = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = pending.admit(peer)
        let pipeline = channel.pipeline.syncOperations
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try pipeline.addHandler(
            RequestHeadDeadlineHandler(
                machine: RequestHeadDeadline(headerTimeout: limits.headerTimeout, idleTimeout: limits.idleTimeout, now: .now()),
                pending: pending, address: admitted ? peer : nil),
            position: .after(decoder))
        if !admitted {
            logger.debug("too many pending connections from one address", metadata: ["address": "\(peer)"])
            channel.close(promise: nil)
        }
    }

    /// Chooses the WebSocket endpoint for a handshake, or says why it is refused: the path,
    /// then the ``Admission`` every connection passes. Token verification comes after both.
    private func decide(_ head: HTTPRequestHead, channel: any Channel) -> Result<Handshake, Rejection> {
        let uri = URI(head.uri)
        let endpoint: Endpoint
        switch uri.path {
        case "/ws": endpoint = .notifications
        case "/ws/echo": endpoint = .echo
        default:
            return .failure(Rejection(status: .notFound, error: ProtocolError(.notFound, "no WebSocket endpoint at \(uri.path)")))
        }
        // Both endpoints hold a socket, so both count against every connection limit.
        let verdict = admission.decide(
            origin: head.headers.first(name: "Origin"), peer: channel.remoteAddress?.ipAddress ?? "unknown",
            forwardedFor: head.headers["X-Forwarded-For"])
        switch verdict {
        case .failure(let refusal):
            return .failure(Rejection(status: HTTPResponse.Status(code: refusal.status), error: refusal.error))
        case .success(let ticket):
            channel.closeFuture.whenComplete { _ in ticket.release() }
        }
        let token = endpoint == .notifications ? uri.queryParameters["token"].map(String.init) : nil
        return .success(Handshake(endpoint: endpoint, token: token))
    }

    private func installWebSocket(
        _ endpoint: Endpoint, handshake: Result<ClientIdentity, ProtocolError>?,
        backend: (clientID: String, verdict: BackendHooks.ConnectVerdict)?, on channel: any Channel
    ) throws {
        let outlet = RawFrameOutlet()
        let pipeline = channel.pipeline.syncOperations
        // The WebSocket is useful now; its heartbeat rules take over from the HTTP deadlines.
        if let deadline = try? pipeline.handler(type: RequestHeadDeadlineHandler.self) {
            pipeline.removeHandler(deadline, promise: nil)
        }
        // Raw frames must still pass through TLS when there is TLS.
        if let tls = try? pipeline.handler(type: NIOSSLServerHandler.self) {
            try pipeline.addHandler(outlet, position: .after(tls))
        } else {
            try pipeline.addHandler(outlet, position: .first)
        }
        let high = configuration.sendQueueBytes
        let options = channel.syncOptions
        try options?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
        if let bytes = configuration.socketSendBuffer {
            try options?.setOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
        }
        // The async server bootstrap turns autoRead off (NIOAsyncChannel reads on demand); a
        // WebSocket served by plain handlers reads whenever data arrives.
        try options?.setOption(ChannelOptions.autoRead, value: true)
        switch endpoint {
        case .notifications:
            try pipeline.addHandler(
                WebSocketConnection(
                    services: services, outlet: outlet, handshake: handshake, backend: backend?.verdict,
                    clientID: backend?.clientID ?? RandomID.make(), logger: logger))
        case .echo:
            try pipeline.addHandler(
                EchoConnection(
                    outlet: outlet, maxMessageBytes: configuration.maxMessageBytes, rules: configuration.connectionRules))
        }
    }

    private func reject(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, _ rejection: Rejection) async {
        let body = ByteBuffer(bytes: APIErrorBody(rejection.error).jsonBytes())
        var head = HTTPResponse(
            status: rejection.status,
            headerFields: [.contentType: "application/json", .contentLength: "\(body.readableBytes)", .connection: "close"]
        )
        if rejection.status == .tooManyRequests || rejection.status == .serviceUnavailable {
            head.headerFields[.retryAfter] = "1"
        }
        try? await http.executeThenClose { _, outbound in
            try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
        }
    }
}

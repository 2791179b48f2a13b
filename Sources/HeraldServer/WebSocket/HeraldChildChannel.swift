import HTTPTypes
import HeraldCore
import HeraldProtocol
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
    struct Admission {
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
    let slots: ConnectionSlots
    let gate: ConnectionGate
    /// The REST fast path's shared parts; `nil` with `HERALD_FAST_PUBLISH=false`.
    let fastPublish: FastPublishHandler.Services?
    let logger: Logger

    var configuration: HeraldConfiguration { services.shared.configuration }
    private var verifier: TokenVerifier? { services.verifier }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let rejection = NIOLoopBoundBox<Rejection?>(nil, eventLoop: channel.eventLoop)
            let endpoint = NIOLoopBoundBox<Endpoint?>(nil, eventLoop: channel.eventLoop)
            let handshake = NIOLoopBoundBox<Result<ClientIdentity, ProtocolError>?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: configuration.maxMessageBytes,
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    switch self.decide(head, channel: channel) {
                    case .failure(let refused):
                        rejection.value = refused
                        return channel.eventLoop.makeSucceededFuture(nil)
                    case .success(let admission):
                        endpoint.value = admission.endpoint
                        guard let token = admission.token, let verifier = self.verifier else {
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
                        try self.installWebSocket(endpoint.value ?? .echo, handshake: handshake.value, on: channel)
                        return UpgradeResult.websocket
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let fastPublish = self.fastPublish, rejection.value == nil {
                            try channel.pipeline.syncOperations.addHandler(FastPublishHandler(services: fastPublish))
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

    /// Chooses the WebSocket endpoint for a handshake, or says why it is refused.
    ///
    /// Checks run cheapest and least revealing first: origin, path, the per-address and rate
    /// limits, then the node's connection cap. Token verification comes after all of them.
    private func decide(_ head: HTTPRequestHead, channel: any Channel) -> Result<Admission, Rejection> {
        let uri = URI(head.uri)
        let path = uri.path
        // Browsers always send Origin on WebSocket handshakes: refuse pages from other sites
        // (cross-site WebSocket hijacking). Clients without Origin are not browsers.
        if !configuration.allowedOrigins.isEmpty, let origin = head.headers.first(name: "Origin"),
            !configuration.allowedOrigins.contains(origin)
        {
            return .failure(Rejection(status: .forbidden, error: ProtocolError(.forbidden, "origin \(origin) is not allowed")))
        }
        let endpoint: Endpoint
        switch path {
        case "/ws": endpoint = .notifications
        case "/ws/echo": endpoint = .echo
        default:
            return .failure(Rejection(status: .notFound, error: ProtocolError(.notFound, "no WebSocket endpoint at \(path)")))
        }
        // Both endpoints hold a socket, so both count against every connection limit.
        let address = clientAddress(head, channel: channel)
        switch gate.admit(address) {
        case .admitted:
            break
        case .tooManyFromAddress(let limit):
            return .failure(Rejection(status: .tooManyRequests, error: ProtocolError(
                .tooManyConnections, "at most \(limit) connections per client address")))
        case .tooFast:
            return .failure(Rejection(status: .tooManyRequests, error: ProtocolError(
                .tooManyConnections, "the node accepts new connections at a limited rate; retry shortly")))
        }
        guard slots.reserve(max: configuration.maxConnections) else {
            gate.release(address)
            let reason = slots.isAccepting ? "connection limit of \(configuration.maxConnections) reached" : "node is shutting down"
            return .failure(Rejection(status: .serviceUnavailable, error: ProtocolError(.unavailable, reason)))
        }
        let (slots, gate) = (self.slots, self.gate)
        channel.closeFuture.whenComplete { _ in
            slots.release()
            gate.release(address)
        }
        let token = endpoint == .notifications ? uri.queryParameters["token"].map(String.init) : nil
        return .success(Admission(endpoint: endpoint, token: token))
    }

    private func clientAddress(_ head: HTTPRequestHead, channel: any Channel) -> String {
        let peer = channel.remoteAddress?.ipAddress ?? "unknown"
        return ClientAddress.resolve(
            peer: peer, forwardedFor: head.headers["X-Forwarded-For"],
            trustedProxies: configuration.connectionLimits.trustedProxies)
    }

    private func installWebSocket(
        _ endpoint: Endpoint, handshake: Result<ClientIdentity, ProtocolError>?, on channel: any Channel
    ) throws {
        let outlet = RawFrameOutlet()
        let pipeline = channel.pipeline.syncOperations
        // Raw frames must still pass through TLS when there is TLS.
        if let tls = try? pipeline.handler(type: NIOSSLServerHandler.self) {
            try pipeline.addHandler(outlet, position: .after(tls))
        } else {
            try pipeline.addHandler(outlet, position: .first)
        }
        let high = configuration.sendQueueBytes
        let options = channel.syncOptions
        try options?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
        // The async server bootstrap turns autoRead off (NIOAsyncChannel reads on demand); a
        // WebSocket served by plain handlers reads whenever data arrives.
        try options?.setOption(ChannelOptions.autoRead, value: true)
        switch endpoint {
        case .notifications:
            try pipeline.addHandler(
                WebSocketConnection(services: services, outlet: outlet, handshake: handshake, logger: logger))
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

import HTTPTypes
import HeraldCore
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// The per-connection channel setup of a node: HTTP/1.1 for REST, upgraded in place to a
/// WebSocket on `/ws` and `/ws/echo`.
///
/// REST requests go to Hummingbird's responder as usual. A WebSocket connection, once
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

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    enum Endpoint {
        case notifications
        case echo
    }

    let responder: HTTPChannelHandler.Responder
    let hub: Hub
    let configuration: HeraldConfiguration
    let logger: Logger

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let rejection = NIOLoopBoundBox<Rejection?>(nil, eventLoop: channel.eventLoop)
            let endpoint = NIOLoopBoundBox<Endpoint?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: configuration.maxMessageBytes,
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        switch self.decide(head, channel: channel) {
                        case .success(let chosen):
                            endpoint.value = chosen
                            return HTTPHeaders()
                        case .failure(let refused):
                            rejection.value = refused
                            return nil
                        }
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        try self.installWebSocket(endpoint.value ?? .echo, on: channel)
                        return UpgradeResult.websocket
                    }
                }
            )
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
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
                await handleHTTP(asyncChannel: http, logger: logger)
            case .rejected(let http, let rejection):
                await reject(http, rejection)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }

    /// Chooses the WebSocket endpoint for a handshake, or says why it is refused.
    private func decide(_ head: HTTPRequestHead, channel: any Channel) -> Result<Endpoint, Rejection> {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        // Browsers always send Origin on WebSocket handshakes: refuse pages from other sites
        // (cross-site WebSocket hijacking). Clients without Origin are not browsers.
        if !configuration.allowedOrigins.isEmpty, let origin = head.headers.first(name: "Origin"),
            !configuration.allowedOrigins.contains(origin)
        {
            return .failure(Rejection(status: .forbidden, error: ProtocolError(.forbidden, "origin \(origin) is not allowed")))
        }
        switch path {
        case "/ws":
            guard hub.reserveConnection(max: configuration.maxConnections) else {
                let reason = hub.isAccepting ? "connection limit of \(configuration.maxConnections) reached" : "node is shutting down"
                return .failure(Rejection(status: .serviceUnavailable, error: ProtocolError(.unavailable, reason)))
            }
            let hub = self.hub
            channel.closeFuture.whenComplete { _ in hub.releaseConnection() }
            return .success(.notifications)
        case "/ws/echo":
            return .success(.echo)
        default:
            return .failure(Rejection(status: .notFound, error: ProtocolError(.notFound, "no WebSocket endpoint at \(path)")))
        }
    }

    private func installWebSocket(_ endpoint: Endpoint, on channel: any Channel) throws {
        let outlet = RawFrameOutlet()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(outlet, position: .first)
        let high = configuration.sendQueueBytes
        let options = channel.syncOptions
        try options?.setOption(ChannelOptions.writeBufferWaterMark, value: .init(low: high / 2, high: high))
        // The async server bootstrap turns autoRead off (NIOAsyncChannel reads on demand); a
        // WebSocket served by plain handlers reads whenever data arrives.
        try options?.setOption(ChannelOptions.autoRead, value: true)
        switch endpoint {
        case .notifications:
            try pipeline.addHandler(
                WebSocketConnection(hub: hub, outlet: outlet, configuration: configuration, logger: logger)
            )
        case .echo:
            try pipeline.addHandler(EchoConnection(outlet: outlet, maxMessageBytes: configuration.maxMessageBytes))
        }
    }

    private func reject(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, _ rejection: Rejection) async {
        let body = ByteBuffer(bytes: APIErrorBody(rejection.error).jsonBytes())
        let head = HTTPResponse(
            status: rejection.status,
            headerFields: [.contentType: "application/json", .contentLength: "\(body.readableBytes)", .connection: "close"]
        )
        try? await http.executeThenClose { _, outbound in
            try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
        }
    }
}

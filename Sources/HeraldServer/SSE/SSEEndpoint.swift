import HTTPTypes
import HeraldCore
import HeraldProtocol
import HeraldSupport
import Hummingbird
import Logging
import NIOCore

/// `GET /sse?channel=a&channel=b`: the notifications of those channels as Server-Sent Events,
/// for browsers (`EventSource` reconnects by itself) and proxies that break WebSockets.
///
/// Everything is checked before the stream starts, in this order, and refused with a JSON
/// error: no or a bad channel (400); then the ``Admission`` every WebSocket passes — an origin
/// not allowed (403), the per-address and rate limits (429), the node's connection cap or
/// shutdown (503); then the token — a bad one (401), a channel it does not grant (403). A
/// token's `exp` also ends the stream while it is open (see ``SSEConnection``).
/// `Last-Event-ID` (or `?lastEventId=`) resumes every channel from the position it names.
///
/// An `EventSource` gives up for good on any status but 200, so the *transient* refusals
/// (429, 503) of a request that accepts `text/event-stream` are sent as a short stream
/// instead: `retry:` with a delay, one `error` event with the same code, end of stream. The
/// browser then reconnects by itself, most likely to another node, with its `Last-Event-ID`.
struct SSEEndpoint {
    let joiner: ChannelJoiner
    let admission: Admission
    /// `nil` when the node verifies no tokens.
    let verifier: TokenVerifier?
    let configuration: HeraldConfiguration
    let metrics: NodeMetrics
    let logger: Logger
    /// `nil` when no backend hook is configured.
    let hooks: BackendHooks?
    let namespaces: NamespaceRules

    /// Most channels one stream may carry (every event's id names them all).
    static let maxChannels = 100

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/sse") { request, context in try await open(request, context) }
    }

    private func open(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        do {
            return try await stream(request, context)
        } catch let error as APIError where error.isTransient && Self.acceptsEventStream(request) {
            return Self.retryLater(error, origin: request.headers[.origin], configuration: configuration)
        } catch let refusal as BackendRefusal where Self.acceptsEventStream(request) {
            // An EventSource would retry a non-200 status forever: the backend's word goes in
            // an event, and `disconnect` tells herald.js not to come back as is.
            return Self.refused(refusal, origin: request.headers[.origin], configuration: configuration)
        } catch let refusal as BackendRefusal {
            throw APIError(.forbidden, refusal.error.code, refusal.error.error)
        }
    }

    private func stream(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let origin = request.headers[.origin]
        var seen = Set<String>()
        let channels = request.uri.queryParameters.getAll("channel").map { String($0) }.filter { seen.insert($0).inserted }
        guard !channels.isEmpty else {
            throw APIError(.badRequest, .missingField, "name at least one channel: /sse?channel=news")
        }
        guard channels.count <= min(Self.maxChannels, configuration.sessionLimits.maxSubscriptions) else {
            throw APIError(
                .badRequest, .tooManySubscriptions,
                "at most \(min(Self.maxChannels, configuration.sessionLimits.maxSubscriptions)) channels per stream")
        }
        for channel in channels {
            try RequestValidation.channel(channel)
            guard namespaces.policy(for: channel) != nil else {
                throw APIError(.badRequest, .unknownNamespace, "channel \(channel) is in no namespace this node knows")
            }
        }
        let resume = try Self.resumePositions(request)
        // The admission of WebSockets; the place is held until the stream ends.
        let ticket: Admission.Ticket
        switch admission.decide(
            origin: origin, peer: context.remoteAddress?.ipAddress ?? "unknown",
            forwardedFor: request.headers[values: .xForwardedFor])
        {
        case .success(let admitted): ticket = admitted
        case .failure(let refusal): throw APIError(refusal)
        }
        // Verified after admission, as a WebSocket's `?token=` is.
        let access: ChannelAccess
        let clientID = RandomID.make()
        do {
            access = try await self.access(request, clientID: clientID, peer: context.remoteAddress?.ipAddress ?? "unknown")
            for channel in channels {
                guard let policy = namespaces.policy(for: channel) else { continue }
                if policy.subscribeHook {
                    try await askSubscribeHook(channel, clientID: clientID, user: access.userID)
                } else if !access.maySubscribe(channel, isPrivate: policy.isPrivate) {
                    throw APIError(.forbidden, .forbidden, "your token does not grant channel \(channel)")
                }
            }
        } catch {
            ticket.release()
            throw error
        }

        let connection = SSEConnection(
            clientID: clientID, joiner: joiner, configuration: configuration, metrics: metrics, access: access,
            namespaces: namespaces, hooks: hooks, loop: context.eventLoop, logger: logger)
        // A client that hangs up is noticed by the next write, a keep-alive at the latest (the
        // server keeps half-closed HTTP connections open, so there is no earlier signal).
        context.closeFuture.whenComplete { _ in connection.loop.execute { connection.close() } }
        return Response(status: .ok, headers: Self.streamHeaders(origin: origin, configuration), body: ResponseBody { writer in
            defer { ticket.release() }
            try? await connection.loop.flatSubmit { connection.start(channels: channels, resume: resume) }.get()
            do {
                for await chunk in connection.events {
                    try await writer.write(chunk)
                    connection.written(chunk.readableBytes)
                }
                try await writer.finish(nil)
            } catch {
                // The client went away.
            }
            try? await connection.loop.submit { connection.finished() }.get()
        })
    }

    private static func streamHeaders(origin: String?, _ configuration: HeraldConfiguration) -> HTTPFields {
        var headers: HTTPFields = [
            .contentType: "text/event-stream", .cacheControl: "no-cache",
            // nginx: stream each event instead of buffering the response.
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        if let origin {
            headers[.accessControlAllowOrigin] = configuration.allowedOrigins.isEmpty ? "*" : origin
            headers[.vary] = "Origin"
        }
        return headers
    }

    /// `EventSource` sends `Accept: text/event-stream`; `curl` and friends get the JSON error.
    static func acceptsEventStream(_ request: Request) -> Bool {
        request.headers[values: .accept].contains { $0.lowercased().contains("text/event-stream") }
    }

    /// A refusal an `EventSource` survives: "come back in a moment", then the end of the stream.
    /// The delay is spread so that refused browsers do not return all at once.
    static func retryLater(_ error: APIError, origin: String?, configuration: HeraldConfiguration) -> Response {
        var body = SSEEvent.retry(milliseconds: Int.random(in: 1000..<3000))
        var event = SSEEvent.event(
            name: "error", data: ByteBuffer(bytes: ServerMessage.error(error.error).jsonBytes()).readableBytesView)
        body.writeBuffer(&event)
        return Response(status: .ok, headers: streamHeaders(origin: origin, configuration), body: ResponseBody(byteBuffer: body))
    }

    /// The subscribe hook's verdict on one of the stream's channels; throws a refusal.
    private func askSubscribeHook(_ channel: String, clientID: String, user: String?) async throws {
        guard let hooks else {
            throw APIError(.serviceUnavailable, .temporarilyUnavailable, "no subscribe hook is configured")
        }
        switch await hooks.subscribe(client: clientID, user: user, channel: channel) {
        case .allowed: return
        case .refused(let message): throw APIError(.forbidden, .forbidden, message)
        case .unavailable(let message): throw APIError(.serviceUnavailable, .temporarilyUnavailable, message)
        }
    }

    /// The connect hook's refusal of a stream, with the backend's close code.
    struct BackendRefusal: Error {
        var code: CloseCode
        var error: ProtocolError
    }

    /// The backend refused the stream: an `error` event with its message, a `disconnect`
    /// event with its code, then the end of the stream.
    static func refused(_ refusal: BackendRefusal, origin: String?, configuration: HeraldConfiguration) -> Response {
        var body = SSEEvent.event(name: "error", data: ByteBuffer(bytes: ServerMessage.error(refusal.error).jsonBytes()).readableBytesView)
        let message = ServerMessage.disconnect(code: Int(refusal.code.rawValue), reason: refusal.error.code.rawValue)
        var disconnect = SSEEvent.event(name: "disconnect", data: ByteBuffer(bytes: message.jsonBytes()).readableBytesView)
        body.writeBuffer(&disconnect)
        return Response(status: .ok, headers: streamHeaders(origin: origin, configuration), body: ResponseBody(byteBuffer: body))
    }

    /// `Last-Event-ID` (what `EventSource` sends when it reconnects), or `?lastEventId=`.
    static func resumePositions(_ request: Request) throws -> [String: StreamPosition] {
        let raw = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["lastEventId"].map(String.init)
        guard let raw, !raw.isEmpty else { return [:] }
        guard let positions = ResumeToken.decode(raw) else {
            throw APIError(.badRequest, .invalidField, "Last-Event-ID is not a position this node gave out")
        }
        return positions
    }

    /// What the request's `?token=` (or `Authorization: Bearer`) allows, as for a WebSocket;
    /// without a token, what the connect hook says, when there is one.
    private func access(_ request: Request, clientID: String, peer: String) async throws -> ChannelAccess {
        var token = request.uri.queryParameters["token"].map(String.init)
        if token == nil, verifier != nil, let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            token = String(authorization.dropFirst(7))
        }
        if token == nil, let hooks, hooks.hasConnectHook {
            let headers = hooks.forwardedHeaders { name in HTTPField.Name(name).flatMap { request.headers[$0] } }
            switch await hooks.connect(client: clientID, transport: .sse, remoteAddress: peer, headers: headers) {
            case .accepted(let identity, _):
                return .backend(identity)
            case .refused(let code, let message):
                throw BackendRefusal(code: code, error: ProtocolError(.forbidden, message))
            case .unavailable:
                throw APIError(.serviceUnavailable, .temporarilyUnavailable, "the backend could not be asked; try again")
            }
        }
        guard let verifier else { return .open }
        guard let token else {
            guard configuration.auth.allowAnonymous else {
                throw APIError(.unauthorized, .unauthorized, "this node requires a token: /sse?channel=…&token=JWT")
            }
            return .anonymous
        }
        switch await verifier.verify(token) {
        case .success(let identity): return .token(identity)
        case .failure(let error): throw APIError(.unauthorized, error.code, error.error)
        }
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

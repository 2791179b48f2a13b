import HTTPTypes
import HeraldCore
import HeraldProtocol
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
        for channel in channels { try RequestValidation.channel(channel) }
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
        do {
            access = try await self.access(request)
            for channel in channels where !access.maySubscribe(channel) {
                throw APIError(.forbidden, .forbidden, "your token does not grant channel \(channel)")
            }
        } catch {
            ticket.release()
            throw error
        }

        let connection = SSEConnection(
            joiner: joiner, configuration: configuration, metrics: metrics, access: access,
            loop: context.eventLoop, logger: logger)
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

    /// `Last-Event-ID` (what `EventSource` sends when it reconnects), or `?lastEventId=`.
    static func resumePositions(_ request: Request) throws -> [String: StreamPosition] {
        let raw = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["lastEventId"].map(String.init)
        guard let raw, !raw.isEmpty else { return [:] }
        guard let positions = ResumeToken.decode(raw) else {
            throw APIError(.badRequest, .invalidField, "Last-Event-ID is not a position this node gave out")
        }
        return positions
    }

    /// What the request's `?token=` (or `Authorization: Bearer`) allows, as for a WebSocket.
    private func access(_ request: Request) async throws -> ChannelAccess {
        guard let verifier else { return .open }
        var token = request.uri.queryParameters["token"].map(String.init)
        if token == nil, let authorization = request.headers[.authorization], authorization.lowercased().hasPrefix("bearer ") {
            token = String(authorization.dropFirst(7))
        }
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

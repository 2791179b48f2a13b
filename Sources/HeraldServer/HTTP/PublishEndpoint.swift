import HTTPTypes
import HeraldCore
import HeraldProtocol
import Logging
import NIOCore

/// The one way a REST publish (`POST /api/notify/{channel}`, `POST /api/broadcast`) is served,
/// whichever way it came in — ``FastPublishHandler`` ahead of the router, or the router's
/// ``PublishRoutes`` (registered ahead of the router's middleware, so nothing runs twice).
///
/// Every rule a publish passes is here, in order: the API key; the request itself (channel,
/// `Idempotency-Key`, body size, JSON — ``PublishOperation``); the publish; then, on every
/// answer, the CORS headers, `herald_http_requests_total` and the request log line. A new
/// publish rule (a backend hook, a namespace's publish setting) is added here, once.
struct PublishEndpoint: Sendable {
    /// A publish request as both ways in see it.
    struct Request: Sendable {
        var route: FastPublishRoute
        var method: String
        /// The request target as sent (with any query); the log line names its path, and only
        /// a line that is written pays for cutting it.
        var target: String
        var authorization: String?
        var apiKey: String?
        var idempotencyKey: String?
        var origin: String?
        var remote: SocketAddress?
        /// `nil` when it was larger than `HERALD_MAX_BODY_BYTES`.
        var body: ByteBuffer?
        /// Formatted only if the log line is written (a `RequestID` from the fast path).
        var requestID: any CustomStringConvertible & Sendable
        var start: NIODeadline
    }

    /// The complete answer: status, JSON body (`contentType`), and its CORS headers (none, and
    /// no allocation, for a request without an allowed `Origin`).
    struct Answer: Sendable {
        static let contentType = "application/json; charset=utf-8"
        var status: HTTPResponse.Status
        var body: ByteBuffer
        var cors: [(HTTPField.Name, String)]
    }

    let operation: PublishOperation
    let apiKeys: [[UInt8]]
    let cors: CORSPolicy
    let counters: RequestMetricsMiddleware.Counters
    let logger: Logger

    /// Serves `request` on `loop` and hands its answer to `respond`, on `loop`; every request
    /// gets one: a refusal or a broker that cannot publish is an answer with its status and
    /// `{"error","code"}` body. A callback rather than a future: chaining `map`/`recover` onto
    /// the publish's future cost two promises per publish on the fast path.
    func serve(_ request: Request, on loop: any EventLoop, respond: @escaping @Sendable (Answer) -> Void) {
        let prepared: PublishOperation.Prepared
        do {
            prepared = try admit(request)
        } catch {
            return respond(answer(request, error))
        }
        operation.run(prepared, on: loop).whenComplete { result in
            switch result {
            case .success(let body): respond(answer(request, status: .ok, body: body))
            case .failure(let error): respond(answer(request, APIError.unavailable(error)))
            }
        }
    }

    /// ``serve(_:on:respond:)`` for the router's async handlers.
    func serve(_ request: Request, on loop: any EventLoop) async -> Answer {
        await withCheckedContinuation { continuation in
            serve(request, on: loop) { continuation.resume(returning: $0) }
        }
    }

    /// The rules before anything is published, in order.
    private func admit(_ request: Request) throws(APIError) -> PublishOperation.Prepared {
        if let refusal = APIKeyMiddleware.refusal(
            keys: apiKeys, authorization: request.authorization, apiKey: request.apiKey, remote: request.remote)
        {
            throw refusal
        }
        return try operation.prepare(request.route, body: request.body, idempotencyKey: request.idempotencyKey, target: request.target)
    }

    private func answer(_ request: Request, _ error: APIError) -> Answer {
        answer(request, status: error.status, body: ByteBuffer(bytes: APIErrorBody(error.error).jsonBytes()))
    }

    /// What every answer gets: its CORS headers, its count and its log line.
    private func answer(_ request: Request, status: HTTPResponse.Status, body: ByteBuffer) -> Answer {
        counters.count(route: request.route.pattern, status: status.code)
        // The log line's metadata is built only when it will be written (the fast path's budget).
        if logger.logLevel <= .info {
            RequestLogLine.write(
                to: logger, level: .info, method: request.method, path: String(request.target.prefix { $0 != "?" }),
                status: status.code, start: request.start, metadata: ["hb.request.id": "\(request.requestID)"])
        }
        return Answer(status: status, body: body, cors: cors.headers(for: request.origin))
    }
}

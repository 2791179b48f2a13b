import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore

/// The router's way in for publishes: `POST /api/notify/{channel}` and `POST /api/broadcast`,
/// served by the same ``PublishEndpoint`` as the fast path ahead of the router.
///
/// Registered before the router's middleware is added (Hummingbird wraps a route in the
/// middleware present when it is added), because the endpoint applies those rules itself —
/// API key, CORS, counting, logging — the same way for both ways in.
struct PublishRoutes {
    let endpoint: PublishEndpoint
    let maxBodyBytes: Int

    func register(on router: Router<HeraldRequestContext>) {
        router.post("/api/notify/:channel") { request, context in
            try await publish(.notify(channel: context.parameters.get("channel") ?? ""), request, context)
        }
        router.post("/api/broadcast") { request, context in try await publish(.broadcast, request, context) }
    }

    private func publish(_ route: FastPublishRoute, _ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let start = NIODeadline.now()
        let body = try? await RequestValidation.body(request, limit: maxBodyBytes)
        let answer = await endpoint.serve(
            PublishEndpoint.Request(
                route: route, method: request.method.rawValue, target: request.uri.path,
                authorization: request.headers[.authorization], apiKey: request.headers[.xAPIKey],
                idempotencyKey: request.headers[.idempotencyKey], origin: request.headers[.origin],
                remote: context.remoteAddress, body: body, requestID: context.id, start: start),
            on: context.eventLoop)
        var headers: HTTPFields = [.contentType: PublishEndpoint.Answer.contentType]
        for (name, value) in answer.cors { headers[name] = value }
        return Response(status: answer.status, headers: headers, body: .init(byteBuffer: answer.body))
    }
}

extension HTTPField.Name {
    static let xAPIKey = HTTPField.Name("X-API-Key")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}

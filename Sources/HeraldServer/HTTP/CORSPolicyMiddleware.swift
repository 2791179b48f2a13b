import HTTPTypes
import Hummingbird

/// CORS for the REST API with a configured list of allowed origins (`*` allows any).
///
/// Preflight `OPTIONS` requests are answered here with 204 (allowed) or 403 (not allowed);
/// other responses get `Access-Control-Allow-Origin` only when the origin is allowed.
struct CORSPolicyMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: Set<String>

    init(origins: [String]) {
        self.origins = Set(origins)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = origins.contains("*") || origins.contains(origin)
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            guard allowed else { return Response(status: .forbidden) }
            var response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Content-Type, Authorization, X-API-Key"
            response.headers[.accessControlMaxAge] = "600"
            decorate(&response, origin: origin)
            return response
        }
        var response = try await next(request, context)
        if allowed { decorate(&response, origin: origin) }
        return response
    }

    private func decorate(_ response: inout Response, origin: String) {
        response.headers[.accessControlAllowOrigin] = origins.contains("*") ? "*" : origin
        if !origins.contains("*") { response.headers[.vary] = "Origin" }
    }
}

import HTTPTypes
import Hummingbird

/// The REST API's CORS rule, for the router and the REST fast path: the allowed origins
/// (`*` allows any) and the headers a response to an allowed origin carries.
struct CORSPolicy: Sendable {
    let origins: Set<String>

    init(origins: [String]) {
        self.origins = Set(origins)
    }

    func allows(_ origin: String) -> Bool { origins.contains("*") || origins.contains(origin) }

    /// `Access-Control-Allow-Origin` (and `Vary: Origin` unless any origin is allowed) for a
    /// request from `origin`; nothing for an origin that is not allowed.
    func headers(for origin: String?) -> [(HTTPField.Name, String)] {
        guard let origin, allows(origin) else { return [] }
        if origins.contains("*") { return [(.accessControlAllowOrigin, "*")] }
        return [(.accessControlAllowOrigin, origin), (.vary, "Origin")]
    }
}

/// CORS for the REST API with a configured list of allowed origins (`*` allows any).
///
/// Preflight `OPTIONS` requests are answered here with 204 (allowed) or 403 (not allowed);
/// other responses get `Access-Control-Allow-Origin` only when the origin is allowed.
struct CORSPolicyMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: CORSPolicy

    init(origins: [String]) {
        self.policy = CORSPolicy(origins: origins)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            guard policy.allows(origin) else { return Response(status: .forbidden) }
            var response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Content-Type, Authorization, X-API-Key"
            response.headers[.accessControlMaxAge] = "600"
            for (name, value) in policy.headers(for: origin) { response.headers[name] = value }
            return response
        }
        var response = try await next(request, context)
        for (name, value) in policy.headers(for: origin) { response.headers[name] = value }
        return response
    }
}

import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore

/// Guards `/api/*` and `/metrics`.
///
/// With keys configured, a request needs `Authorization: Bearer KEY` or `X-API-Key: KEY`
/// matching one of them (several keys allow rotation without downtime); comparison is
/// constant-time. Without keys, only loopback callers are served, so that a node started
/// with no configuration is never an open relay. `/metrics` needs the key when there is one
/// (Prometheus sends it as a bearer token) unless `metricsPublic`; without keys it is open,
/// like `/health` — it tells how busy the node is, not what it carries.
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    let keys: [[UInt8]]
    let metricsPublic: Bool

    init(keys: [String], metricsPublic: Bool = false) {
        self.keys = keys.map { Array($0.utf8) }
        self.metricsPublic = metricsPublic
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path == "/metrics" {
            guard !keys.isEmpty, !metricsPublic else { return try await next(request, context) }
            try check(request)
            return try await next(request, context)
        }
        guard request.uri.path.hasPrefix("/api/") else { return try await next(request, context) }
        if request.method == .options { return try await next(request, context) }
        if let refusal = Self.refusal(
            keys: keys, authorization: request.headers[.authorization],
            apiKey: HTTPField.Name("X-API-Key").flatMap { request.headers[$0] }, remote: context.remoteAddress)
        {
            throw refusal
        }
        return try await next(request, context)
    }

    private func check(_ request: Request) throws {
        if let refusal = Self.refusal(
            keys: keys, authorization: request.headers[.authorization], apiKey: HTTPField.Name("X-API-Key").flatMap { request.headers[$0] })
        {
            throw refusal
        }
    }

    /// Why an `/api/*` request is refused, or `nil`: the rule of the router and of the REST
    /// fast path alike.
    static func refusal(keys: [[UInt8]], authorization: String?, apiKey: String?, remote: SocketAddress?) -> APIError? {
        if keys.isEmpty {
            return isLoopback(remote)
                ? nil : APIError(.forbidden, .forbidden, "no API key is configured: only loopback callers may use /api")
        }
        return refusal(keys: keys, authorization: authorization, apiKey: apiKey)
    }

    private static func refusal(keys: [[UInt8]], authorization: String?, apiKey: String?) -> APIError? {
        guard let presented = presentedKey(authorization: authorization, apiKey: apiKey) else {
            return APIError(.unauthorized, .unauthorized, "missing API key (Authorization: Bearer KEY)")
        }
        let bytes = Array(presented.utf8)
        var matched = false
        for key in keys where constantTimeEqual(key, bytes) { matched = true }
        return matched ? nil : APIError(.unauthorized, .unauthorized, "invalid API key")
    }

    static func presentedKey(authorization: String?, apiKey: String?) -> String? {
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return apiKey
    }

    /// Compares without an early exit, so timing reveals nothing about where keys differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        switch address {
        case .v4(let v4): v4.address.sin_addr.s_addr.bigEndian >> 24 == 127
        case .v6: address?.ipAddress == "::1" || address?.ipAddress?.hasPrefix("::ffff:127.") == true
        case .unixDomainSocket: true
        case .none: false
        }
    }
}

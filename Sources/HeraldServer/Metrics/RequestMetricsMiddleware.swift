import CoreMetrics
import HeraldCore
import Hummingbird
import Synchronization

/// Counts REST requests as `herald_http_requests_total{route, status}`: the route pattern
/// (`/api/notify/{channel}`, never the channel itself; `unmatched` for a 404) and the status
/// class (`2xx`…`5xx`), so the series stay few.
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    /// Shared with the REST fast path, which counts its requests in the same series.
    let counters: Counters

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            count(context, status: response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            count(context, status: error.status.code)
            throw error
        } catch {
            count(context, status: 500)
            throw error
        }
    }

    private func count(_ context: Context, status: Int) {
        counters.count(route: context.endpointPath.map(Self.openAPIPath) ?? "unmatched", status: status)
    }

    /// Hummingbird's `/api/notify/:channel` in OpenAPI's spelling, `/api/notify/{channel}`.
    static func openAPIPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix(":") ? "{\(segment.dropFirst())}" : String(segment)
        }.joined(separator: "/")
    }

    /// One counter per (route, status class), made once.
    final class Counters: Sendable {
        private let factory: any MetricsFactory
        private let counters = Mutex<[String: Counter]>([:])

        init(factory: any MetricsFactory) {
            self.factory = factory
        }

        func count(route: String, status: Int) {
            let status = "\(status / 100)xx"
            counters.withLock { counters in
                let key = route + " " + status
                if let counter = counters[key] { return counter }
                let counter = Counter(
                    label: "herald_http_requests_total", dimensions: [("route", route), ("status", status)], factory: factory)
                counters[key] = counter
                return counter
            }.increment()
        }
    }
}

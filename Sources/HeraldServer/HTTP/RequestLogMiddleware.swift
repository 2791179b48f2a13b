import Hummingbird
import Logging
import NIOCore

/// One log line per request: method, path, status and duration.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let level: Logger.Level

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = NIODeadline.now()
        do {
            let response = try await next(request, context)
            log(request, context, status: response.status.code, start: start)
            return response
        } catch let error as any HTTPResponseError {
            log(request, context, status: error.status.code, start: start)
            throw error
        } catch {
            log(request, context, status: 500, start: start)
            throw error
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, start: NIODeadline) {
        RequestLogLine.write(
            to: context.logger, level: level, method: "\(request.method)", path: request.uri.path, status: status, start: start)
    }
}

/// The request log line, written the same by the router's middleware and the publish fast
/// path (``FastPublishHandler``).
enum RequestLogLine {
    static func write(
        to logger: Logger, level: Logger.Level, method: String, path: String, status: Int, start: NIODeadline,
        metadata extra: Logger.Metadata = [:]
    ) {
        guard logger.logLevel <= level else { return }
        let micros = (NIODeadline.now() - start).nanoseconds / 1000
        var metadata: Logger.Metadata = [
            "method": "\(method)", "path": "\(path)", "status": "\(status)", "duration_ms": "\(Double(micros) / 1000)",
        ]
        metadata.merge(extra) { current, _ in current }
        logger.log(level: level, "\(method) \(path) \(status)", metadata: metadata)
    }
}

import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOHTTP1

/// Serves an HTTP request with the router, as Hummingbird's `Application` does: a request id
/// on the logger, an unexpected error answered 500, and the `Date` and `Server` headers.
enum RouterResponder {
    static func make(_ router: Router<HeraldRequestContext>, serverName: String, logger: Logger) -> HTTPChannelHandler.Responder {
        let responder = router.buildResponder()
        return { request, responseWriter, channel in
            var logger = logger
            logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let context = HeraldRequestContext(source: .init(channel: channel, logger: logger))
            var response: Response
            do {
                response = try await responder.respond(to: request, context: context)
            } catch let error as HTTPParserError {
                // Hummingbird's request loop answers it 400 and closes.
                throw error
            } catch {
                logger.debug("unrecognised error", metadata: ["error.type": "\(error)"])
                response = Response(status: .internalServerError, body: .init())
            }
            response.headers[.date] = HTTPDate.now
            response.headers[.server] = serverName
            do {
                try await responseWriter.write(response: response.head, body: response.body)
            } catch is HTTPParserError {
                // Not the parser error itself: that would make the request loop write a second
                // response.
                throw WriteFailed()
            }
        }
    }

    private struct WriteFailed: Error {}
}

import Foundation
import HTTPTypes
import HeraldCore
import HeraldProtocol
import Hummingbird

/// The JSON body of every REST error: `{"error": text, "code": CODE}`.
struct APIErrorBody: Codable, Sendable {
    var error: String
    var code: ErrorCode

    init(_ error: ProtocolError) {
        self.error = error.error
        self.code = error.code
    }

    func jsonBytes() -> [UInt8] {
        Array((try? APIJSON.encoder.encode(self)) ?? Data())
    }
}

/// A REST failure with its HTTP status; rendered as ``APIErrorBody``.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var error: ProtocolError

    init(_ status: HTTPResponse.Status, _ code: ErrorCode, _ message: String) {
        self.status = status
        self.error = ProtocolError(code, message)
    }

    /// An admission's refusal of a WebSocket or SSE connection.
    init(_ refusal: Admission.Refusal) {
        self.status = HTTPResponse.Status(code: refusal.status)
        self.error = refusal.error
    }

    /// A backend (the broker, the cluster registry, presence) could not answer: 503
    /// `unavailable` — the one mapping every route uses. An `APIError` passes through as it is.
    static func unavailable(_ error: any Error, _ what: String? = nil) -> APIError {
        if let error = error as? APIError { return error }
        if case BrokerError.replicationTimeout = error {
            return APIError(.serviceUnavailable, .replicationTimeout, what.map { "\($0): \(error)" } ?? "\(error)")
        }
        return APIError(.serviceUnavailable, .unavailable, what.map { "\($0): \(error)" } ?? "\(error)")
    }

    /// Runs `body`; what it throws becomes ``unavailable(_:_:)``.
    static func whileAvailable<T>(_ what: String? = nil, _ body: () async throws -> T) async throws(APIError) -> T {
        do {
            return try await body()
        } catch {
            throw unavailable(error, what)
        }
    }

    /// Worth retrying the same request later: rate limits, a full or a draining node.
    var isTransient: Bool { status == .tooManyRequests || status == .serviceUnavailable }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        Response.json(bytes: APIErrorBody(error).jsonBytes(), status: status)
    }
}

extension Response {
    /// A JSON response from already-encoded bytes.
    static func json(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        json(ByteBuffer(bytes: bytes), status: status)
    }

    /// A JSON response from an already-encoded buffer.
    static func json(_ buffer: ByteBuffer, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: buffer)
        )
    }

    /// A JSON response encoding `value`.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        json(bytes: Array((try? APIJSON.encoder.encode(value)) ?? Data()), status: status)
    }
}

/// The REST API's JSON coders.
enum APIJSON {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }()
}

import HTTPTypes
import HeraldCore
import HeraldProtocol
import Hummingbird
import NIOCore

/// The checks REST requests share, each refusing with a 400 and a stable code: channel names,
/// page sizes, `Idempotency-Key`s, body sizes.
enum RequestValidation {
    /// Page size bounds for the listing endpoints.
    static let defaultPageSize = 100
    static let maxPageSize = 1000
    /// Most characters of an `Idempotency-Key`.
    static let maxIdempotencyKeyLength = 128

    static func channel(_ channel: String) throws(APIError) {
        if let problem = ChannelName.problem(with: channel) {
            throw APIError(.badRequest, .invalidChannel, problem)
        }
    }

    /// `?limit=`: 1–``maxPageSize``, ``defaultPageSize`` when absent.
    static func pageSize(_ request: Request) throws(APIError) -> Int {
        guard let raw = request.uri.queryParameters["limit"] else { return defaultPageSize }
        guard let limit = Int(String(raw)), (1...maxPageSize).contains(limit) else {
            throw APIError(.badRequest, .invalidField, "limit must be a whole number from 1 to \(maxPageSize)")
        }
        return limit
    }

    /// An `Idempotency-Key`: 1–128 visible ASCII characters, or none.
    static func idempotencyKey(_ key: String?) throws(APIError) -> String? {
        guard let key else { return nil }
        guard !key.isEmpty, key.utf8.count <= maxIdempotencyKeyLength, key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw APIError(
                .badRequest, .invalidField,
                "Idempotency-Key must be 1–\(maxIdempotencyKeyLength) visible ASCII characters")
        }
        return key
    }

    /// Reads a request body of at most `limit` bytes.
    static func body(_ request: Request, limit: Int) async throws(APIError) -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.badRequest, .payloadTooLarge, "body larger than \(limit) bytes")
        }
    }

    /// The members of a JSON object body, every failure a 400 `invalid_json` with where it went
    /// wrong; `empty` says what to send instead of nothing.
    static func objectFields(_ view: ByteBufferView, empty: String) throws(APIError) -> [String: JSONReader.Field] {
        guard !view.isEmpty else { throw APIError(.badRequest, .invalidJSON, "body is empty; send \(empty)") }
        let parsed: [String: JSONReader.Field]?
        do {
            parsed = try JSONReader.objectFields(view)
        } catch {
            throw APIError(.badRequest, .invalidJSON, "body is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard let fields = parsed else { throw APIError(.badRequest, .invalidJSON, "body must be a JSON object") }
        return fields
    }
}

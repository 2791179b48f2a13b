import HeraldCore
import HeraldProtocol
import NIOCore

/// The body of `POST /api/notify/{channel}` and `POST /api/broadcast`: every field optional
/// except a broadcast's `channels`; unknown fields are ignored.
///
/// Read with ``JSONReader`` in one pass; `data` is kept as the publisher's own JSON text and
/// never decoded (see ``OutgoingNotification``).
struct PublishRequest {
    var channels: [String]?
    var title: String?
    var body: String?
    var data: RawJSON?
    /// A slow client of a `latest` namespace gets only the newest notification per key.
    var conflateKey: String?

    /// The longest `conflate_key`: a key is kept per slow client, so it is bounded.
    static let maxConflateKeyLength = 256

    /// The notification this request publishes on `channel` (REST defaults for title and body).
    func notification(on channel: String) -> OutgoingNotification {
        OutgoingNotification(
            HeraldNotification(channel: channel, title: title ?? "Notification", body: body ?? "", conflateKey: conflateKey), data: data)
    }

    /// Parses `bytes`, mapping every failure to a 400 with a precise code. An empty body is not
    /// JSON: refusing it keeps a publish deliberate (`{}` asks for the default notification).
    static func parse(_ bytes: ByteBuffer, requiringChannels: Bool) throws(APIError) -> PublishRequest {
        let view = bytes.readableBytesView
        let fields = try RequestValidation.objectFields(view, empty: "a JSON object ({} for the defaults)")
        return try parse(fields, in: view, requiringChannels: requiringChannels)
    }

    /// The request in an object already read (a batch's item), whose fields lie in `view`.
    static func parse(
        _ fields: [String: JSONReader.Field], in view: ByteBufferView, requiringChannels: Bool
    ) throws(APIError) -> PublishRequest {
        var request = PublishRequest()
        request.title = try string("title", in: fields)
        request.body = try string("body", in: fields)
        if let key = try string("conflate_key", in: fields) {
            guard !key.isEmpty, key.utf8.count <= maxConflateKeyLength else {
                throw APIError(
                    .badRequest, .invalidField, "field \"conflate_key\" must be a non-empty string of at most \(maxConflateKeyLength) bytes")
            }
            request.conflateKey = key
        }
        if let data = fields["data"], data.kind != .null {
            guard data.kind == .object else {
                throw APIError(.badRequest, .invalidField, "field \"data\" must be a JSON object")
            }
            request.data = JSONReader.raw(data, in: view)
        }
        if requiringChannels {
            guard let channels = fields["channels"], channels.kind != .null else {
                throw APIError(.badRequest, .missingField, "missing field \"channels\"")
            }
            guard channels.kind == .array, let names = JSONReader.strings(ofArray: channels, in: view) else {
                throw APIError(.badRequest, .invalidField, "field \"channels\" must be an array of strings")
            }
            request.channels = names
        }
        return request
    }

    static func string(_ key: String, in fields: [String: JSONReader.Field]) throws(APIError) -> String? {
        guard let field = fields[key], field.kind != .null else { return nil }
        guard let value = field.string else {
            throw APIError(.badRequest, .invalidField, "field \"\(key)\" has the wrong type")
        }
        return value
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore

/// The body of `POST /api/batch`: `{"items":[…], "all_or_nothing"?: bool}`. Each item is the
/// body of a single publish plus where it goes — `"channel"` or `"user"` — and, optionally, its
/// own `"idempotency_key"`. Read in one pass with ``JSONReader``; an item that is wrong is that
/// item's error, not the request's (unless `all_or_nothing` asks for that).
struct BatchRequest {
    enum Target: Sendable, Equatable {
        case channel(String)
        case user(String)
    }

    struct Item: Sendable {
        var target: Target
        var notification: OutgoingNotification
        var idempotencyKey: String?
    }

    /// Each item in order: ready to publish, or why it cannot be.
    var items: [Result<Item, APIError>]
    /// Publish nothing if any item is invalid.
    var allOrNothing: Bool

    static func parse(_ bytes: ByteBuffer, maxItems: Int) throws(APIError) -> BatchRequest {
        let view = bytes.readableBytesView
        let fields = try RequestValidation.objectFields(view, empty: "{\"items\":[…]}")
        guard let list = fields["items"], list.kind != .null else { throw APIError(.badRequest, .missingField, "missing field \"items\"") }
        guard list.kind == .array else { throw APIError(.badRequest, .invalidField, "field \"items\" must be an array") }
        var allOrNothing = false
        if let flag = fields["all_or_nothing"], flag.kind != .null {
            guard flag.kind == .bool else {
                throw APIError(.badRequest, .invalidField, "field \"all_or_nothing\" must be true or false")
            }
            allOrNothing = JSONReader.raw(flag, in: view).bytes.first == UInt8(ascii: "t")
        }
        let ranges = JSONReader.elements(ofArray: list, in: view)
        guard !ranges.isEmpty else { throw APIError(.badRequest, .invalidField, "field \"items\" must not be empty") }
        guard ranges.count <= maxItems else {
            throw APIError(.badRequest, .invalidField, "at most \(maxItems) items per batch (HERALD_MAX_BATCH); got \(ranges.count)")
        }
        let items = ranges.map { range in
            Result { () throws(APIError) -> Item in try item(ByteBuffer(view[view.startIndex + range.lowerBound ..< view.startIndex + range.upperBound])) }
        }
        return BatchRequest(items: items, allOrNothing: allOrNothing)
    }

    /// One item: an object with `channel` or `user`, the publish fields, an `idempotency_key`.
    private static func item(_ bytes: ByteBuffer) throws(APIError) -> Item {
        let view = bytes.readableBytesView
        // Valid JSON already (the whole body was read): only its shape can be wrong.
        guard let fields = (try? JSONReader.objectFields(view)) ?? nil else {
            throw APIError(.badRequest, .invalidField, "an item must be a JSON object")
        }
        let channel = try PublishRequest.string("channel", in: fields)
        let user = try PublishRequest.string("user", in: fields)
        let target: Target
        switch (channel, user) {
        case (let channel?, nil):
            try RequestValidation.channel(channel)
            target = .channel(channel)
        case (nil, let user?):
            try UserRoutes.validate(user: user)
            target = .user(user)
        default:
            throw APIError(.badRequest, .invalidField, "an item names either \"channel\" or \"user\"")
        }
        let key = try RequestValidation.idempotencyKey(try PublishRequest.string("idempotency_key", in: fields))
        let request = try PublishRequest.parse(fields, in: view, requiringChannels: false)
        var notification = request.notification(on: channel ?? "")
        if case .user(let user) = target { notification.fields.user = user }
        return Item(target: target, notification: notification, idempotencyKey: key)
    }
}

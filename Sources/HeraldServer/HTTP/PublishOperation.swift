import HTTPTypes
import HeraldCore
import HeraldProtocol
import NIOCore

/// What `POST /api/notify/{channel}` and `POST /api/broadcast` do, whichever way the request
/// came in — through the router or the fast path ahead of it (``FastPublishHandler``) — so
/// both answer the same bytes and the same errors, in the same order.
struct PublishOperation: Sendable {
    let publisher: Publisher
    let configuration: HeraldConfiguration

    /// Most channels one broadcast may name.
    static let maxBroadcastChannels = 1000

    /// A request that passed every check, ready to publish.
    struct Prepared: Sendable {
        var route: FastPublishRoute
        var notification: OutgoingNotification
        /// The channels, in order (one for a notify).
        var channels: [String]
        var idempotencyKey: String?
    }

    /// Checks a request: the channel, the `Idempotency-Key`, the body (`nil` when it was over
    /// `HERALD_MAX_BODY_BYTES`), then the JSON — the router's order.
    func prepare(_ route: FastPublishRoute, body: ByteBuffer?, idempotencyKey: String?) throws(APIError) -> Prepared {
        if case .notify(let channel) = route { try RequestValidation.channel(channel) }
        let key = try RequestValidation.idempotencyKey(idempotencyKey)
        guard let body else {
            throw APIError(.badRequest, .payloadTooLarge, "body larger than \(configuration.maxBodyBytes) bytes")
        }
        switch route {
        case .notify(let channel):
            let request = try PublishRequest.parse(body, requiringChannels: false)
            return Prepared(route: route, notification: request.notification(on: channel), channels: [channel], idempotencyKey: key)
        case .broadcast:
            let request = try PublishRequest.parse(body, requiringChannels: true)
            var seen = Set<String>()
            let channels = (request.channels ?? []).filter { seen.insert($0).inserted }
            guard !channels.isEmpty else { throw APIError(.badRequest, .invalidField, "field \"channels\" must not be empty") }
            guard channels.count <= Self.maxBroadcastChannels else {
                throw APIError(.badRequest, .invalidField, "at most \(Self.maxBroadcastChannels) channels per broadcast")
            }
            for channel in channels { try RequestValidation.channel(channel) }
            return Prepared(route: route, notification: request.notification(on: ""), channels: channels, idempotencyKey: key)
        }
    }

    /// Publishes on `loop` and answers the response body; fails with a 503 ``APIError`` when
    /// the broker cannot publish. A broadcast publishes channel after channel (one key covers
    /// the whole broadcast; each channel remembers it for itself).
    func run(_ prepared: Prepared, on loop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        var notification = prepared.notification
        var chain = loop.makeSucceededFuture([Publisher.Outcome]())
        for channel in prepared.channels {
            notification.channel = channel
            let publication = Publication(
                channel: channel, payload: notification.encoded(), id: notification.id, idempotencyKey: prepared.idempotencyKey)
            let publisher = self.publisher
            chain = chain.flatMap { outcomes in
                publisher.publish(publication, from: .rest, on: loop).map { outcomes + [$0] }
            }
        }
        return chain.map { Self.response(prepared, $0) }.flatMapErrorThrowing { error in
            throw APIError.unavailable(error)
        }
    }

    static func response(_ prepared: Prepared, _ outcomes: [Publisher.Outcome]) -> ByteBuffer {
        switch prepared.route {
        case .notify(let channel):
            let outcome = outcomes[0]
            return NotifyResponse(
                channel: channel, delivered: outcome.delivered, id: outcome.receipt.id, position: outcome.receipt.position,
                duplicate: outcome.receipt.duplicate
            ).encoded()
        case .broadcast:
            let results = zip(prepared.channels, outcomes).map { channel, outcome in
                BroadcastResponse.Result(
                    channel: channel, delivered: outcome.delivered, offset: outcome.receipt.position?.offset,
                    epoch: outcome.receipt.position?.epoch)
            }
            let duplicate = outcomes.contains { $0.receipt.duplicate }
            let response = BroadcastResponse(
                id: outcomes.last?.receipt.id ?? prepared.notification.id, delivered: results.reduce(0) { $0 + $1.delivered },
                channels: results, duplicate: duplicate ? true : nil)
            return ByteBuffer(bytes: (try? APIJSON.encoder.encode(response)).map(Array.init) ?? [])
        }
    }
}

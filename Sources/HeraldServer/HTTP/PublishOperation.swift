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
        /// `?wait=delivered|acked`: answer once the nodes reported (a notify only).
        var wait: Publisher.Wait?
    }

    /// The default and the longest `?timeout=` of a publish that waits for its receipt.
    static let defaultWaitTimeout = 2.0

    /// `wait` and `timeout` from the request target's query; `nil` without `wait`.
    static func wait(in target: String, route: FastPublishRoute, configuration: HeraldConfiguration) throws(APIError) -> Publisher.Wait? {
        guard let question = target.firstIndex(of: "?") else { return nil }
        var values: [Substring: Substring] = [:]
        for pair in target[target.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            values[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        guard let mode = values["wait"] else {
            if values["timeout"] != nil { throw APIError(.badRequest, .invalidField, "timeout is for wait=delivered or wait=acked") }
            return nil
        }
        guard mode == "delivered" || mode == "acked" else {
            throw APIError(.badRequest, .invalidField, "wait must be delivered or acked")
        }
        guard case .notify(let channel) = route else {
            throw APIError(.badRequest, .invalidField, "wait is for POST /api/notify/{channel}")
        }
        let seconds = try values["timeout"].map { text throws(APIError) in
            let longest = Double(Receipts.maxWait.nanoseconds) / 1e9
            guard let seconds = Double(text), seconds > 0, seconds <= longest else {
                throw APIError(.badRequest, .invalidField, "timeout must be seconds, above 0 and at most \(Int(longest))")
            }
            return seconds
        } ?? defaultWaitTimeout
        if mode == "acked", !configuration.namespaces.history(for: channel).isOn {
            throw APIError(.badRequest, .invalidField, "wait=acked needs history: acknowledgements name offsets")
        }
        return Publisher.Wait(acks: mode == "acked", timeout: .nanoseconds(Int64(seconds * 1_000_000_000)))
    }

    /// Checks a request: the channel, the `Idempotency-Key`, the body (`nil` when it was over
    /// `HERALD_MAX_BODY_BYTES`), then the JSON — the router's order.
    func prepare(_ route: FastPublishRoute, body: ByteBuffer?, idempotencyKey: String?, target: String = "") throws(APIError) -> Prepared {
        if case .notify(let channel) = route { try RequestValidation.channel(channel) }
        let key = try RequestValidation.idempotencyKey(idempotencyKey)
        let wait = try Self.wait(in: target, route: route, configuration: configuration)
        guard let body else {
            throw APIError(.badRequest, .payloadTooLarge, "body larger than \(configuration.maxBodyBytes) bytes")
        }
        switch route {
        case .notify(let channel):
            let request = try PublishRequest.parse(body, requiringChannels: false)
            return Prepared(
                route: route, notification: request.notification(on: channel), channels: [channel], idempotencyKey: key, wait: wait)
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
        if let wait = prepared.wait, case .notify(let channel) = prepared.route {
            let notification = prepared.notification
            let publication = Publication(
                channel: channel, payload: notification.encoded(), id: notification.id, idempotencyKey: prepared.idempotencyKey)
            return publisher.publish(publication, waiting: wait, from: .rest, on: loop).map { outcome, receipt in
                NotifyResponse(
                    channel: channel, delivered: receipt.delivered, id: outcome.receipt.id, position: outcome.receipt.position,
                    duplicate: outcome.receipt.duplicate, receipt: outcome.receipt.duplicate ? nil : receipt
                ).encoded()
            }.flatMapErrorThrowing { error in
                if case Publisher.WaitError.tooManyWaiting(let limit) = error {
                    throw APIError(.tooManyRequests, .rateLimited, "\(limit) publishes wait for receipts on this node already; try again")
                }
                throw APIError.unavailable(error)
            }
        }
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

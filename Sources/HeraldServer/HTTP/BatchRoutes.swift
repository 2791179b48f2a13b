import HTTPTypes
import HeraldCore
import HeraldProtocol
import Hummingbird
import NIOCore

/// `POST /api/batch`: up to `HERALD_MAX_BATCH` publications in one request — to channels or to
/// users, each the body of a single publish with its own `idempotency_key` — answered with one
/// result per item, in order. Channel items go to the broker together (one round trip per
/// Redis shard); an item that is invalid or fails is that item's error, and the others are
/// published, unless `all_or_nothing` asks that nothing be published when any item is invalid.
struct BatchRoutes {
    let publisher: Publisher
    let configuration: HeraldConfiguration

    func register(on router: Router<HeraldRequestContext>) {
        router.post("/api/batch") { request, context in try await batch(request, context) }
    }

    /// The answer, written by hand with sorted keys like every REST answer: a batch of 1000
    /// through `JSONEncoder` cost more than publishing it.
    struct Response {
        var success = true
        /// Items published (a duplicate counts: its key's first publication stands).
        var published: Int
        /// Items refused or not published.
        var failed: Int
        var results: [Result]

        func encoded() -> ByteBuffer {
            var writer = JSONWriter(capacity: 64 + results.count * 160)
            writer.beginObject()
            writer.field("failed", failed)
            writer.field("published", published)
            writer.beginArray("results")
            for result in results { result.write(to: &writer) }
            writer.endArray()
            writer.field("success", success)
            writer.endObject()
            return writer.buffer
        }
    }

    /// One item's answer: where it went and what it was given, or its error.
    struct Result {
        var channel: String?
        var user: String?
        var delivered: Int?
        var id: String?
        var offset: Int64?
        var epoch: String?
        var duplicate: Bool?
        var error: String?
        var code: ErrorCode?

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            writer.field("channel", channel)
            writer.field("code", code?.rawValue)
            if let delivered { writer.field("delivered", delivered) }
            if duplicate == true { writer.field("duplicate", true) }
            writer.field("epoch", epoch)
            writer.field("error", error)
            writer.field("id", id)
            if let offset { writer.field("offset", Int(offset)) }
            writer.field("user", user)
            writer.endObject()
        }

        static func failure(_ error: ProtocolError, _ target: BatchRequest.Target?) -> Result {
            var result = Result(error: error.error, code: error.code)
            switch target {
            case .channel(let channel): result.channel = channel
            case .user(let user): result.user = user
            case nil: break
            }
            return result
        }
    }

    private func batch(_ request: Request, _ context: HeraldRequestContext) async throws -> Hummingbird.Response {
        let bytes: ByteBuffer
        do {
            bytes = try await request.body.collect(upTo: configuration.maxBatchBytes)
        } catch {
            throw APIError(.contentTooLarge, .payloadTooLarge, "body larger than \(configuration.maxBatchBytes) bytes (HERALD_MAX_BATCH_BYTES)")
        }
        let batch = try BatchRequest.parse(bytes, maxItems: configuration.maxBatch)
        if batch.allOrNothing {
            for (index, item) in batch.items.enumerated() {
                if case .failure(let error) = item { throw APIError(error.status, error.error.code, "item \(index): \(error.error.error)") }
            }
        }
        var results = batch.items.map { item -> Result? in
            if case .failure(let error) = item { return .failure(error.error, nil) }
            return nil
        }
        try await publishToChannels(batch, into: &results, on: context.eventLoop)
        await notifyUsers(batch, into: &results)
        let failed = results.count { $0?.code != nil }
        let answer = Response(
            published: results.count - failed, failed: failed,
            results: results.map { $0 ?? .failure(ProtocolError(.unavailable, "not published"), nil) })
        return .json(answer.encoded())
    }

    /// Every channel item, in one broker batch.
    private func publishToChannels(_ batch: BatchRequest, into results: inout [Result?], on loop: any EventLoop) async throws {
        var indices: [Int] = []
        var publications: [Publication] = []
        for (index, item) in batch.items.enumerated() {
            guard case .success(let item) = item, case .channel(let channel) = item.target else { continue }
            indices.append(index)
            publications.append(Publication(
                channel: channel, payload: item.notification.encoded(), id: item.notification.id, idempotencyKey: item.idempotencyKey))
        }
        guard !publications.isEmpty else { return }
        let outcomes = try await publisher.publish(batch: publications, from: .rest, on: loop).get()
        for (index, (publication, outcome)) in zip(indices, zip(publications, outcomes)) {
            switch outcome {
            case .success(let outcome):
                let receipt = outcome.receipt
                results[index] = Result(
                    channel: publication.channel, delivered: outcome.delivered, id: receipt.id, offset: receipt.position?.offset,
                    epoch: receipt.position?.epoch, duplicate: receipt.duplicate ? true : nil)
            case .failure(let error):
                results[index] = .failure(APIError.unavailable(error).error, .channel(publication.channel))
            }
        }
    }

    /// Every user item, at once (each on its user's private channel, never stored).
    private func notifyUsers(_ batch: BatchRequest, into results: inout [Result?]) async {
        let publisher = self.publisher
        let answers = await withTaskGroup(of: (Int, Result).self) { group in
            for (index, item) in batch.items.enumerated() {
                guard case .success(let item) = item, case .user(let user) = item.target else { continue }
                group.addTask {
                    do throws(BrokerError) {
                        let delivered = try await publisher.notify(
                            user: user, payload: item.notification.encoded(), id: item.notification.id, idempotencyKey: item.idempotencyKey)
                        return (index, Result(user: user, delivered: delivered, id: item.notification.id))
                    } catch {
                        return (index, .failure(APIError.unavailable(error).error, .user(user)))
                    }
                }
            }
            var answers: [(Int, Result)] = []
            for await answer in group { answers.append(answer) }
            return answers
        }
        for (index, result) in answers { results[index] = result }
    }
}

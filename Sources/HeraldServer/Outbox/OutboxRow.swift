import HeraldCore
import NIOCore

/// One row of the outbox table, and what publishing it means: the same checks and the same
/// notification as `POST /api/notify/{channel}` (or `/api/users/{user}/notify`) with the row's
/// `payload` as the body.
struct OutboxRow: Sendable, Equatable {
    var id: Int64
    var channel: String?
    var user: String?
    /// The `jsonb` column as text.
    var payload: String

    enum Target: Sendable, Equatable {
        case channel(String)
        case user(String)
    }

    struct Prepared: Sendable {
        var target: Target
        var notification: OutgoingNotification
    }

    /// The publication, or why the row cannot be published (it goes to `<table>_failed`).
    func prepare(maxBodyBytes: Int) -> Result<Prepared, OutboxRowError> {
        do throws(APIError) {
            guard payload.utf8.count <= maxBodyBytes else {
                throw APIError(.badRequest, .payloadTooLarge, "payload larger than \(maxBodyBytes) bytes")
            }
            let request = try PublishRequest.parse(ByteBuffer(string: payload), requiringChannels: false)
            switch (channel, user) {
            case (let channel?, nil):
                try RequestValidation.channel(channel)
                return .success(Prepared(target: .channel(channel), notification: request.notification(on: channel)))
            case (nil, let user?):
                try UserRoutes.validate(user: user)
                var notification = request.notification(on: "")
                notification.fields.user = user
                return .success(Prepared(target: .user(user), notification: notification))
            default:
                throw APIError(.badRequest, .invalidField, "exactly one of channel and user_id must be set")
            }
        } catch {
            return .failure(OutboxRowError(reason: "\(error.error.code.rawValue): \(error.error.error)"))
        }
    }

    /// The idempotency key the row publishes with: a row published again (its node died before
    /// deleting it) is a duplicate within the idempotency window.
    func idempotencyKey(table: String) -> String { "outbox:\(table):\(id)" }
}

struct OutboxRowError: Error, Equatable {
    var reason: String
}

import HeraldCore
import HeraldProtocol
import Hummingbird
import NIOCore

/// `/api/users/{user}/…`: what an application addresses to a user — the `sub` of the user's
/// connection tokens — on every device, on every node.
///
/// Each travels on the user's private channel (``UserChannel``), never stored: a user with no
/// connection receives nothing, and the answer says so (`delivered: 0`). The counts are the
/// user's connections in the whole cluster as the nodes registered them (within milliseconds
/// of connecting).
struct UserRoutes {
    let publisher: Publisher
    /// The users' acknowledged positions (`durable` namespaces).
    let positions: any ReadPositions
    let configuration: HeraldConfiguration

    func register(on router: Router<HeraldRequestContext>) {
        router.post("/api/users/:user/notify") { request, context in try await notify(request, context) }
        router.post("/api/users/:user/disconnect") { _, context in try await disconnect(context) }
        router.post("/api/users/:user/unsubscribe") { request, context in try await unsubscribe(request, context) }
        router.get("/api/users/:user/positions") { _, context in try await readPositions(context) }
    }

    struct PositionsResponse: Encodable {
        var user: String
        /// Channel → the position the user acknowledged last.
        var positions: [String: StreamPosition]
    }

    /// The user's acknowledged positions on `durable` channels (empty when none).
    private func readPositions(_ context: HeraldRequestContext) async throws -> Response {
        let user = try Self.user(context)
        do {
            return .json(PositionsResponse(user: user, positions: try await positions.positions(user: user)))
        } catch {
            throw APIError(.serviceUnavailable, .unavailable, "\(error)")
        }
    }

    struct NotifyResponse: Encodable {
        var success = true
        var user: String
        var delivered: Int
        var id: String
    }

    struct DisconnectResponse: Encodable {
        var success = true
        var user: String
        var disconnected: Int
    }

    struct UnsubscribeResponse: Encodable {
        var success = true
        var user: String
        var channel: String
        /// The user's connections told to leave (those not subscribed ignore it).
        var connections: Int
    }

    /// The same body as a channel notify; the notification carries `user` instead of `channel`.
    private func notify(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let user = try Self.user(context)
        let body = try PublishRequest.parse(
            try await RequestValidation.body(request, limit: configuration.maxBodyBytes), requiringChannels: false)
        var notification = body.notification(on: "")
        notification.fields.user = user
        let delivered = try await APIError.whileAvailable {
            try await publisher.notify(user: user, payload: notification.encoded(), id: notification.id)
        }
        return .json(NotifyResponse(user: user, delivered: delivered, id: notification.id))
    }

    private func disconnect(_ context: HeraldRequestContext) async throws -> Response {
        let user = try Self.user(context)
        let connections = try await APIError.whileAvailable { try await publisher.signal(user: user, .disconnect) }
        return .json(DisconnectResponse(user: user, disconnected: connections))
    }

    /// Body `{"channel": C}`.
    private func unsubscribe(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let user = try Self.user(context)
        let bytes = try await RequestValidation.body(request, limit: configuration.maxBodyBytes)
        let channel = try ChannelField.parse(bytes)
        try RequestValidation.channel(channel)
        let connections = try await APIError.whileAvailable { try await publisher.signal(user: user, .unsubscribe(channel: channel)) }
        return .json(UnsubscribeResponse(user: user, channel: channel, connections: connections))
    }

    /// The `{user}` path segment: 1–256 bytes, no control characters.
    static func user(_ context: HeraldRequestContext) throws -> String {
        let user = context.parameters.get("user") ?? ""
        try validate(user: user)
        return user
    }

    /// A user id as the API takes it (the outbox's `user_id` too).
    static func validate(user: String) throws(APIError) {
        guard !user.isEmpty, user.utf8.count <= UserChannel.maxUserLength else {
            throw APIError(.badRequest, .invalidField, "user must be 1–\(UserChannel.maxUserLength) bytes (a token's sub)")
        }
        guard !user.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw APIError(.badRequest, .invalidField, "user must not contain control characters")
        }
    }
}

/// A body that names one channel: `{"channel": "…"}`.
enum ChannelField {
    static func parse(_ bytes: ByteBuffer) throws(APIError) -> String {
        let view = bytes.readableBytesView
        let fields = try RequestValidation.objectFields(view, empty: "{\"channel\":…}")
        guard let field = fields["channel"], field.kind != .null else {
            throw APIError(.badRequest, .missingField, "missing field \"channel\"")
        }
        guard let channel = field.string else { throw APIError(.badRequest, .invalidField, "field \"channel\" must be a string") }
        return channel
    }
}

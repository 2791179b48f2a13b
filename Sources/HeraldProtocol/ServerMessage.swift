import Foundation

/// A message the server sends to a WebSocket client (JSON text frame with a `type` field).
///
/// `Decodable` too, so that the client library and the tests read exactly what the server writes.
public enum ServerMessage: Sendable, Equatable {
    case welcome(clientId: String, node: String, message: String)
    /// The `auth` message's token was accepted; `expiresAt` is its `exp` in Unix milliseconds.
    case authenticated(userId: String, expiresAt: Int64)
    /// The subscription is in effect. `position`: the channel's latest position (`nil` while
    /// history is off). `recovered`: only for a `subscribe` with `since` — whether every
    /// notification after it follows (`replayed` of them), or the client missed something that
    /// cannot be replayed.
    case subscribed(channel: String, subscriberCount: Int, position: StreamPosition? = nil, recovery: Recovery? = nil)
    case unsubscribed(channel: String)
    case nameSet(name: String)
    case subscriptions(channels: [String])
    case pong(timestamp: Int64)
    case ping(timestamp: Int64)
    case error(ProtocolError)
    case notification(HeraldNotification)
    /// The node is stopping; `reconnectAfter` (ms) spreads the reconnects of a rolling restart.
    case serverShutdown(message: String, reconnectAfter: Int? = nil)
    /// The answer to `presence`: the channel's members (at most ``maxPresenceMembers``, in
    /// client id order) and how many there are in all.
    case presence(channel: String, members: [PresenceMember], total: Int)
    /// A member joined or left a channel with join/leave events on (`HERALD_JOIN_LEAVE_CHANNELS`).
    case join(channel: String, member: PresenceMember)
    case leave(channel: String, member: PresenceMember)
    /// More members came and went at once than events are sent for (a node restarting): ask
    /// for `presence` again.
    case presenceChanged(channel: String, joined: Int, left: Int)
    /// The server ended this connection for good (SSE's last event; WebSockets get the close code).
    case disconnect(code: Int, reason: String)

    /// Most members one `presence` reply lists (`total` still counts them all).
    public static let maxPresenceMembers = 1000

    /// The outcome of a `subscribe` with `since`.
    public struct Recovery: Sendable, Equatable {
        public var recovered: Bool
        /// How many notifications were replayed (0 when not recovered).
        public var replayed: Int
        /// A `durable` channel resumed from the user's acknowledged position: how many
        /// notifications followed it (whether or not history still had them all).
        public var unread: Int?

        public init(recovered: Bool, replayed: Int, unread: Int? = nil) {
            self.recovered = recovered
            self.replayed = replayed
            self.unread = unread
        }
    }

    public var type: String {
        switch self {
        case .welcome: "welcome"
        case .authenticated: "authenticated"
        case .subscribed: "subscribed"
        case .unsubscribed: "unsubscribed"
        case .nameSet: "name_set"
        case .subscriptions: "subscriptions"
        case .pong: "pong"
        case .ping: "ping"
        case .error: "error"
        case .notification: "notification"
        case .serverShutdown: "server_shutdown"
        case .presence: "presence"
        case .join: "join"
        case .leave: "leave"
        case .presenceChanged: "presence_changed"
        case .disconnect: "disconnect"
        }
    }
}

extension ServerMessage: Codable {
    enum Key: String, CodingKey {
        case type, clientId, node, message, channel, subscriberCount, name, channels, timestamp, error, code
        case userId, expiresAt, offset, epoch, recovered, replayed, unread, reconnectAfter
        case members, total, member, joined, left, reason
    }

    public func encode(to encoder: any Encoder) throws {
        if case .notification(let notification) = self {
            try notification.encode(to: encoder)
            return
        }
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(type, forKey: .type)
        switch self {
        case .welcome(let clientId, let node, let message):
            try container.encode(clientId, forKey: .clientId)
            try container.encode(node, forKey: .node)
            try container.encode(message, forKey: .message)
        case .authenticated(let userId, let expiresAt):
            try container.encode(userId, forKey: .userId)
            try container.encode(expiresAt, forKey: .expiresAt)
        case .subscribed(let channel, let count, let position, let recovery):
            try container.encode(channel, forKey: .channel)
            try container.encode(count, forKey: .subscriberCount)
            try container.encodeIfPresent(position?.offset, forKey: .offset)
            try container.encodeIfPresent(position?.epoch, forKey: .epoch)
            try container.encodeIfPresent(recovery?.recovered, forKey: .recovered)
            try container.encodeIfPresent(recovery?.replayed, forKey: .replayed)
            try container.encodeIfPresent(recovery?.unread, forKey: .unread)
        case .unsubscribed(let channel):
            try container.encode(channel, forKey: .channel)
        case .nameSet(let name):
            try container.encode(name, forKey: .name)
        case .subscriptions(let channels):
            try container.encode(channels, forKey: .channels)
        case .pong(let timestamp), .ping(let timestamp):
            try container.encode(timestamp, forKey: .timestamp)
        case .error(let error):
            try container.encode(error.error, forKey: .error)
            try container.encode(error.code, forKey: .code)
            try container.encodeIfPresent(error.channel, forKey: .channel)
        case .serverShutdown(let message, let reconnectAfter):
            try container.encode(message, forKey: .message)
            try container.encodeIfPresent(reconnectAfter, forKey: .reconnectAfter)
        case .presence(let channel, let members, let total):
            try container.encode(channel, forKey: .channel)
            try container.encode(members, forKey: .members)
            try container.encode(total, forKey: .total)
        case .join(let channel, let member), .leave(let channel, let member):
            try container.encode(channel, forKey: .channel)
            try container.encode(member, forKey: .member)
        case .presenceChanged(let channel, let joined, let left):
            try container.encode(channel, forKey: .channel)
            try container.encode(joined, forKey: .joined)
            try container.encode(left, forKey: .left)
        case .disconnect(let code, let reason):
            try container.encode(code, forKey: .code)
            try container.encode(reason, forKey: .reason)
        case .notification:
            break
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "welcome":
            self = .welcome(
                clientId: try container.decode(String.self, forKey: .clientId),
                node: try container.decodeIfPresent(String.self, forKey: .node) ?? "",
                message: try container.decodeIfPresent(String.self, forKey: .message) ?? ""
            )
        case "authenticated":
            self = .authenticated(
                userId: try container.decode(String.self, forKey: .userId),
                expiresAt: try container.decode(Int64.self, forKey: .expiresAt)
            )
        case "subscribed":
            var position: StreamPosition?
            if let offset = try container.decodeIfPresent(Int64.self, forKey: .offset),
                let epoch = try container.decodeIfPresent(String.self, forKey: .epoch)
            {
                position = StreamPosition(offset: offset, epoch: epoch)
            }
            let recovery = try container.decodeIfPresent(Bool.self, forKey: .recovered).map { recovered in
                Recovery(
                    recovered: recovered, replayed: (try? container.decodeIfPresent(Int.self, forKey: .replayed)) ?? 0,
                    unread: try? container.decodeIfPresent(Int.self, forKey: .unread))
            }
            self = .subscribed(
                channel: try container.decode(String.self, forKey: .channel),
                subscriberCount: try container.decode(Int.self, forKey: .subscriberCount),
                position: position, recovery: recovery
            )
        case "unsubscribed": self = .unsubscribed(channel: try container.decode(String.self, forKey: .channel))
        case "name_set": self = .nameSet(name: try container.decode(String.self, forKey: .name))
        case "subscriptions": self = .subscriptions(channels: try container.decode([String].self, forKey: .channels))
        case "pong": self = .pong(timestamp: try container.decode(Int64.self, forKey: .timestamp))
        case "ping": self = .ping(timestamp: try container.decode(Int64.self, forKey: .timestamp))
        case "error":
            self = .error(
                ProtocolError(
                    try container.decode(ErrorCode.self, forKey: .code),
                    try container.decode(String.self, forKey: .error),
                    channel: try container.decodeIfPresent(String.self, forKey: .channel)
                )
            )
        case "notification": self = .notification(try HeraldNotification(from: decoder))
        case "server_shutdown":
            self = .serverShutdown(
                message: try container.decodeIfPresent(String.self, forKey: .message) ?? "",
                reconnectAfter: try container.decodeIfPresent(Int.self, forKey: .reconnectAfter))
        case "presence":
            self = .presence(
                channel: try container.decode(String.self, forKey: .channel),
                members: try container.decode([PresenceMember].self, forKey: .members),
                total: try container.decode(Int.self, forKey: .total))
        case "join", "leave":
            let channel = try container.decode(String.self, forKey: .channel)
            let member = try container.decode(PresenceMember.self, forKey: .member)
            self = type == "join" ? .join(channel: channel, member: member) : .leave(channel: channel, member: member)
        case "presence_changed":
            self = .presenceChanged(
                channel: try container.decode(String.self, forKey: .channel),
                joined: try container.decode(Int.self, forKey: .joined), left: try container.decode(Int.self, forKey: .left))
        case "disconnect":
            self = .disconnect(
                code: try container.decode(Int.self, forKey: .code), reason: try container.decode(String.self, forKey: .reason))
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown server message type \(type)")
        }
    }
}

extension ServerMessage {
    /// Shared encoder: `JSONEncoder` is thread-safe for encoding and costly to create.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return encoder
    }()

    /// The message as compact JSON bytes.
    public func jsonBytes() -> [UInt8] {
        // Encoding our own enum of strings and numbers cannot fail.
        Array((try? Self.encoder.encode(self)) ?? Data())
    }

    /// Parses one server message from JSON text.
    public static func decode(_ bytes: some Collection<UInt8>) throws -> ServerMessage {
        try JSONDecoder().decode(ServerMessage.self, from: Data(bytes))
    }
}

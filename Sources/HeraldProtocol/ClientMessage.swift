import Foundation

/// A message a WebSocket client sends to the server (JSON text frame with a `type` field).
public enum ClientMessage: Sendable, Equatable {
    /// A connection token (JWT), accepted only as the first message of a connection.
    case auth(token: String)
    /// Join `channel`. With `since` (the position of the last notification the client saw),
    /// the server replays what the client missed, or says it cannot (`recovered: false`).
    case subscribe(channel: String, since: StreamPosition? = nil)
    case unsubscribe(channel: String)
    case setName(String)
    case listSubscriptions
    case ping
    case pong
    /// Post `text` to a channel the client is subscribed to; the other subscribers receive it
    /// as a notification carrying `from`.
    case message(channel: String, text: String)
    /// Who is subscribed to `channel` (the client must be subscribed to it).
    case presence(channel: String)
    /// The client handled `channel`'s notifications up to `offset` (cumulative); `epoch` when
    /// the client has it (else the one the connection was answered with).
    case ack(channel: String, offset: Int64, epoch: String? = nil)

    /// The wire `type` of each message.
    public var type: String {
        switch self {
        case .auth: "auth"
        case .subscribe: "subscribe"
        case .unsubscribe: "unsubscribe"
        case .setName: "set_name"
        case .listSubscriptions: "list_subscriptions"
        case .ping: "ping"
        case .pong: "pong"
        case .message: "message"
        case .presence: "presence"
        case .ack: "ack"
        }
    }
}

extension ClientMessage: Codable {
    enum Key: String, CodingKey {
        case type, channel, name, text, token, since, offset, epoch
    }

    enum PositionKey: String, CodingKey {
        case offset, epoch
    }

    /// Decodes one message, throwing a ``ProtocolError`` whose code says exactly what is wrong.
    public init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<Key>
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            throw ProtocolError(.invalidMessage, "message must be a JSON object with a \"type\" field")
        }
        let type = try Self.string(.type, in: container)
        switch type {
        case "auth": self = .auth(token: try Self.string(.token, in: container))
        case "subscribe":
            self = .subscribe(channel: try Self.string(.channel, in: container), since: try Self.position(.since, in: container))
        case "unsubscribe": self = .unsubscribe(channel: try Self.string(.channel, in: container))
        case "presence": self = .presence(channel: try Self.string(.channel, in: container))
        case "ack":
            guard container.contains(.offset) else { throw ProtocolError(.missingField, "missing field \"offset\"") }
            guard let offset = try? container.decode(Int64.self, forKey: .offset), offset >= 0 else {
                throw ProtocolError(.invalidField, "field \"offset\" must be a whole number ≥ 0")
            }
            var epoch: String?
            if container.contains(.epoch), (try? container.decodeNil(forKey: .epoch)) == false {
                guard let value = try? container.decode(String.self, forKey: .epoch), !value.isEmpty, value.utf8.count <= 64 else {
                    throw ProtocolError(.invalidField, "field \"epoch\" must be a non-empty string of at most 64 bytes")
                }
                epoch = value
            }
            self = .ack(channel: try Self.string(.channel, in: container), offset: offset, epoch: epoch)
        case "set_name": self = .setName(try Self.string(.name, in: container))
        case "list_subscriptions": self = .listSubscriptions
        case "ping": self = .ping
        case "pong": self = .pong
        case "message":
            self = .message(
                channel: try Self.string(.channel, in: container),
                text: try Self.string(.text, in: container)
            )
        default:
            throw ProtocolError(.unknownType, "unknown message type \"\(type.prefix(64))\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(type, forKey: .type)
        switch self {
        case .auth(let token):
            try container.encode(token, forKey: .token)
        case .subscribe(let channel, let since):
            try container.encode(channel, forKey: .channel)
            try container.encodeIfPresent(since, forKey: .since)
        case .unsubscribe(let channel), .presence(let channel):
            try container.encode(channel, forKey: .channel)
        case .setName(let name):
            try container.encode(name, forKey: .name)
        case .message(let channel, let text):
            try container.encode(channel, forKey: .channel)
            try container.encode(text, forKey: .text)
        case .ack(let channel, let offset, let epoch):
            try container.encode(channel, forKey: .channel)
            try container.encode(offset, forKey: .offset)
            try container.encodeIfPresent(epoch, forKey: .epoch)
        case .listSubscriptions, .ping, .pong:
            break
        }
    }

    /// An optional `{"offset": whole number ≥ 0, "epoch": string}`; anything else is
    /// `invalid_field` naming what is wrong.
    private static func position(_ key: Key, in container: KeyedDecodingContainer<Key>) throws -> StreamPosition? {
        guard container.contains(key), (try? container.decodeNil(forKey: key)) == false else { return nil }
        guard let position = try? container.nestedContainer(keyedBy: PositionKey.self, forKey: key) else {
            throw ProtocolError(.invalidField, "field \"since\" must be an object {\"offset\":…,\"epoch\":…}")
        }
        guard let offset = try? position.decode(Int64.self, forKey: .offset), offset >= 0 else {
            throw ProtocolError(.invalidField, "field \"since.offset\" must be a whole number ≥ 0")
        }
        guard let epoch = try? position.decode(String.self, forKey: .epoch), !epoch.isEmpty, epoch.utf8.count <= 64 else {
            throw ProtocolError(.invalidField, "field \"since.epoch\" must be a non-empty string of at most 64 bytes")
        }
        return StreamPosition(offset: offset, epoch: epoch)
    }

    private static func string(_ key: Key, in container: KeyedDecodingContainer<Key>) throws -> String {
        guard container.contains(key), (try? container.decodeNil(forKey: key)) == false else {
            throw ProtocolError(.missingField, "missing field \"\(key.rawValue)\"")
        }
        guard let value = try? container.decode(String.self, forKey: key) else {
            throw ProtocolError(.invalidField, "field \"\(key.rawValue)\" must be a string")
        }
        return value
    }
}

extension ClientMessage {
    /// Parses a text frame. Every failure is a ``ProtocolError`` with a stable code.
    public static func decode(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> ClientMessage {
        do {
            return try JSONDecoder().decode(ClientMessage.self, from: Data(bytes))
        } catch let error as ProtocolError {
            throw error
        } catch {
            throw ProtocolError(.invalidJSON, "frame is not valid JSON")
        }
    }
}

import Foundation
import HeraldSupport

/// A notification as subscribers receive it.
///
/// Built once per publish, encoded once to JSON, and those bytes travel unchanged through the
/// broker to every subscriber on every node.
public struct HeraldNotification: Codable, Sendable, Equatable {
    /// The channel it was published to; empty for a notification addressed to a user.
    public var channel: String
    /// The user it was addressed to (`POST /api/users/{user}/notify`); then there is no channel.
    public var user: String?
    public var title: String?
    public var body: String?
    public var data: JSONValue?
    /// ISO 8601 time at which the publishing node accepted the notification.
    public var timestamp: String
    /// Unique id of this notification (the same on every channel of a broadcast).
    public var id: String
    /// Client id of the WebSocket client that posted it with a `message`; absent for REST.
    public var from: String?
    /// Name of that client, if it set one (self-chosen: display it, do not trust it).
    public var fromName: String?
    /// The verified user id (token `sub`) of that client, when it authenticated.
    public var fromUser: String?
    /// Where the notification sits in its channel's history; absent while history is off.
    public var position: StreamPosition?
    /// The publisher's `conflate_key`: a slow client of a `latest` namespace gets only the
    /// newest notification per channel and key.
    public var conflateKey: String?

    /// A new notification gets a fresh ``timestampNow()`` and ``makeID()`` unless given.
    public init(
        channel: String, title: String? = nil, body: String? = nil, data: JSONValue? = nil,
        timestamp: String = timestampNow(), id: String = makeID(), from: String? = nil, fromName: String? = nil,
        fromUser: String? = nil, position: StreamPosition? = nil, user: String? = nil, conflateKey: String? = nil
    ) {
        self.conflateKey = conflateKey
        self.channel = channel
        self.user = user
        self.title = title
        self.body = body
        self.data = data
        self.timestamp = timestamp
        self.id = id
        self.from = from
        self.fromName = fromName
        self.fromUser = fromUser
        self.position = position
    }

    enum Key: String, CodingKey {
        case type, channel, user, title, body, data, timestamp, id, from, fromName, fromUser, offset, epoch
        case conflateKey = "conflate_key"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode("notification", forKey: .type)
        if user == nil || !channel.isEmpty { try container.encode(channel, forKey: .channel) }
        try container.encodeIfPresent(user, forKey: .user)
        try container.encodeIfPresent(title, forKey: .title)
        try container.encodeIfPresent(body, forKey: .body)
        try container.encodeIfPresent(data, forKey: .data)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(id, forKey: .id)
        try container.encodeIfPresent(from, forKey: .from)
        try container.encodeIfPresent(fromName, forKey: .fromName)
        try container.encodeIfPresent(fromUser, forKey: .fromUser)
        try container.encodeIfPresent(conflateKey, forKey: .conflateKey)
        try container.encodeIfPresent(position?.offset, forKey: .offset)
        try container.encodeIfPresent(position?.epoch, forKey: .epoch)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        user = try container.decodeIfPresent(String.self, forKey: .user)
        channel = try user == nil ? container.decode(String.self, forKey: .channel) : container.decodeIfPresent(String.self, forKey: .channel) ?? ""
        title = try container.decodeIfPresent(String.self, forKey: .title)
        body = try container.decodeIfPresent(String.self, forKey: .body)
        data = try container.decodeIfPresent(JSONValue.self, forKey: .data)
        timestamp = try container.decode(String.self, forKey: .timestamp)
        id = try container.decode(String.self, forKey: .id)
        from = try container.decodeIfPresent(String.self, forKey: .from)
        fromName = try container.decodeIfPresent(String.self, forKey: .fromName)
        fromUser = try container.decodeIfPresent(String.self, forKey: .fromUser)
        conflateKey = try container.decodeIfPresent(String.self, forKey: .conflateKey)
        if let offset = try container.decodeIfPresent(Int64.self, forKey: .offset),
            let epoch = try container.decodeIfPresent(String.self, forKey: .epoch)
        {
            position = StreamPosition(offset: offset, epoch: epoch)
        }
    }

    /// A fresh id: random, URL-safe, and unique across nodes without coordination.
    public static func makeID() -> String {
        RandomID.make()
    }

    /// The current time as ISO 8601 with milliseconds, e.g. `2026-11-22T01:02:03.456Z`.
    public static func timestampNow() -> String {
        Date().formatted(timestampStyle)
    }

    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}

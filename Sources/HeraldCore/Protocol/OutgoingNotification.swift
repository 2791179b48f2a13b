import NIOCore

/// A notification as the server builds it for publishing: the same fields as
/// ``HeraldNotification`` (the typed model clients decode), with `data` kept as the raw JSON the
/// publisher sent.
///
/// Encoded once per publish with ``JSONWriter``; the bytes then go unchanged through the broker
/// to every subscriber on every node. The key order and omission of absent fields match
/// ``HeraldNotification``'s `Codable` form, and a test holds the two to the same output.
public struct OutgoingNotification: Sendable {
    public var channel: String
    public var title: String?
    public var body: String?
    public var data: RawJSON?
    public var timestamp: String
    public var id: String
    public var from: String?
    public var fromName: String?
    public var fromUser: String?

    public init(
        channel: String, title: String? = nil, body: String? = nil, data: RawJSON? = nil,
        timestamp: String = HeraldNotification.timestampNow(), id: String = HeraldNotification.makeID(),
        from: String? = nil, fromName: String? = nil, fromUser: String? = nil
    ) {
        self.channel = channel
        self.title = title
        self.body = body
        self.data = data
        self.timestamp = timestamp
        self.id = id
        self.from = from
        self.fromName = fromName
        self.fromUser = fromUser
    }

    /// The `notification` message as JSON text.
    public func encoded(allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var writer = JSONWriter(capacity: 160 + (data?.bytes.count ?? 0) + (body?.utf8.count ?? 0), allocator: allocator)
        writer.beginObject()
        writer.field("type", "notification")
        writer.field("channel", channel)
        writer.field("title", title)
        writer.field("body", body)
        writer.field("data", raw: data)
        writer.field("timestamp", timestamp)
        writer.field("id", id)
        writer.field("from", from)
        writer.field("fromName", fromName)
        writer.field("fromUser", fromUser)
        writer.endObject()
        return writer.buffer
    }
}

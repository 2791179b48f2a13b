import HeraldProtocol
import NIOCore

/// A notification as the server builds it for publishing: the same fields as
/// ``HeraldNotification`` (the typed model clients decode), with `data` kept as the raw JSON the
/// publisher sent.
///
/// Encoded once per publish with ``JSONWriter``; the bytes then go unchanged through the broker
/// to every subscriber on every node. The key order and omission of absent fields match
/// ``HeraldNotification``'s `Codable` form, and a test holds the two to the same output.
public struct OutgoingNotification: Sendable {
    /// Every field but `data` (whose `data` stays `nil`).
    public var fields: HeraldNotification
    public var data: RawJSON?

    public init(_ fields: HeraldNotification, data: RawJSON? = nil) {
        precondition(fields.data == nil, "an outgoing notification carries data as RawJSON")
        self.fields = fields
        self.data = data
    }

    public var channel: String {
        get { fields.channel }
        set { fields.channel = newValue }
    }

    public var id: String { fields.id }

    /// The `notification` message as JSON text.
    public func encoded(allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        let fields = self.fields
        var writer = JSONWriter(
            capacity: 160 + (data?.bytes.count ?? 0) + (fields.body?.utf8.count ?? 0), allocator: allocator)
        writer.beginObject()
        writer.field("type", "notification")
        if fields.user == nil || !fields.channel.isEmpty { writer.field("channel", fields.channel) }
        writer.field("user", fields.user)
        writer.field("title", fields.title)
        writer.field("body", fields.body)
        writer.field("data", raw: data)
        writer.field("timestamp", fields.timestamp)
        writer.field("id", fields.id)
        writer.field("from", fields.from)
        writer.field("fromName", fields.fromName)
        writer.field("fromUser", fields.fromUser)
        writer.field("conflate_key", fields.conflateKey)
        writer.endObject()
        return writer.buffer
    }
}

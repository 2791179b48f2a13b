import HeraldCore
import NIOCore

/// `POST /api/notify/{channel}` answer. Written by hand (sorted keys, like ``APIJSON``): it
/// goes out once per publish.
struct NotifyResponse {
    var success = true
    var channel: String
    var delivered: Int
    var id: String

    func encoded() -> ByteBuffer {
        var writer = JSONWriter(capacity: 96 + channel.utf8.count)
        writer.beginObject()
        writer.field("channel", channel)
        writer.field("delivered", delivered)
        writer.field("id", id)
        writer.field("success", success)
        writer.endObject()
        return writer.buffer
    }
}

struct BroadcastResponse: Encodable {
    struct Result: Encodable {
        var channel: String
        var delivered: Int
    }
    var success = true
    var id: String
    var delivered: Int
    var channels: [Result]
}

struct ChannelsResponse: Encodable {
    struct Row: Encodable {
        var name: String
        var subscribers: Int
    }
    var channels: [Row]
    var total: Int
    var nextCursor: String?
}

struct StatsResponse: Encodable {
    var node: String
    var broker: String
    var connections: Int
    var channels: Int
    var messagesPublished: Int
    var messagesDelivered: Int
    var uptimeSeconds: Double
    var startedAt: String
    /// Per-node breakdown (just this node when it runs alone).
    var nodes: [NodeStats]
}

struct ClientsResponse: Encodable {
    var clients: [ClientInfo]
    var total: Int
    var nextCursor: String?
}

struct HealthResponse: Encodable {
    var status: String
    var node: String
    var broker: String
    var brokerStatus: String
}

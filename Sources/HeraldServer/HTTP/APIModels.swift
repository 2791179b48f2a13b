import HeraldProtocol
import HeraldCore
import NIOCore

/// `POST /api/notify/{channel}` answer. Written by hand (sorted keys, like ``APIJSON``): it
/// goes out once per publish.
struct NotifyResponse {
    var success = true
    var channel: String
    var delivered: Int
    var id: String
    /// `nil` while history is off.
    var position: StreamPosition?
    /// The Idempotency-Key was used before: nothing new was delivered.
    var duplicate: Bool
    /// What the nodes reported (`?wait=`); then ``delivered`` is the sockets written.
    var receipt: ReceiptCollector.Result? = nil

    func encoded() -> ByteBuffer {
        var writer = JSONWriter(capacity: 128 + channel.utf8.count)
        writer.beginObject()
        if let acked = receipt?.acked { writer.field("acked", acked) }
        writer.field("channel", channel)
        if let receipt { writer.field("complete", receipt.complete) }
        writer.field("delivered", delivered)
        if duplicate { writer.field("duplicate", true) }
        writer.field("epoch", position?.epoch)
        writer.field("id", id)
        if let receipt {
            writer.field("missing_nodes", strings: receipt.missingNodes)
            writer.field("nodes", receipt.nodes)
        }
        if let offset = position?.offset { writer.field("offset", Int(offset)) }
        writer.field("success", success)
        writer.endObject()
        return writer.buffer
    }
}

struct BroadcastResponse: Encodable {
    struct Result: Encodable {
        var channel: String
        var delivered: Int
        var offset: Int64?
        var epoch: String?
    }
    var success = true
    var id: String
    var delivered: Int
    var channels: [Result]
    var duplicate: Bool?
}

/// `GET /api/history/{channel}` answer. The publications are the exact JSON subscribers got,
/// copied in as they are (no decoding and re-encoding).
struct HistoryResponse {
    var channel: String
    var page: HistoryPage
    var since: Int64

    func encoded() -> ByteBuffer {
        var writer = JSONWriter(capacity: 128 + page.publications.reduce(0) { $0 + $1.payload.readableBytes + 1 })
        writer.beginObject()
        writer.field("channel", channel)
        writer.field("epoch", page.latest?.epoch ?? "")
        writer.field("offset", Int(page.latest?.offset ?? 0))
        // Whether every notification after `since` is still retained.
        writer.field("complete", page.covers(after: since))
        writer.field("publications", rawElements: page.publications.map(\.payload))
        writer.endObject()
        return writer.buffer
    }
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

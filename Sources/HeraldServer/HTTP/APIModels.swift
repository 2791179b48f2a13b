import HeraldCore

/// `POST /api/notify/{channel}` body. Every field is optional; unknown fields are ignored.
struct NotifyRequest: Decodable {
    var title: String?
    var body: String?
    var data: JSONValue?
}

/// `POST /api/broadcast` body.
struct BroadcastRequest: Decodable {
    var channels: [String]
    var title: String?
    var body: String?
    var data: JSONValue?
}

struct NotifyResponse: Encodable {
    var success = true
    var channel: String
    var delivered: Int
    var id: String
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

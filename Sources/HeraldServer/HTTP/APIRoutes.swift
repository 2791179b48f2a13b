import Foundation
import HTTPTypes
import HeraldCore
import Hummingbird
import NIOCore

/// The REST API: publish, broadcast, and the node's figures.
struct APIRoutes {
    let hub: Hub
    let configuration: HeraldConfiguration
    let started = NIODeadline.now()
    let startedAt = HeraldNotification.timestampNow()

    /// Most channels one broadcast may name.
    static let maxBroadcastChannels = 1000
    /// Page size bounds for the listing endpoints.
    static let defaultPageSize = 100
    static let maxPageSize = 1000

    func register(on router: Router<HeraldRequestContext>) {
        router.post("/api/notify/:channel") { request, context in try await notify(request, context) }
        router.post("/api/broadcast") { request, context in try await broadcast(request, context) }
        router.get("/api/channels") { request, _ in try channels(request) }
        router.get("/api/stats") { _, _ in stats() }
        router.get("/api/clients") { request, _ in try await clients(request) }
        router.get("/health") { _, _ in health() }
    }

    // MARK: Publishing

    private func notify(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let channel = context.parameters.get("channel") ?? ""
        try Self.validate(channel)
        let body = try await Self.decodeBody(NotifyRequest.self, from: request, limit: configuration.maxBodyBytes)
        let notification = try makeNotification(channel: channel, title: body.title, body: body.body, data: body.data)
        let delivered = try await publish(notification)
        return .json(NotifyResponse(channel: channel, delivered: delivered, id: notification.id))
    }

    private func broadcast(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let body = try await Self.decodeBody(BroadcastRequest.self, from: request, limit: configuration.maxBodyBytes)
        var seen = Set<String>()
        let channels = body.channels.filter { seen.insert($0).inserted }
        guard !channels.isEmpty else { throw APIError(.badRequest, .invalidField, "field \"channels\" must not be empty") }
        guard channels.count <= Self.maxBroadcastChannels else {
            throw APIError(.badRequest, .invalidField, "at most \(Self.maxBroadcastChannels) channels per broadcast")
        }
        for channel in channels { try Self.validate(channel) }
        let template = try makeNotification(channel: "", title: body.title, body: body.body, data: body.data)
        var results: [BroadcastResponse.Result] = []
        for channel in channels {
            var notification = template
            notification.channel = channel
            results.append(.init(channel: channel, delivered: try await publish(notification)))
        }
        return .json(
            BroadcastResponse(id: template.id, delivered: results.reduce(0) { $0 + $1.delivered }, channels: results))
    }

    private func makeNotification(channel: String, title: String?, body: String?, data: JSONValue?) throws -> HeraldNotification {
        if let data, data != .null, !data.isObject {
            throw APIError(.badRequest, .invalidField, "field \"data\" must be a JSON object")
        }
        return HeraldNotification(
            channel: channel, title: title ?? "Notification", body: body ?? "", data: data == .null ? nil : data,
            timestamp: HeraldNotification.timestampNow(), id: HeraldNotification.makeID())
    }

    /// Publishes and returns `delivered`: the number of subscribers of the channel when the
    /// notification was accepted — the sockets it is handed to.
    private func publish(_ notification: HeraldNotification) async throws -> Int {
        let payload = ByteBuffer(bytes: ServerMessage.notification(notification).jsonBytes())
        let delivered = hub.subscriberCount(notification.channel)
        do {
            try await hub.publish(Publication(channel: notification.channel, payload: payload))
        } catch {
            throw APIError(.serviceUnavailable, .unavailable, "\(error)")
        }
        return delivered
    }

    // MARK: Figures

    private func channels(_ request: Request) throws -> Response {
        let limit = try Self.pageSize(request)
        let cursor = request.uri.queryParameters["cursor"].map(String.init) ?? ""
        let counts = hub.channelCounts()
        let page = counts.keys.filter { $0 > cursor }.sorted().prefix(limit)
        let rows = page.map { ChannelsResponse.Row(name: $0, subscribers: counts[$0] ?? 0) }
        let next = rows.count == limit ? rows.last?.name : nil
        return .json(ChannelsResponse(channels: rows, total: counts.count, nextCursor: next))
    }

    private func stats() -> Response {
        .json(
            StatsResponse(
                node: hub.nodeID, broker: hub.broker.kind, connections: hub.connectionCount,
                channels: hub.channelCounts().count, messagesPublished: hub.messagesPublished,
                messagesDelivered: hub.messagesDelivered,
                uptimeSeconds: Double((NIODeadline.now() - started).nanoseconds / 1_000_000) / 1000,
                startedAt: startedAt))
    }

    private func clients(_ request: Request) async throws -> Response {
        let limit = try Self.pageSize(request)
        var cursor: UInt64 = 0
        if let raw = request.uri.queryParameters["cursor"] {
            guard let value = UInt64(String(raw)) else {
                throw APIError(.badRequest, .invalidField, "cursor must be a value returned as nextCursor")
            }
            cursor = value
        }
        let rows = await hub.clients(after: cursor, limit: limit)
        let next = rows.count == limit ? rows.last.map { String($0.sequence) } : nil
        return .json(ClientsResponse(clients: rows.map(\.info), total: hub.connectionCount, nextCursor: next))
    }

    private func health() -> Response {
        let status = hub.broker.status
        let description: String
        switch status {
        case .up: description = "up"
        case .degraded(let reason): description = "degraded: \(reason)"
        }
        return .json(
            HealthResponse(
                status: status.isUp ? "ok" : "degraded", node: hub.nodeID, broker: hub.broker.kind,
                brokerStatus: description))
    }

    // MARK: Input

    static func validate(_ channel: String) throws {
        if let problem = ChannelName.problem(with: channel) {
            throw APIError(.badRequest, .invalidChannel, problem)
        }
    }

    static func pageSize(_ request: Request) throws -> Int {
        guard let raw = request.uri.queryParameters["limit"] else { return defaultPageSize }
        guard let limit = Int(String(raw)), (1...maxPageSize).contains(limit) else {
            throw APIError(.badRequest, .invalidField, "limit must be a whole number from 1 to \(maxPageSize)")
        }
        return limit
    }

    /// Reads and decodes a JSON body, mapping every failure to a 400 with a precise code.
    static func decodeBody<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.badRequest, .payloadTooLarge, "body larger than \(limit) bytes")
        }
        let data = buffer.readableBytes == 0 ? Data("{}".utf8) : Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw APIError(.badRequest, .missingField, "missing field \"\(key.stringValue)\"")
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            throw APIError(.badRequest, .invalidField, "field \"\(path(context.codingPath))\" has the wrong type")
        } catch {
            throw APIError(.badRequest, .invalidJSON, "body is not valid JSON")
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

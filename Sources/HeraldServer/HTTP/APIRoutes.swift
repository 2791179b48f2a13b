import Foundation
import HTTPTypes
import HeraldCore
import HeraldProtocol
import Hummingbird
import NIOCore

/// The REST API's figures and history; publishing is ``PublishRoutes``' (and the fast path's).
struct APIRoutes {
    /// This node's own figures.
    let local: any LocalNodeState
    /// For `/health`, `/ready` and `/api/history`.
    let broker: any Broker
    /// The other nodes' figures; `nil` for a node running alone.
    let cluster: (any ClusterDirectory)?
    let slots: ConnectionSlots
    let configuration: HeraldConfiguration

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/api/channels") { request, _ in try await channels(request) }
        router.get("/api/stats") { _, _ in try await stats() }
        router.get("/api/clients") { request, _ in try await clients(request) }
        router.get("/api/history/:channel") { request, context in try await history(request, context) }
        router.get("/health") { _, _ in health() }
        router.get("/ready") { _, _ in ready() }
    }

    // MARK: History

    /// `GET /api/history/{channel}?since=N&limit=M`: the notifications after offset N (oldest
    /// first, as delivered on the socket) and the channel's latest position.
    private func history(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let channel = context.parameters.get("channel") ?? ""
        try RequestValidation.channel(channel)
        let limit = try RequestValidation.pageSize(request)
        var since: Int64 = 0
        if let raw = request.uri.queryParameters["since"] {
            guard let value = Int64(String(raw)), value >= 0 else {
                throw APIError(.badRequest, .invalidField, "since must be a whole number ≥ 0")
            }
            since = value
        }
        guard configuration.history.isOn else {
            throw APIError(.notFound, .notFound, "this node keeps no history (HERALD_HISTORY_SIZE=0)")
        }
        let page = try await APIError.whileAvailable { try await broker.history(of: channel, after: since, limit: limit) }
        return .json(HistoryResponse(channel: channel, page: page, since: since).encoded())
    }

    // MARK: Figures

    private func channels(_ request: Request) async throws -> Response {
        let limit = try RequestValidation.pageSize(request)
        let cursor = request.uri.queryParameters["cursor"].map(String.init) ?? ""
        var counts = local.channelCounts()
        if let cluster {
            let remote = try await clusterCall { try await cluster.remoteChannelCounts() }
            counts.merge(remote, uniquingKeysWith: +)
        }
        counts = counts.filter { !UserChannel.isPrivate($0.key) }
        let page = counts.keys.filter { $0 > cursor }.sorted().prefix(limit)
        let rows = page.map { ChannelsResponse.Row(name: $0, subscribers: counts[$0] ?? 0) }
        let next = rows.count == limit ? rows.last?.name : nil
        return .json(ChannelsResponse(channels: rows, total: counts.count, nextCursor: next))
    }

    private func stats() async throws -> Response {
        let own = local.stats
        var nodes = [own]
        var channelCount = own.channels
        if let cluster {
            nodes += try await clusterCall { try await cluster.remoteNodes() }
            var counts = local.channelCounts()
            counts.merge(try await clusterCall { try await cluster.remoteChannelCounts() }, uniquingKeysWith: +)
            channelCount = counts.keys.count { !UserChannel.isPrivate($0) }
        }
        nodes.sort { $0.node < $1.node }
        return .json(
            StatsResponse(
                node: local.nodeID, broker: broker.kind, connections: nodes.reduce(0) { $0 + $1.connections },
                channels: channelCount, messagesPublished: nodes.reduce(0) { $0 + $1.messagesPublished },
                messagesDelivered: nodes.reduce(0) { $0 + $1.messagesDelivered },
                uptimeSeconds: own.uptimeSeconds, startedAt: own.startedAt, nodes: nodes))
    }

    /// Clients of the whole cluster, node by node (ordered by node id), then by connection
    /// sequence. The cursor `<sequence>@<node>` names the last row of the previous page.
    private func clients(_ request: Request) async throws -> Response {
        let limit = try RequestValidation.pageSize(request)
        var cursorNode = ""
        var cursorSequence: UInt64 = 0
        if let raw = request.uri.queryParameters["cursor"] {
            let parts = raw.split(separator: "@", maxSplits: 1)
            guard parts.count == 2, let sequence = UInt64(parts[0]) else {
                throw APIError(.badRequest, .invalidField, "cursor must be a value returned as nextCursor")
            }
            cursorSequence = sequence
            cursorNode = String(parts[1])
        }
        var counts = [local.nodeID: local.stats.connections]
        if let cluster {
            counts.merge(try await clusterCall { try await cluster.remoteClientCounts() }) { $1 }
        }
        var rows: [(node: String, sequence: UInt64, info: ClientInfo)] = []
        for node in counts.keys.sorted() where node >= cursorNode && rows.count < limit {
            let after = node == cursorNode ? cursorSequence : 0
            let wanted = limit - rows.count
            let page: [(UInt64, ClientInfo)]
            if node == local.nodeID {
                page = await local.clients(after: after, limit: wanted).map { ($0.sequence, $0.info) }
            } else if let cluster {
                page = try await clusterCall { try await cluster.remoteClients(of: node, after: after, limit: wanted) }
            } else {
                page = []
            }
            rows += page.map { (node, $0.0, $0.1) }
        }
        let next = rows.count == limit ? rows.last.map { "\($0.sequence)@\($0.node)" } : nil
        return .json(ClientsResponse(clients: rows.map(\.info), total: counts.values.reduce(0, +), nextCursor: next))
    }

    /// Runs a registry query; Redis trouble becomes a 503 rather than a 500.
    private func clusterCall<T>(_ body: () async throws -> T) async throws -> T {
        try await APIError.whileAvailable("cluster registry unavailable", body)
    }

    private func ready() -> Response {
        guard slots.isAccepting else {
            return .json(APIErrorBody(ProtocolError(.unavailable, "node is shutting down")), status: .serviceUnavailable)
        }
        if case .degraded(let reason) = broker.status {
            return .json(APIErrorBody(ProtocolError(.unavailable, reason)), status: .serviceUnavailable)
        }
        return .json(["status": "ready", "node": local.nodeID])
    }

    private func health() -> Response {
        let status = broker.status
        let description: String
        switch status {
        case .up: description = "up"
        case .degraded(let reason): description = "degraded: \(reason)"
        case .partial(let reason): description = "partial: \(reason)"
        }
        return .json(
            HealthResponse(
                status: status.isUp ? "ok" : "degraded", node: local.nodeID, broker: broker.kind,
                brokerStatus: description))
    }
}

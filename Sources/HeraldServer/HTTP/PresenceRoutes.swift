import HeraldCore
import HeraldProtocol
import Hummingbird

/// `GET /api/presence/{channel}?limit=&cursor=`: who is subscribed to a channel, in the whole
/// cluster, one page at a time in client id order.
struct PresenceRoutes {
    /// `nil` with `HERALD_PRESENCE=false`: the endpoint answers 404.
    let presence: (any PresenceStore)?

    struct PresenceResponse: Encodable {
        var channel: String
        var members: [PresenceMember]
        var total: Int
        var nextCursor: String?
    }

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/api/presence/:channel") { request, context in try await members(request, context) }
    }

    private func members(_ request: Request, _ context: HeraldRequestContext) async throws -> Response {
        let channel = context.parameters.get("channel") ?? ""
        try RequestValidation.channel(channel)
        let limit = try RequestValidation.pageSize(request)
        let cursor = request.uri.queryParameters["cursor"].map(String.init)
        guard let presence else { throw APIError(.notFound, .notFound, "presence is off on this node (HERALD_PRESENCE=false)") }
        let page = try await APIError.whileAvailable { try await presence.members(of: channel, after: cursor, limit: limit) }
        return .json(PresenceResponse(channel: channel, members: page.members, total: page.total, nextCursor: page.nextCursor))
    }
}

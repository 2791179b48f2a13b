/// The single node's ``PresenceStore``: its own Hub is the whole cluster.
public struct LocalPresence: PresenceStore {
    private let hub: Hub

    public init(hub: Hub) {
        self.hub = hub
    }

    public func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage {
        let (members, total) = await hub.members(of: channel, after: cursor, limit: limit)
        return PresencePage(members: members, total: total, nextCursor: members.count == limit ? members.last?.clientId : nil)
    }
}

/// Presence turned off (`HERALD_PRESENCE=false`): every question is answered with that.
public struct DisabledPresence: PresenceStore {
    public init() {}

    public func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage {
        throw .unavailable("presence is off on this node (HERALD_PRESENCE=false)")
    }
}

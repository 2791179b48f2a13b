/// One `Member` per Redis shard (a broker, a presence store), and which one serves a channel.
///
/// The one place the routing rule is applied: everything a channel has lives on
/// `members[map.shard(of: channel)]`.
struct Shards<Member: Sendable>: Sendable {
    let map: ShardMap
    let members: [Member]

    /// - Parameter make: the member for shard `index`, given that shard's one-Redis topology.
    init(_ topology: RedisTopology, make: (_ index: Int, RedisTopology) -> Member) {
        self.map = topology.map
        self.members = topology.shards.indices.map { make($0, topology.shard($0)) }
    }

    /// The member that holds `channel`.
    func of(_ channel: String) -> Member {
        members.count == 1 ? members[0] : members[map.shard(of: channel)]
    }

    /// `channels` grouped by the member that holds them, in shard order, leaving out members
    /// that hold none.
    func grouped(_ channels: [String]) -> [(Member, [String])] {
        guard members.count > 1 else { return channels.isEmpty ? [] : [(members[0], channels)] }
        var groups = Array(repeating: [String](), count: members.count)
        for channel in channels { groups[map.shard(of: channel)].append(channel) }
        return zip(members, groups).filter { !$0.1.isEmpty }
    }
}

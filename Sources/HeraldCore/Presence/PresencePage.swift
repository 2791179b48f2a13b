import HeraldProtocol

/// One page of a channel's members, ordered by client id.
public struct PresencePage: Sendable, Equatable {
    public var members: [PresenceMember]
    /// Members of the channel in the whole cluster.
    public var total: Int
    /// The client id to continue after, when there may be more.
    public var nextCursor: String?

    public init(members: [PresenceMember], total: Int, nextCursor: String?) {
        self.members = members
        self.total = total
        self.nextCursor = nextCursor
    }
}

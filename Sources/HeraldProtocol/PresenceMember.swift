/// One connection subscribed to a channel, as presence reports it (`/api/presence`, the
/// `presence` reply, `join` and `leave`).
public struct PresenceMember: Codable, Sendable, Equatable, Hashable {
    public var clientId: String
    /// The `sub` of the connection's token; absent for anonymous clients.
    public var user: String?
    /// The name the client set with `set_name`, if any.
    public var name: String?
    public var node: String
    public var connectedAt: String

    public init(clientId: String, user: String?, name: String?, node: String, connectedAt: String) {
        self.clientId = clientId
        self.user = user
        self.name = name
        self.node = node
        self.connectedAt = connectedAt
    }
}


/// Who a verified connection token says the client is, and what it grants.
public struct ClientIdentity: Sendable, Equatable {
    /// The token's `sub` claim.
    public var userID: String
    /// The token's `channels` claim.
    public var grant: ChannelGrant
    /// The token's `exp` claim, in Unix milliseconds: the connection is closed then.
    public var expiresAtMillis: Int64

    public init(userID: String, grant: ChannelGrant, expiresAtMillis: Int64) {
        self.userID = userID
        self.grant = grant
        self.expiresAtMillis = expiresAtMillis
    }
}

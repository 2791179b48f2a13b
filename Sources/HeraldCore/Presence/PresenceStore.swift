import HeraldProtocol

/// Who is subscribed to a channel, in the whole cluster: the seam behind `/api/presence` and
/// the socket's `presence` message.
///
/// Contract, for every implementation:
/// - **Members** are connections subscribed to a public channel, one entry per connection
///   (a user on two devices is two members), with the member's current name.
/// - **Freshness**: a change on this node is in every answer this node gives afterwards; a
///   change on another node within that node's flush delay (milliseconds). A node that dies
///   without saying goodbye drops out within three registry heartbeats.
/// - **Pages** are ordered by client id; `after` is the last client id of the previous page.
///   `total` counts the whole channel.
/// - **Bounded**: an answer holds at most `limit` members, and costs no scan of other channels.
public protocol PresenceStore: Sendable {
    func members(of channel: String, after cursor: String?, limit: Int) async throws(PresenceError) -> PresencePage
}

/// Told by the Hub of every membership change of a public channel, on the connection's event
/// loop, so implementations only record the change and return.
public protocol MembershipObserver: AnyObject, Sendable {
    func joined(_ channel: String, _ member: PresenceMember)
    func left(_ channel: String, _ member: PresenceMember)
    /// A member's name changed; `channels` are all its channels.
    func updated(_ member: PresenceMember, channels: [String])
}

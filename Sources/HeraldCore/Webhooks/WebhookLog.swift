import NIOCore

/// One change of this node's share in a key's occupancy.
public struct OccupancyChange: Sendable, Equatable {
    public var key: OccupancyKey
    /// `true`: this node holds the key now; `false`: it gave it up.
    public var held: Bool

    public init(_ key: OccupancyKey, held: Bool) {
        self.key = key
        self.held = held
    }
}

/// Where the cluster's occupancy and its webhook events live: the seam between the nodes that
/// record changes and the one sender that delivers them.
///
/// Contract, for every implementation:
/// - **Cluster-wide transitions only.** A key becomes occupied when its first holder (node)
///   claims it and vacated when its last holder releases it; each transition is queued as one
///   event, in the order the transitions happened. Claims and releases by a node that already
///   (or no longer) holds the key change nothing.
/// - **Dead holders.** A node that stops refreshing its liveness loses its claims once it has
///   expired: the keys only it held become vacated then.
/// - **One sender, at least once.** ``next(max:wait:)`` returns events only to the node that
///   currently sends; oldest first; the same unremoved events again on the next call (so a
///   failed send is retried as it was). When a sender dies, the next one gets its unremoved
///   events first. ``remove(_:)`` drops delivered (or abandoned) events for good.
/// - **Bounded**: at most ``maxQueued`` events wait; past it the oldest are dropped.
/// - Implementations throw when their store cannot be reached; callers retry.
public protocol WebhookLog: Sendable {
    /// Applies this node's changes, in order.
    func apply(_ changes: [OccupancyChange]) async throws
    /// States this node's whole holding after its store may have lost it (a reconnect): keys
    /// held and not listed are released, listed and not held are claimed.
    func resync(_ held: Set<OccupancyKey>) async throws
    /// The oldest queued events, at most `max`, once this node is the sender; waits up to
    /// `wait` for some to come. Empty: none (or another node sends).
    func next(max: Int, wait: TimeAmount) async throws -> [WebhookEvent]
    /// Forgets events sent (or given up on).
    func remove(_ ids: [String]) async throws
    /// Events queued and not yet removed, and when the oldest of them was queued (ms since 1970).
    func depth() async throws -> (count: Int, oldestMillis: Int64?)
}

extension WebhookLog {
    /// Most events queued at once: past it, the oldest are dropped.
    public static var maxQueued: Int { 100_000 }
}

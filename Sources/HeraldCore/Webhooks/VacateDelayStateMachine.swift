/// When this node claims and releases its share of a channel's or user's occupancy, so a client
/// that reconnects within the vacate delay makes no webhook event at all.
///
/// The Hub reports each local transition (first local subscriber in, last one out). A first one
/// claims the key at once; a last one leaving only *schedules* a release after the delay, and a
/// new local subscriber before then cancels it: the claim was never given up. Pure: the caller
/// runs the timers and tells the shared log (``WebhookLog``) of the claims and releases.
public struct VacateDelayStateMachine: Sendable {
    public enum Action: Equatable, Sendable {
        case claim(OccupancyKey)
        /// Call ``releaseDue(_:token:)`` with `token` after the delay.
        case scheduleRelease(OccupancyKey, token: UInt64)
        case release(OccupancyKey)
    }

    /// Keys this node holds a claim on (released ones leave; pending releases stay until due).
    public private(set) var held: Set<OccupancyKey> = []
    private var pendingRelease: [OccupancyKey: UInt64] = [:]
    private var nextToken: UInt64 = 0

    public init() {}

    /// The key has a local subscriber again (or for the first time).
    public mutating func occupied(_ key: OccupancyKey) -> Action? {
        if pendingRelease.removeValue(forKey: key) != nil { return nil }
        guard held.insert(key).inserted else { return nil }
        return .claim(key)
    }

    /// The key's last local subscriber left.
    public mutating func vacated(_ key: OccupancyKey) -> Action? {
        guard held.contains(key) else { return nil }
        nextToken += 1
        pendingRelease[key] = nextToken
        return .scheduleRelease(key, token: nextToken)
    }

    /// A scheduled release is due: it happens unless the key was occupied again meanwhile.
    public mutating func releaseDue(_ key: OccupancyKey, token: UInt64) -> Action? {
        guard pendingRelease[key] == token else { return nil }
        pendingRelease[key] = nil
        held.remove(key)
        return .release(key)
    }
}

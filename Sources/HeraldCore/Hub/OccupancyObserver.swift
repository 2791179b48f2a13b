/// Told by the Hub when a channel gains its first local subscriber or loses its last one —
/// users' private channels too (a user's first connection on this node, and last). Called
/// under the Hub's count lock, so implementations only record the change and return.
public protocol OccupancyObserver: AnyObject, Sendable {
    func occupancyChanged(_ channel: String, occupied: Bool)
}

import HeraldProtocol

/// Live publications a subscribe's history read already covered, which may still arrive.
///
/// In a cluster the history page comes back on the node's command connection to Redis and
/// live publications on its pub/sub connection: two sockets, so a publication the page
/// already held can reach the connection after the page does, once ``SubscriptionRecovery``
/// has finished merging. Each subscribe leaves the page's latest position here as a floor;
/// a live publication of the channel at or below it is dropped, and the first one above it
/// (or of another epoch) lifts the floor, after which the channel costs nothing.
public struct ReplayFloor: Sendable {
    private var floors: [String: StreamPosition] = [:]

    public init() {}

    /// The subscribe to `channel` answered with `position` (its latest when read).
    public mutating func set(_ channel: String, to position: StreamPosition?) {
        floors[channel] = position
    }

    /// The channel was left: nothing of it arrives any more.
    public mutating func remove(_ channel: String) {
        floors[channel] = nil
    }

    /// Whether a live delivery goes out: `false` for one the subscribe already covered.
    public mutating func admits(_ delivery: Delivery) -> Bool {
        guard !floors.isEmpty, let floor = floors[delivery.channel] else { return true }
        // join / leave / presence events carry no position and leave the floor in place.
        guard let position = delivery.position else { return true }
        if position.epoch == floor.epoch, position.offset <= floor.offset { return false }
        floors[delivery.channel] = nil
        return true
    }
}

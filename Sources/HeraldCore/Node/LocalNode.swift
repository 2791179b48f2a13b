import HeraldProtocol
import NIOCore

/// This node's own state as the registry and the figures endpoints read it: the narrow view
/// of the Hub, the connection slots and the publisher that the cluster registry needs.
public protocol LocalNodeState: AnyObject, Sendable {
    var nodeID: String { get }
    /// This node's figures, as `/api/stats` reports them per node.
    var stats: NodeStats { get }
    /// Channel → local subscribers.
    func channelCounts() -> [String: Int]
    func subscriberCount(_ channel: String) -> Int
    /// Connected clients with a sequence above `cursor`, at most `limit`, in sequence order.
    func clients(after cursor: UInt64, limit: Int) async -> [(sequence: UInt64, info: ClientInfo)]
}

/// The ``LocalNodeState`` of a running node.
public final class LocalNode: LocalNodeState {
    private let hub: Hub
    private let slots: ConnectionSlots
    private let publisher: Publisher
    /// When this node started, for `/api/stats`.
    private let started = NIODeadline.now()
    private let startedAt = HeraldNotification.timestampNow()

    public init(hub: Hub, slots: ConnectionSlots, publisher: Publisher) {
        self.hub = hub
        self.slots = slots
        self.publisher = publisher
    }

    public var nodeID: String { hub.nodeID }

    public var stats: NodeStats {
        NodeStats(
            node: hub.nodeID, connections: slots.count, channels: hub.channelCount,
            messagesPublished: publisher.published, messagesDelivered: hub.messagesDelivered, startedAt: startedAt,
            uptimeSeconds: Double((NIODeadline.now() - started).nanoseconds / 1_000_000) / 1000)
    }

    public func channelCounts() -> [String: Int] { hub.channelCounts() }

    public func subscriberCount(_ channel: String) -> Int { hub.subscriberCount(channel) }

    public func clients(after cursor: UInt64, limit: Int) async -> [(sequence: UInt64, info: ClientInfo)] {
        await hub.clients(after: cursor, limit: limit)
    }
}

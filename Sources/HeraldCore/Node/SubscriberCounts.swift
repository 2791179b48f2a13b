
/// A channel's subscribers in the whole cluster: this node's exact count plus the other live
/// nodes' registered counts — the figure behind `subscribed.subscriberCount` and REST
/// `delivered`.
public struct SubscriberCounts: Sendable {
    private let hub: Hub
    /// `nil` for a node running alone: its Hub is the whole picture.
    private let cluster: (any ClusterDirectory)?

    public init(hub: Hub, cluster: (any ClusterDirectory)?) {
        self.hub = hub
        self.cluster = cluster
    }

    /// Whether other nodes' counts take a round trip (callers on an event loop then answer
    /// asynchronously; alone, the answer is at hand).
    public var isClustered: Bool { cluster != nil }

    /// The cluster-wide count; the local count alone if the registry cannot be reached.
    public func clusterWide(_ channel: String) async -> Int {
        local(channel) + (await others(channel))
    }

    /// This node's subscribers of `channel`, exactly.
    public func local(_ channel: String) -> Int {
        hub.subscriberCount(channel)
    }

    /// The other nodes' registered subscribers of `channel` (0 alone, or if the registry
    /// cannot be reached).
    public func others(_ channel: String) async -> Int {
        guard let cluster else { return 0 }
        return (try? await cluster.remoteSubscriberCount(of: channel)) ?? 0
    }
}

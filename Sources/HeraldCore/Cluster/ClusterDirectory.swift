
/// Cluster-wide figures, answered from the registry that every node keeps up to date.
///
/// A single node has no directory: its own Hub is the whole picture. With Redis, the
/// registry implements this; dead nodes drop out of every answer once their entries expire.
public protocol ClusterDirectory: Sendable {
    /// Subscribers of `channel` on the *other* live nodes, as they last registered them.
    func remoteSubscriberCount(of channel: String) async throws -> Int
    /// Channel → subscribers on the other live nodes.
    func remoteChannelCounts() async throws -> [String: Int]
    /// Figures of the other live nodes.
    func remoteNodes() async throws -> [NodeStats]
    /// Clients of the other live nodes, in pages.
    /// - Returns: rows of node `nodeID` with a sequence above `sequence`, at most `limit`.
    func remoteClients(of nodeID: String, after sequence: UInt64, limit: Int) async throws -> [(UInt64, ClientInfo)]
    /// Client counts of the other live nodes, by node id.
    func remoteClientCounts() async throws -> [String: Int]
}

/// One node's figures, as `/api/stats` reports them per node.
public struct NodeStats: Codable, Sendable, Equatable {
    public var node: String
    public var connections: Int
    public var channels: Int
    public var messagesPublished: Int
    public var messagesDelivered: Int
    public var startedAt: String
    public var uptimeSeconds: Double

    public init(
        node: String, connections: Int, channels: Int, messagesPublished: Int, messagesDelivered: Int,
        startedAt: String, uptimeSeconds: Double
    ) {
        self.node = node
        self.connections = connections
        self.channels = channels
        self.messagesPublished = messagesPublished
        self.messagesDelivered = messagesDelivered
        self.startedAt = startedAt
        self.uptimeSeconds = uptimeSeconds
    }
}

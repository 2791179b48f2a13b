import HeraldProtocol
import NIOCore

/// One publication as the Hub hands it to a connection: the frame, shared by every
/// subscriber, and what the connection needs to merge it with a replay.
public struct Delivery: Sendable {
    public var channel: String
    public var position: StreamPosition?
    /// The complete WebSocket frame.
    public var frame: ByteBuffer

    public init(channel: String, position: StreamPosition?, frame: ByteBuffer) {
        self.channel = channel
        self.position = position
        self.frame = frame
    }
}

/// A WebSocket connection as the Hub sees it.
///
/// Every method is called on the connection's own event loop only; implementations are not
/// thread-safe and need not be.
public protocol HubConnection: AnyObject {
    /// The public client id (`welcome.clientId`).
    var clientID: String { get }
    /// Node-local, monotonically increasing number; orders `/api/clients` pages.
    var sequence: UInt64 { get }
    /// Queues a publication's frame without flushing.
    /// - Returns: `true` when this is the first write since the last ``flush()``, so the
    ///   caller collects each connection to flush exactly once per batch.
    @discardableResult
    func write(_ delivery: Delivery) -> Bool
    /// Flushes queued frames.
    func flush()
    /// Writes and flushes one publication: the common case of one publication per drain.
    func send(_ delivery: Delivery)
    /// Periodic heartbeat check: send a ping, or close a connection that went silent.
    func heartbeat(now: NIODeadline)
    /// Sends `frame` (the `server_shutdown` message) and closes with 1001.
    func shutdown(with frame: ByteBuffer)
    /// A snapshot for `/api/clients`.
    func info() -> ClientInfo
    /// The connection as presence shows it.
    var member: PresenceMember { get }
    /// A ``ConnectionSignal`` for this connection's user: close, or leave a channel.
    func handle(_ signal: ConnectionSignal)
}

/// One row of `/api/clients`.
public struct ClientInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String?
    public var connectedAt: String
    public var subscriptions: [String]
    public var node: String
    /// The `sub` of the connection's token; absent for anonymous clients.
    public var userId: String?

    public init(id: String, name: String?, connectedAt: String, subscriptions: [String], node: String, userId: String? = nil) {
        self.id = id
        self.name = name
        self.userId = userId
        self.connectedAt = connectedAt
        self.subscriptions = subscriptions
        self.node = node
    }
}

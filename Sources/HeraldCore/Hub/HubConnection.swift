import HeraldProtocol
import NIOCore

/// One publication as the Hub hands it to a connection: the server message's JSON, shared by
/// every recipient whatever its transport, and what the connection needs to merge it with a
/// replay. Each transport frames it (``framings``).
public struct Delivery: Sendable {
    public var channel: String
    public var position: StreamPosition?
    /// The server message's JSON text (a `notification`, or what ``kind`` names).
    public var payload: ByteBuffer
    public var kind: Publication.Kind
    /// What each transport made of ``payload`` on this loop, so that its other recipients
    /// there share the same bytes: one framing per publication per transport, not per
    /// subscriber.
    public let framings: Framings

    public init(
        channel: String, position: StreamPosition?, payload: ByteBuffer, kind: Publication.Kind = .notification,
        framings: Framings = Framings()
    ) {
        self.channel = channel
        self.position = position
        self.payload = payload
        self.kind = kind
        self.framings = framings
    }

    /// A delivery of `publication`, with nothing framed yet.
    public init(_ publication: Publication) {
        self.init(
            channel: publication.channel, position: publication.position, payload: publication.payload, kind: publication.kind)
    }

    /// The bytes `transport` makes of the payload, made once per delivery.
    public func framed(by transport: AnyObject.Type, _ make: (ByteBuffer) -> ByteBuffer) -> ByteBuffer {
        framings.bytes(for: ObjectIdentifier(transport)) { make(payload) }
    }
}

/// The bytes each transport made of one delivery. Confined to the event loop the delivery was
/// made for (a Hub shard's drain, or a connection's replay), which is why it may be
/// `@unchecked Sendable`. The first transport's bytes are kept inline — most deliveries reach
/// one transport — so a publication costs one allocation here, not two.
public final class Framings: @unchecked Sendable {
    private var first: (key: ObjectIdentifier, bytes: ByteBuffer)?
    private var others: [(key: ObjectIdentifier, bytes: ByteBuffer)] = []

    public init() {}

    func bytes(for key: ObjectIdentifier, _ make: () -> ByteBuffer) -> ByteBuffer {
        if let first, first.key == key { return first.bytes }
        for entry in others where entry.key == key { return entry.bytes }
        let bytes = make()
        if first == nil { first = (key, bytes) } else { others.append((key, bytes)) }
        return bytes
    }
}

/// What ``HubConnection/write(_:)`` did with a delivery.
public enum WriteResult: Sendable, Equatable {
    /// Not written (held, skipped, or the connection is closing).
    case held
    /// Written; `firstSinceFlush`: the connection needs a flush at the end of the batch.
    case written(firstSinceFlush: Bool)
}

/// A client connection as the Hub sees it, whatever its transport.
///
/// Every method is called on the connection's own event loop only; implementations are not
/// thread-safe and need not be.
public protocol HubConnection: AnyObject {
    /// The public client id (`welcome.clientId`).
    var clientID: String { get }
    /// Node-local, monotonically increasing number; orders `/api/clients` pages.
    var sequence: UInt64 { get }
    /// Queues a publication without flushing.
    /// - Returns: whether it was written (not held: a subscribe's merge, a slow client's
    ///   policy), and whether this is the first write since the last ``flush()`` — so the
    ///   caller collects each connection to flush exactly once per batch.
    @discardableResult
    func write(_ delivery: Delivery) -> WriteResult
    /// Flushes queued frames.
    func flush()
    /// Writes and flushes one publication: the common case of one publication per drain.
    /// - Returns: whether it was written (receipts count only those).
    @discardableResult
    func send(_ delivery: Delivery) -> Bool
    /// Periodic heartbeat check: send a ping, or close a connection that went silent.
    func heartbeat(now: NIODeadline)
    /// Sends `message` (`server_shutdown`) and closes (1001 for a WebSocket).
    func shutdown(with message: ServerMessage)
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

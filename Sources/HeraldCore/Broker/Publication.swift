#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import HeraldProtocol
import NIOCore

/// One message on its way from a publisher to the subscribers of a channel, on any node.
public struct Publication: Sendable, Equatable {
    /// The channel (already validated by ``ChannelName``).
    public var channel: String
    /// The complete JSON text of the `notification` subscribers receive, encoded once by the
    /// publishing node. On the way in (``Broker/publish(_:on:)``) it has no position yet; as
    /// delivered to a ``PublicationSink`` it carries `offset` and `epoch` when history is on.
    public var payload: ByteBuffer
    /// Client id that must not receive it: the WebSocket client that posted it with `message`.
    public var excludedClient: String?
    /// The notification's id, returned again for a duplicate publish.
    public var id: String
    /// Set by the publisher: a retry with the same key within the idempotency window
    /// publishes nothing and answers with the first publication's receipt.
    public var idempotencyKey: String?
    /// Set by the broker on delivery: where the publication sits in the channel's history.
    public var position: StreamPosition?
    /// When a node accepted it, in microseconds of Unix time (0: unknown), for the delivery
    /// latency metric; carried between nodes with the publication.
    public var acceptedAtMicros: Int64
    /// What the payload is: a `notification`, or another server message for subscribers.
    public var kind: Kind
    /// The publisher waits for the nodes' reports of what they wrote (`?wait=`); carried
    /// between nodes with the publication.
    public var receipt: ReceiptRequest?

    /// What a publication's payload is, so that no transport has to look inside the JSON.
    public enum Kind: Sendable, Equatable {
        /// A `notification`: the channel's content, with a position when history is on.
        case notification
        /// Another server message for the channel's subscribers (`join`, `leave`,
        /// `presence_changed`), named by its `type`; never stored, never positioned.
        case message(type: String)
    }

    public init(
        channel: String, payload: ByteBuffer, id: String = "", excludedClient: String? = nil,
        idempotencyKey: String? = nil, position: StreamPosition? = nil, acceptedAtMicros: Int64 = 0,
        kind: Kind = .notification, receipt: ReceiptRequest? = nil
    ) {
        self.receipt = receipt
        self.channel = channel
        self.payload = payload
        self.id = id
        self.excludedClient = excludedClient
        self.idempotencyKey = idempotencyKey
        self.position = position
        self.acceptedAtMicros = acceptedAtMicros
        self.kind = kind
    }

    /// Unix time in microseconds, for ``acceptedAtMicros``.
    public static func nowMicros() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
    }
}

/// What a publish did.
public struct PublishReceipt: Sendable, Equatable {
    /// The id of the notification that was published — the first one's, for a duplicate.
    public var id: String
    /// Its position; `nil` while history is off.
    public var position: StreamPosition?
    /// The idempotency key had been used within the window: nothing new was delivered.
    public var duplicate: Bool
    /// The channel's subscribers on the *other* live nodes when it was published, when the
    /// broker counted them in the same step (Redis does, in the publish script); `nil`
    /// otherwise.
    public var otherNodesSubscribers: Int?
    /// For a publication with a receipt: the other live nodes that had subscribers (counted in
    /// the same step), whose reports the publisher waits for.
    public var otherNodes: [String]?

    public init(id: String, position: StreamPosition?, duplicate: Bool = false, otherNodesSubscribers: Int? = nil) {
        self.id = id
        self.position = position
        self.duplicate = duplicate
        self.otherNodesSubscribers = otherNodesSubscribers
    }
}

/// Whoever takes delivered publications from a broker: the Hub.
public protocol PublicationSink: AnyObject, Sendable {
    /// Called for every publication of a channel this node has interest in, in the channel's
    /// order. Must not block: brokers call it from their I/O threads.
    func deliver(_ publication: Publication)
    /// Called for every ``ConnectionSignal`` sent to a channel this node has interest in, in
    /// order with the channel's publications. Must not block.
    func deliver(_ signal: ConnectionSignal, to channel: String)
}

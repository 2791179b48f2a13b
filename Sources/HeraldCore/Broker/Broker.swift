import HeraldProtocol
import NIOCore
import ServiceLifecycle

/// The seam between nodes: where publications go out and come back in.
///
/// Contract, for every implementation:
/// - **Positions**: with history on, every publication of a channel gets the next offset of
///   the channel's current epoch, exactly once, atomically with storing it; the payload a
///   sink receives carries `offset` and `epoch`, and so does the receipt.
/// - **Ordering and gaps**: a sink receives a channel's publications in offset order, without
///   duplicates; where it cannot (the link to the backend dropped and the history no longer
///   covers what was missed), the next publication carries its real offset, so subscribers
///   can tell. Without history: one publishing node's publications in `publish` order.
/// - **Delivery**: at most once. A publication accepted while a node has interest in its
///   channel reaches that node's sink unless the node or the broker fails meanwhile.
/// - **Idempotency**: a publication whose `idempotencyKey` was used within the window (on any
///   node) publishes nothing and returns the first one's receipt with `duplicate`.
/// - **Interest**: the Hub calls ``setInterest(in:_:)`` when a channel gains its first or loses
///   its last local subscriber. The call never blocks; a broker may batch changes, but the
///   final state after a burst must equal the last call per channel. Interest is *confirmed*
///   when the backend says so: ``whenSubscribed(_:on:)`` completes only then, which is what a
///   client's `subscribed` waits for.
/// - **Availability**: `publish` fails with ``BrokerError/unavailable(_:)`` instead of dropping a
///   publication silently when it cannot deliver it.
public protocol Broker: Service, ChannelHistory {
    /// Connects the sink that receives this node's publications. Called once, before `run()`.
    func attach(_ sink: any PublicationSink)
    /// Hands `publication` to every node with interest in its channel (this node included).
    /// The one publish call: it completes on `loop`, failing with ``BrokerError``, and a
    /// caller on an event loop (the REST fast path, a socket's `message`) needs no Swift task
    /// — brokers answer from their own loop (Redis) or at once (in memory).
    func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt>
    /// Publishes several, in order, each as ``publish(_:on:)`` would — a Redis broker writes
    /// them all in one round trip per shard. Each publication succeeds or fails on its own.
    func publish(batch publications: [Publication], on loop: any EventLoop) -> EventLoopFuture<[Result<PublishReceipt, BrokerError>]>
    /// Hands `publication` to every node with interest in its channel (this node included)
    /// *without* a position and without storing it: for what must not be replayed — a user's
    /// notifications, join and leave events. Same ordering and delivery guarantees as
    /// ``publish(_:on:)`` otherwise — its idempotency key too: a second publication with the
    /// same key within the window is silently not sent (the transactional outbox relies on it).
    func publishTransient(_ publication: Publication) async throws(BrokerError)
    /// Hands `signal` to every node with interest in `channel` (this node included), in order
    /// with the channel's transient publications; never stored.
    func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError)
    /// Records whether this node wants the publications of `channel`.
    func setInterest(in channel: String, _ interested: Bool)
    /// Succeeds on `loop` once publications of `channel` reach this node — at once if the
    /// subscription is already confirmed; fails with ``BrokerError/unavailable(_:)`` if the
    /// backend is unreachable or refuses, or when the interest is dropped before that.
    func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void>
    /// Health as reported by `/health` and `/ready`.
    var status: BrokerStatus { get }
    /// A short name for logs and `/health` (`memory`, `redis`).
    var kind: String { get }
    /// Health per part of the backend (each Redis shard by `host:port`), for metrics; empty
    /// for a broker of one part.
    var parts: [(name: String, isUp: Bool)] { get }
}

extension Broker {
    public var parts: [(name: String, isUp: Bool)] { [] }

    /// One ``publish(_:on:)`` per publication, all started at once (in order).
    public func publish(batch publications: [Publication], on loop: any EventLoop) -> EventLoopFuture<[Result<PublishReceipt, BrokerError>]> {
        let results = publications.map { publication in
            publish(publication, on: loop).map { Result<PublishReceipt, BrokerError>.success($0) }.recover { error in
                .failure(error as? BrokerError ?? .unavailable("\(error)"))
            }
        }
        return EventLoopFuture.whenAllSucceed(results, on: loop)
    }
}

/// Broker health.
public enum BrokerStatus: Sendable, Equatable {
    case up
    /// Nothing can be published or subscribed: the node is not ready (`/ready` 503).
    case degraded(String)
    /// Some channels cannot be (one Redis shard of several is unreachable); the others work,
    /// so the node stays ready while `/health` says which part is down.
    case partial(String)

    public var isUp: Bool { self == .up }
}

/// Why a publish did not go through.
public enum BrokerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The broker cannot reach its backend; nothing was published.
    case unavailable(String)
    /// The publication was stored and published, but fewer replicas than required
    /// acknowledged it in time: a failover now could lose it.
    case replicationTimeout(String)
    /// Redis Cluster said another node serves the channel now (`MOVED`, `ASK`, `TRYAGAIN`
    /// during a slot migration, `CLUSTERDOWN`); nothing was done. The cluster broker retries at
    /// the owner; callers see it only when that ran out of time, as `unavailable`.
    case redirected(String)

    /// A Redis Cluster redirection: nothing ran, the call may go to the slot's owner.
    public var isRedirect: Bool {
        if case .redirected = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .redirected(let reason): "broker unavailable: \(reason)"
        case .unavailable(let reason): "broker unavailable: \(reason)"
        case .replicationTimeout(let reason): "not replicated in time: \(reason)"
        }
    }
}

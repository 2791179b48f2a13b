import HeraldProtocol
import NIOCore
import ServiceLifecycle

/// The seam between nodes: where publications go out and come back in.
///
/// Contract, for every implementation:
/// - **Ordering**: publications to one channel from one publishing node reach each
///   subscribing node in the order `publish` was called.
/// - **Delivery**: at most once. A publication accepted while a node has interest in its
///   channel reaches that node's sink unless the node or the broker fails meanwhile.
/// - **Interest**: the Hub calls ``setInterest(in:_:)`` when a channel gains its first or loses
///   its last local subscriber. The call never blocks; a broker may batch changes, but the
///   final state after a burst must equal the last call per channel. Interest is *confirmed*
///   when the backend says so: ``whenSubscribed(_:on:)`` completes only then, which is what a
///   client's `subscribed` waits for.
/// - **Availability**: `publish` throws ``BrokerError/unavailable(_:)`` instead of dropping a
///   publication silently when it cannot deliver it.
public protocol Broker: Service {
    /// Connects the sink that receives this node's publications. Called once, before `run()`.
    func attach(_ sink: any PublicationSink)
    /// Hands `publication` to every node with interest in its channel (this node included).
    func publish(_ publication: Publication) async throws(BrokerError)
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
}

/// Broker health.
public enum BrokerStatus: Sendable, Equatable {
    case up
    case degraded(String)

    public var isUp: Bool { self == .up }
}

/// Why a publish did not go through.
public enum BrokerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The broker cannot reach its backend; nothing was published.
    case unavailable(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "broker unavailable: \(reason)"
        }
    }
}

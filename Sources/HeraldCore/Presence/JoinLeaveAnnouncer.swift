import HeraldProtocol
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Publishes `join` and `leave` to the subscribers of the channels that want them
/// (`HERALD_JOIN_LEAVE_CHANNELS`), cluster-wide, batched by ``JoinLeaveBatcher``.
///
/// Events travel as transient publications of the channel (never in its history, without a
/// position). The first event of a window starts a flush ``window`` later, so a burst — a
/// node's clients reconnecting elsewhere, or leaving at its shutdown — costs each channel at
/// most one batch per window. A `Service`: on graceful shutdown it flushes what its node's
/// departing clients left behind, then stops.
public final class JoinLeaveAnnouncer: MembershipObserver, Service {
    /// Which channels announce: their namespace's `join_leave`, else the global pattern.
    public let rules: NamespaceRules
    public let window: Duration
    private let broker: any Broker
    private let metrics: NodeMetrics
    private let logger: Logger
    private let batcher: Mutex<JoinLeaveBatcher>
    private let wakeups: AsyncStream<Void>.Continuation
    private let wakeupStream: AsyncStream<Void>

    public init(
        rules: NamespaceRules, broker: any Broker, metrics: NodeMetrics, logger: Logger,
        window: Duration = .milliseconds(50), maxEventsPerChannel: Int = 32
    ) {
        self.rules = rules
        self.window = window
        self.broker = broker
        self.metrics = metrics
        self.logger = logger
        self.batcher = Mutex(JoinLeaveBatcher(maxEventsPerChannel: maxEventsPerChannel))
        (wakeupStream, wakeups) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: MembershipObserver

    public func joined(_ channel: String, _ member: PresenceMember) {
        guard rules.joinsAndLeaves(channel) else { return }
        if batcher.withLock({ $0.joined(channel, member) }) { wakeups.yield() }
    }

    public func left(_ channel: String, _ member: PresenceMember) {
        guard rules.joinsAndLeaves(channel) else { return }
        if batcher.withLock({ $0.left(channel, member) }) { wakeups.yield() }
    }

    public func updated(_ member: PresenceMember, channels: [String]) {}

    // MARK: Service

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in self.wakeupStream {
                try? await Task.sleep(for: self.window)
                await self.flush()
            }
        }
        // The leaves of this node's own clients, closed by the drain before us.
        await flush()
    }

    private func flush() async {
        let announcements = batcher.withLock { $0.flush() }
        for announcement in announcements {
            let messages: [ServerMessage]
            let channel: String
            switch announcement {
            case .events(let name, let events):
                (channel, messages) = (name, events)
            case .changed(let name, let joined, let left):
                metrics.joinLeaveOverflows.increment()
                (channel, messages) = (name, [.presenceChanged(channel: name, joined: joined, left: left)])
            }
            for message in messages {
                do {
                    try await broker.publishTransient(
                        Publication(
                            channel: channel, payload: ByteBuffer(bytes: message.jsonBytes()), kind: .message(type: message.type)))
                } catch {
                    logger.debug("could not announce presence change", metadata: ["channel": "\(channel)", "error": "\(error)"])
                    break
                }
            }
        }
    }
}

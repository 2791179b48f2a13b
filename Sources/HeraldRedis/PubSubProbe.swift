import Foundation
import HeraldCore
import Logging
import NIOCore
import RedisBridge
import Synchronization

/// One pub/sub link's liveness probe: the I/O around ``PubSubLiveness``.
///
/// The receive path only raises a flag per message (``heard()``, one relaxed store: no clock
/// read, no lock); ``watch(pubsub:commands:)`` turns the flag into a time a few times per
/// interval, and publishes the probe or closes the link as the machine says.
final class PubSubProbe: Sendable {
    /// A pub/sub channel only this link listens to.
    let key: ByteBuffer
    private let heardSinceCheck = Atomic<Bool>(false)
    /// The machine, and when a check last saw the flag raised.
    private let liveness: Mutex<(machine: PubSubLiveness, lastHeard: NIODeadline)>
    private let address: String
    private let logger: Logger
    private let metrics: NodeMetrics

    init(interval: TimeAmount, keys: RedisKeys, address: String, logger: Logger, metrics: NodeMetrics) {
        self.key = keys.probe(UUID().uuidString)
        self.liveness = Mutex((PubSubLiveness(interval: interval), .now()))
        self.address = address
        self.logger = logger
        self.metrics = metrics
    }

    /// Any message on the link: a sign of life. Called for every pub/sub message.
    @inline(__always)
    func heard() {
        heardSinceCheck.store(true, ordering: .relaxed)
    }

    /// A new link: subscribe it to the probe channel; nothing is owed.
    func connected(_ connection: RedisConnection) async throws {
        try await connection.pubsub("SUBSCRIBE", [key]).get()
        liveness.withLock { $0 = ($0.machine, .now()); $0.machine.connected() }
    }

    /// Checks the link a few times per interval until cancelled.
    /// - Parameters:
    ///   - pubsub: the link's current connection, if up.
    ///   - commands: the connection the probe is published on, if up.
    func watch(pubsub: () -> RedisConnection?, commands: () -> RedisConnection?) async {
        let interval = liveness.withLock { $0.machine.interval }
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval.nanoseconds / 4))
            guard let link = pubsub(), link.isActive else { continue }
            let now = NIODeadline.now()
            let heard = heardSinceCheck.exchange(false, ordering: .relaxed)
            let (action, lastHeard) = liveness.withLock { state in
                if heard { state.lastHeard = now }
                return (state.machine.check(lastHeard: state.lastHeard, now: now), state.lastHeard)
            }
            switch action {
            case .wait:
                break
            case .probe:
                // Not written while the command link is down: the reconnect there will tell.
                _ = commands()?.sendFuture([ByteBuffer(string: "PUBLISH"), key, ByteBuffer()])
            case .rebuild:
                logger.warning("the Redis pub/sub link stopped delivering; rebuilding it", metadata: [
                    "redis": "\(address)", "silent": "\(now - lastHeard)",
                ])
                metrics.redisLinkRebuilt()
                link.close()
            }
        }
    }
}

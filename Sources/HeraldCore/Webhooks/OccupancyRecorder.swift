import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Turns the Hub's local occupancy transitions into claims and releases in the shared
/// ``WebhookLog``, a vacate delay after the last local subscriber left (``VacateDelayStateMachine``).
///
/// The Hub calls in under its lock, so a change is only recorded here and handed to one task
/// that applies them in order. When the log cannot be reached the changes are not kept: the
/// state machine's `held` is the truth, and a ``WebhookLog/resync(_:)`` states it whole once
/// the log answers again — memory stays bounded however long the outage. The price: a channel
/// occupied and vacated again entirely within an outage of the log makes no event.
public final class OccupancyRecorder: OccupancyObserver, Service {
    private let log: any WebhookLog
    private let delay: TimeAmount
    private let loop: any EventLoop
    private let logger: Logger
    private let machine = Mutex(VacateDelayStateMachine())
    /// Changes not yet applied, in order; taken whole by the applying task.
    private let pending = Mutex<[OccupancyChange]>([])
    private let bell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation
    /// How often a log that failed is tried again, and an idle one asked whether it must be
    /// resynced (``WebhookLogError/resyncNeeded``).
    let retryInterval: TimeAmount

    public init(log: any WebhookLog, vacateDelay: TimeAmount, loop: any EventLoop, logger: Logger, retryInterval: TimeAmount = .seconds(1)) {
        self.log = log
        self.delay = vacateDelay
        self.loop = loop
        self.logger = logger
        self.retryInterval = retryInterval
        (bell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: OccupancyObserver

    public func occupancyChanged(_ channel: String, occupied: Bool) {
        let key = OccupancyKey(hubChannel: channel)
        let action = machine.withLock { occupied ? $0.occupied(key) : $0.vacated(key) }
        if let action { perform(action) }
    }

    private func perform(_ action: VacateDelayStateMachine.Action) {
        switch action {
        case .claim(let key):
            record(OccupancyChange(key, held: true))
        case .release(let key):
            record(OccupancyChange(key, held: false))
        case .scheduleRelease(let key, let token):
            loop.scheduleTask(in: delay) {
                let due = self.machine.withLock { $0.releaseDue(key, token: token) }
                if let due { self.perform(due) }
            }
        }
    }

    private func record(_ change: OccupancyChange) {
        pending.withLock { $0.append(change) }
        ring.yield()
    }

    // MARK: Service

    public func run() async throws {
        let ticks = AsyncStream<Void> { continuation in
            let task = loop.scheduleRepeatedTask(initialDelay: retryInterval, delay: retryInterval) { _ in continuation.yield() }
            continuation.onTermination = { _ in task.cancel() }
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { for await _ in ticks { self.ring.yield() } }
                group.addTask { await self.applyChanges() }
            }
        }
    }

    private func applyChanges() async {
        var needsResync = false
        for await _ in bell {
            // Everything waiting goes in one round trip; a ring with nothing waiting still asks
            // the log, which is how an idle node learns its log must be restated.
            let batch = pending.withLock { pending in
                defer { pending = [] }
                return pending
            }
            do {
                if needsResync {
                    try await log.resync(machine.withLock { $0.held })
                    needsResync = false
                } else {
                    do {
                        try await log.apply(batch)
                    } catch WebhookLogError.resyncNeeded {
                        // The store is reachable but may lack this node's holding (first contact,
                        // a reconnect): restate it, then apply the batch on top, so a channel
                        // occupied and vacated meanwhile still makes both events.
                        try await log.resync(machine.withLock { $0.held })
                        try await log.apply(batch)
                    }
                }
            } catch {
                if !needsResync {
                    logger.warning("webhook occupancy not recorded; will restate it", metadata: ["error": "\(error)"])
                }
                needsResync = true
            }
        }
    }
}

/// Why a ``WebhookLog`` refused a change.
public enum WebhookLogError: Error, Sendable {
    /// The store may have lost this node's holding (it reconnected): restate it whole.
    case resyncNeeded
}

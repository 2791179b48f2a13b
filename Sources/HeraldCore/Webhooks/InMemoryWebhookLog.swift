import Foundation
import NIOCore
import Synchronization

/// The webhook log of a node without Redis: the node is the whole cluster, so its claims are
/// the occupancy and it is always the sender.
public final class InMemoryWebhookLog: WebhookLog {
    private struct State {
        var held: Set<OccupancyKey> = []
        var queue: [WebhookEvent] = []
        var lastMillis: Int64 = 0
        var sequence = 0
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Int64
    private let bell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    /// - Parameter clock: milliseconds since 1970, for event ids.
    public init(clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.clock = clock
        (bell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func apply(_ changes: [OccupancyChange]) async throws {
        let queued = state.withLock { state -> Bool in
            var queued = false
            for change in changes {
                let changed = change.held ? state.held.insert(change.key).inserted : state.held.remove(change.key) != nil
                if changed {
                    enqueue(change.key, occupied: change.held, in: &state)
                    queued = true
                }
            }
            return queued
        }
        if queued { ring.yield() }
    }

    public func resync(_ held: Set<OccupancyKey>) async throws {
        let current = state.withLock { $0.held }
        try await apply(current.subtracting(held).sorted().map { OccupancyChange($0, held: false) }
            + held.subtracting(current).sorted().map { OccupancyChange($0, held: true) })
    }

    private func enqueue(_ key: OccupancyKey, occupied: Bool, in state: inout State) {
        let now = max(clock(), state.lastMillis)
        state.sequence = now == state.lastMillis ? state.sequence + 1 : 0
        state.lastMillis = now
        state.queue.append(WebhookEvent(id: "\(now)-\(state.sequence)", key: key, occupied: occupied))
        if state.queue.count > Self.maxQueued { state.queue.removeFirst(state.queue.count - Self.maxQueued) }
    }

    public func next(max: Int, wait: TimeAmount) async throws -> [WebhookEvent] {
        if let ready = ready(max) { return ready }
        // Woken by the next apply that queues an event, or by the deadline; the bell keeps
        // one ring, so an apply between the check above and the wait is not missed.
        let bell = self.bell
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var rings = bell.makeAsyncIterator()
                _ = await rings.next()
            }
            group.addTask { try? await Task.sleep(nanoseconds: UInt64(Swift.max(wait.nanoseconds, 0))) }
            await group.next()
            group.cancelAll()
        }
        return ready(max) ?? []
    }

    private func ready(_ max: Int) -> [WebhookEvent]? {
        state.withLock { state in state.queue.isEmpty ? nil : Array(state.queue.prefix(max)) }
    }

    public func remove(_ ids: [String]) async throws {
        let removed = Set(ids)
        state.withLock { $0.queue.removeAll { removed.contains($0.id) } }
    }

    public func depth() async throws -> (count: Int, oldestMillis: Int64?) {
        state.withLock { ($0.queue.count, $0.queue.first?.queuedAtMillis) }
    }
}

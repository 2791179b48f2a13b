import NIOCore
import Synchronization

/// The node's budget of open WebSocket connections, and the drain at shutdown.
///
/// A slot is reserved in the handshake, before a connection exists, and given back when its
/// channel closes, so the count covers connections still upgrading. Once shutdown begins no
/// slot is handed out, and ``waitUntilEmpty(timeout:)`` waits for the last one to go.
public final class ConnectionSlots: Sendable {
    private let open = Atomic<Int>(0)
    private let accepting = Atomic<Bool>(true)
    private let waiters = Mutex<[UInt64: CheckedContinuation<Void, Never>]>([:])
    private let nextWaiter = Atomic<UInt64>(0)
    /// Waiters cancelled before they were stored (checked under the `waiters` lock).
    private let cancelled = Mutex<Set<UInt64>>([])

    public init() {}

    /// Takes a slot. `false` when `max` are taken or shutdown began; pair every `true` with
    /// ``release()``.
    public func reserve(max: Int) -> Bool {
        guard accepting.load(ordering: .relaxed) else { return false }
        var current = open.load(ordering: .relaxed)
        while current < max {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back a slot taken by ``reserve(max:)``.
    public func release() {
        if open.subtract(1, ordering: .relaxed).newValue == 0 { resumeWaiters() }
    }

    /// Connections holding a slot.
    public var count: Int { open.load(ordering: .relaxed) }

    /// Whether new connections are accepted (false once shutdown began).
    public var isAccepting: Bool { accepting.load(ordering: .relaxed) }

    /// Refuses every further ``reserve(max:)``.
    public func stopAccepting() {
        accepting.store(false, ordering: .relaxed)
    }

    /// Returns once no slot is taken, or after `timeout`, whichever comes first.
    public func waitUntilEmpty(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.emptied() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Suspends until the count reaches zero; cancellation resumes it at once.
    private func emptied() async {
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let stored = waiters.withLock { waiters -> Bool in
                    // Cancelled before we got here: the handler left a tombstone.
                    if cancelled.withLock({ $0.remove(id) != nil }) { return false }
                    waiters[id] = continuation
                    return true
                }
                if !stored { continuation.resume() } else if count == 0 { resumeWaiters() }
            }
        } onCancel: {
            let waiter = waiters.withLock { waiters -> CheckedContinuation<Void, Never>? in
                guard let waiter = waiters.removeValue(forKey: id) else {
                    cancelled.withLock { _ = $0.insert(id) }
                    return nil
                }
                return waiter
            }
            waiter?.resume()
        }
    }

    private func resumeWaiters() {
        let ready = waiters.withLock { waiters in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in ready { waiter.resume() }
    }
}

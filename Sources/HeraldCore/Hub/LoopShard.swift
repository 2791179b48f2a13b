import HeraldProtocol
import NIOCore
import Synchronization

/// The Hub's state for one event loop: the connections that live on it and their channels.
///
/// Confined to `eventLoop`: every stored property is read and written only there, which is
/// why the class can be `@unchecked Sendable` — except ``inbox``, the one lock. Publications
/// from any thread arrive through ``enqueue(_:)`` and are delivered in batches: one drain
/// writes every queued frame, then flushes each touched connection once.
final class LoopShard: @unchecked Sendable {
    struct Pending: Sendable {
        var delivery: Delivery
        var excludedClient: String?
        /// For the latency metric; 0 when unknown.
        var acceptedAtMicros: Int64 = 0
        var signal: ConnectionSignal?
    }

    let eventLoop: any EventLoop
    private(set) var connections: [UInt64: any HubConnection] = [:]
    private var members: [String: ChannelMembers] = [:]
    /// Publications waiting for the next drain, and whether one is scheduled. Behind a lock
    /// rather than confined to the loop so that a publication from another thread costs one
    /// `execute` per batch (the drain), not two (hop onto the loop, then schedule the drain).
    private let inbox = Mutex<(items: [Pending], drainScheduled: Bool)>(([], false))
    /// Sequence → the user channel of connections that have a user.
    private var userChannels: [UInt64: String] = [:]
    private var heartbeatTask: RepeatedTask?
    private let delivered: DeliveredCounter
    private let metrics: NodeMetrics

    init(eventLoop: any EventLoop, delivered: DeliveredCounter, metrics: NodeMetrics) {
        self.eventLoop = eventLoop
        self.delivered = delivered
        self.metrics = metrics
    }

    func add(_ connection: any HubConnection) {
        eventLoop.preconditionInEventLoop()
        connections[connection.sequence] = connection
    }

    /// - Returns: the user channel the connection was in, if any.
    func remove(_ connection: any HubConnection, channels: some Sequence<String>) -> String? {
        eventLoop.preconditionInEventLoop()
        connections[connection.sequence] = nil
        for channel in channels { leave(channel, connection) }
        guard let userChannel = userChannels.removeValue(forKey: connection.sequence) else { return nil }
        leave(userChannel, connection)
        return userChannel
    }

    /// Joins the connection's user channel. `false` if it had one already.
    func identify(_ connection: any HubConnection, channel: String) -> Bool {
        eventLoop.preconditionInEventLoop()
        guard userChannels[connection.sequence] == nil else { return false }
        userChannels[connection.sequence] = channel
        join(channel, connection)
        return true
    }

    func members(of channel: String) -> [PresenceMember] {
        eventLoop.preconditionInEventLoop()
        return members[channel]?.connections.map(\.member) ?? []
    }

    func join(_ channel: String, _ connection: any HubConnection) {
        eventLoop.preconditionInEventLoop()
        members[channel, default: ChannelMembers()].insert(connection)
    }

    func leave(_ channel: String, _ connection: any HubConnection) {
        eventLoop.preconditionInEventLoop()
        guard var set = members.removeValue(forKey: channel) else { return }
        set.remove(connection)
        if !set.isEmpty { members[channel] = set }
    }

    /// Queues a frame for the local subscribers of `channel`; safe from any thread.
    func enqueue(_ item: Pending) {
        let schedule = inbox.withLock { inbox in
            inbox.items.append(item)
            guard !inbox.drainScheduled else { return false }
            inbox.drainScheduled = true
            return true
        }
        // On the loop itself too: delivery runs after the current task, so what it queues
        // shares one drain.
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let batch = inbox.withLock { inbox in
            inbox.drainScheduled = false
            var batch: [Pending] = []
            swap(&batch, &inbox.items)
            return batch
        }
        var count = 0
        defer { recordLatency(of: batch) }
        if batch.contains(where: { $0.signal != nil }) {
            // Rare (a user's disconnect or unsubscribe): one at a time, in order.
            for item in batch {
                if let signal = item.signal {
                    _ = forEachRecipient(of: item) { $0.handle(signal) }
                } else {
                    count += forEachRecipient(of: item) { $0.send(item.delivery) }
                }
            }
        } else if batch.count == 1 {
            let item = batch[0]
            count = forEachRecipient(of: item) { $0.send(item.delivery) }
        } else {
            // Several publications queued up: write them all, then flush each connection once.
            var touched: [any HubConnection] = []
            for item in batch {
                count += forEachRecipient(of: item) { connection in
                    if connection.write(item.delivery) { touched.append(connection) }
                }
            }
            for connection in touched { connection.flush() }
        }
        if count > 0 {
            delivered.add(count)
            metrics.deliveries.increment(by: count)
        }
    }

    /// One latency sample per publication and loop: when its frames were written here.
    private func recordLatency(of batch: [Pending]) {
        var now: Int64?
        for item in batch where item.acceptedAtMicros > 0 && item.signal == nil {
            let current = now ?? Publication.nowMicros()
            now = current
            metrics.deliveryLatency.recordNanoseconds(max(current - item.acceptedAtMicros, 0) * 1000)
        }
    }

    private func forEachRecipient(of item: Pending, _ body: (any HubConnection) -> Void) -> Int {
        guard let set = members[item.delivery.channel]?.connections else { return 0 }
        var count = 0
        // `set` is a copy: a signal (or a failed write) that closes a connection changes the
        // members while we go through them.
        for connection in set {
            if let excluded = item.excludedClient, connection.clientID == excluded { continue }
            body(connection)
            count += 1
        }
        return count
    }

    func startHeartbeat(every interval: TimeAmount) {
        eventLoop.execute {
            self.heartbeatTask = self.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let now = NIODeadline.now()
                for connection in self.connections.values { connection.heartbeat(now: now) }
            }
        }
    }

    func stopHeartbeat() {
        eventLoop.execute {
            self.heartbeatTask?.cancel()
            self.heartbeatTask = nil
        }
    }

    func shutdownAll(with frame: @escaping @Sendable () -> ByteBuffer) {
        eventLoop.execute {
            for connection in Array(self.connections.values) { connection.shutdown(with: frame()) }
        }
    }

    /// Up to `limit` clients with a sequence above `cursor`, in sequence order.
    func page(after cursor: UInt64, limit: Int) -> [(UInt64, ClientInfo)] {
        eventLoop.preconditionInEventLoop()
        return connections.keys.filter { $0 > cursor }.sorted().prefix(limit).compactMap { sequence in
            connections[sequence].map { (sequence, $0.info()) }
        }
    }
}

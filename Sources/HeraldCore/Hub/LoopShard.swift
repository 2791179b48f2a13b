import HeraldProtocol
import NIOCore
import Synchronization

/// The Hub's state for one event loop: the connections that live on it and their channels.
///
/// Confined to `eventLoop`: every stored property is read and written only there, which is
/// why the class can be `@unchecked Sendable` — except ``inbox``, the one lock. Publications
/// from any thread arrive through ``enqueue(_:)`` and are delivered in batches: one drain
/// writes every queued publication, then flushes each touched connection once.
final class LoopShard: @unchecked Sendable {
    enum Pending: Sendable {
        /// With a tally when its publisher waits for a receipt.
        case publication(Publication, ReceiptTally?)
        case signal(ConnectionSignal, channel: String)
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

    /// Queues a publication or signal for the local members of its channel; safe from any thread.
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
        if batch.count == 1, case .publication(let publication, let tally) = batch[0] {
            let delivery = Delivery(publication)
            if let tally {
                count = tallied(publication, tally) { $0.send(delivery) }
            } else {
                count = forEachRecipient(of: publication.channel, excluding: publication.excludedClient) { $0.send(delivery) }
            }
        } else if batch.contains(where: { if case .signal = $0 { true } else { false } }) {
            // Rare (a user's disconnect or unsubscribe): one at a time, in order.
            for item in batch {
                switch item {
                case .signal(let signal, let channel):
                    _ = forEachRecipient(of: channel, excluding: nil) { $0.handle(signal) }
                case .publication(let publication, let tally):
                    let delivery = Delivery(publication)
                    if let tally {
                        count += tallied(publication, tally) { $0.send(delivery) }
                    } else {
                        count += forEachRecipient(of: publication.channel, excluding: publication.excludedClient) { $0.send(delivery) }
                    }
                }
            }
        } else {
            // Several publications queued up: write them all, then flush each connection once.
            var touched: [any HubConnection] = []
            for case .publication(let publication, let tally) in batch {
                let delivery = Delivery(publication)
                var written: [UInt64] = []
                count += forEachRecipient(of: publication.channel, excluding: publication.excludedClient) { connection in
                    guard case .written(let first) = connection.write(delivery) else { return }
                    if first { touched.append(connection) }
                    if tally != nil { written.append(connection.sequence) }
                }
                tally?.add(written)
            }
            for connection in touched { connection.flush() }
        }
        if count > 0 {
            delivered.add(count)
            metrics.deliveries.increment(by: count)
        }
    }

    /// One latency sample per publication and loop: when it was written here.
    /// Delivers a publication whose publisher waits for a receipt: the connections it was
    /// written to go to its tally.
    private func tallied(_ publication: Publication, _ tally: ReceiptTally, _ write: (any HubConnection) -> Bool) -> Int {
        var written: [UInt64] = []
        let count = forEachRecipient(of: publication.channel, excluding: publication.excludedClient) { connection in
            if write(connection) { written.append(connection.sequence) }
        }
        tally.add(written)
        return count
    }

    private func recordLatency(of batch: [Pending]) {
        var now: Int64?
        for case .publication(let publication, _) in batch where publication.acceptedAtMicros > 0 {
            let current = now ?? Publication.nowMicros()
            now = current
            metrics.deliveryLatency.recordNanoseconds(max(current - publication.acceptedAtMicros, 0) * 1000)
        }
    }

    private func forEachRecipient(of channel: String, excluding excluded: String?, _ body: (any HubConnection) -> Void) -> Int {
        guard let set = members[channel]?.connections else { return 0 }
        var count = 0
        // `set` is a copy: a signal (or a failed write) that closes a connection changes the
        // members while we go through them.
        for connection in set {
            if let excluded, connection.clientID == excluded { continue }
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

    func shutdownAll(with message: @escaping @Sendable () -> ServerMessage) {
        eventLoop.execute {
            for connection in Array(self.connections.values) { connection.shutdown(with: message()) }
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

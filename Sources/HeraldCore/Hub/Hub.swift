import NIOCore
import Synchronization

/// This node's connections and channel memberships, and the fan-out of publications to them.
///
/// State is sharded by event loop (``LoopShard``): a connection's memberships live on its own
/// loop, so subscribing and delivering take no lock. The only shared state is the per-channel
/// subscriber count, kept under one mutex; it decides when the broker gains or loses interest
/// in a channel (first local subscriber in, last one out) and answers `subscriberCount`.
///
/// A publication is framed once (``ServerFrame``) and the same buffer is written to every
/// local subscriber.
public final class Hub: PublicationSink {
    public let nodeID: String
    public let broker: any Broker
    private let shards: [LoopShard]
    private let shardIndex: [ObjectIdentifier: LoopShard]
    private let counts = Mutex<[String: Int]>([:])
    private let openConnections = Atomic<Int>(0)
    private let publishedCount = Atomic<Int>(0)
    private let sequences = Atomic<UInt64>(0)
    private let drainWaiters = Mutex<[UInt64: CheckedContinuation<Void, Never>]>([:])
    private let accepting = Atomic<Bool>(true)
    private let observers = Mutex<(any HubObserver)?>(nil)
    /// Cluster-wide figures; `nil` for a node running alone.
    public let cluster: (any ClusterDirectory)?
    /// When this node started, for `/api/stats`.
    public let started = NIODeadline.now()
    public let startedAt = HeraldNotification.timestampNow()

    /// - Parameters:
    ///   - eventLoopGroup: the loops connections run on; one shard each.
    public init(
        nodeID: String, broker: any Broker, eventLoopGroup: any EventLoopGroup, cluster: (any ClusterDirectory)? = nil
    ) {
        self.nodeID = nodeID
        self.broker = broker
        self.cluster = cluster
        var shards: [LoopShard] = []
        var index: [ObjectIdentifier: LoopShard] = [:]
        let onDelivered: @Sendable (Int) -> Void
        // Counters live in `self`, which is not available yet; route through a box.
        let box = DeliveredBox()
        onDelivered = { box.add($0) }
        for loop in eventLoopGroup.makeIterator() {
            let shard = LoopShard(eventLoop: loop, onDelivered: onDelivered)
            shards.append(shard)
            index[ObjectIdentifier(loop)] = shard
        }
        self.shards = shards
        self.shardIndex = index
        self.deliveredBox = box
        broker.attach(self)
    }

    private let deliveredBox: DeliveredBox

    // MARK: Connections

    /// Reserves a connection slot before a WebSocket handshake completes. `false` when the node
    /// is full or shutting down; pair every `true` with ``releaseConnection()``.
    public func reserveConnection(max: Int) -> Bool {
        guard accepting.load(ordering: .relaxed) else { return false }
        var current = openConnections.load(ordering: .relaxed)
        while current < max {
            let (exchanged, original) = openConnections.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives back a slot taken by ``reserveConnection(max:)``.
    public func releaseConnection() {
        let remaining = openConnections.subtract(1, ordering: .relaxed).newValue
        if remaining == 0 { resumeDrainWaiters() }
    }

    /// Whether new WebSocket connections are accepted (false once shutdown began).
    public var isAccepting: Bool { accepting.load(ordering: .relaxed) }

    /// A fresh node-local sequence number for a new connection.
    public func nextSequence() -> UInt64 {
        sequences.add(1, ordering: .relaxed).newValue
    }

    /// Connects the registry that mirrors this Hub into the cluster. Called once, at start.
    public func setObserver(_ observer: any HubObserver) {
        observers.withLock { $0 = observer }
    }

    private var observer: (any HubObserver)? { observers.withLock { $0 } }

    /// Adds a connection; call on its event loop after the handshake.
    public func register(_ connection: any HubConnection, on loop: any EventLoop) {
        shard(for: loop).add(connection)
        clientChanged(connection)
    }

    /// Removes a connection and all its memberships; call on its event loop.
    public func unregister(_ connection: any HubConnection, channels: Set<String>, on loop: any EventLoop) {
        shard(for: loop).remove(connection, channels: channels)
        for channel in channels { decrement(channel) }
        observer?.clientRemoved(id: connection.clientID, sequence: connection.sequence)
    }

    /// A connection's name or subscriptions changed; the registry republishes its row.
    public func clientChanged(_ connection: any HubConnection) {
        observer?.clientChanged(connection.info(), sequence: connection.sequence)
    }

    // MARK: Channels

    /// Adds `connection` to `channel`; returns the channel's subscriber count afterwards.
    public func subscribe(_ connection: any HubConnection, to channel: String, on loop: any EventLoop) -> Int {
        shard(for: loop).join(channel, connection)
        return counts.withLock { counts in
            let count = counts[channel, default: 0] + 1
            counts[channel] = count
            if count == 1 { broker.setInterest(in: channel, true) }
            observer?.channelCountChanged(channel)
            return count
        }
    }

    /// Removes `connection` from `channel`.
    public func unsubscribe(_ connection: any HubConnection, from channel: String, on loop: any EventLoop) {
        shard(for: loop).leave(channel, connection)
        decrement(channel)
    }

    private func decrement(_ channel: String) {
        counts.withLock { counts in
            guard let count = counts[channel] else { return }
            if count <= 1 {
                counts[channel] = nil
                broker.setInterest(in: channel, false)
            } else {
                counts[channel] = count - 1
            }
            observer?.channelCountChanged(channel)
        }
    }

    /// Local subscribers of `channel`.
    public func subscriberCount(_ channel: String) -> Int {
        counts.withLock { $0[channel] ?? 0 }
    }

    /// Every channel with local subscribers, and how many.
    public func channelCounts() -> [String: Int] {
        counts.withLock { $0 }
    }

    // MARK: Delivery

    /// Publishes through the broker, counting it.
    public func publish(_ publication: Publication) async throws(BrokerError) {
        try await broker.publish(publication)
        publishedCount.add(1, ordering: .relaxed)
    }

    /// Called by the broker: frames the payload once and queues it on every loop that has
    /// subscribers of the channel.
    public func deliver(_ publication: Publication) {
        guard counts.withLock({ $0[publication.channel] != nil }) else { return }
        let item = LoopShard.Pending(
            channel: publication.channel,
            frame: ServerFrame.text(publication.payload.readableBytesView),
            excludedClient: publication.excludedClient
        )
        for shard in shards { shard.enqueue(item) }
    }

    // MARK: Figures

    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// This node's figures.
    public var stats: NodeStats {
        NodeStats(
            node: nodeID, connections: connectionCount, channels: counts.withLock { $0.count },
            messagesPublished: messagesPublished, messagesDelivered: messagesDelivered, startedAt: startedAt,
            uptimeSeconds: Double((NIODeadline.now() - started).nanoseconds / 1_000_000) / 1000)
    }

    /// Subscribers of `channel` in the whole cluster: this node's exact count plus the other
    /// live nodes' registered counts.
    public func clusterSubscriberCount(_ channel: String) async throws -> Int {
        let local = subscriberCount(channel)
        guard let cluster else { return local }
        return local + (try await cluster.remoteSubscriberCount(of: channel))
    }
    public var messagesPublished: Int { publishedCount.load(ordering: .relaxed) }
    public var messagesDelivered: Int { deliveredBox.value }

    /// One page of connected clients, ordered by connection sequence; `cursor` is the last
    /// sequence of the previous page (0 for the first).
    public func clients(after cursor: UInt64, limit: Int) async -> [(sequence: UInt64, info: ClientInfo)] {
        var rows: [(sequence: UInt64, info: ClientInfo)] = []
        for shard in shards {
            let page = try? await shard.eventLoop.submit { shard.page(after: cursor, limit: limit) }.get()
            rows.append(contentsOf: (page ?? []).map { (sequence: $0.0, info: $0.1) })
        }
        rows.sort { $0.sequence < $1.sequence }
        return Array(rows.prefix(limit))
    }

    // MARK: Lifecycle

    /// Starts every loop's heartbeat sweep.
    public func startHeartbeat(every interval: TimeAmount) {
        for shard in shards { shard.startHeartbeat(every: interval) }
    }

    /// Stops accepting connections, sends `frame` to every client and closes each with 1001,
    /// then waits until all are gone or `timeout` passes.
    public func shutdown(with frame: ByteBuffer, timeout: TimeAmount) async {
        accepting.store(false, ordering: .relaxed)
        for shard in shards {
            shard.stopHeartbeat()
            shard.shutdownAll(with: frame)
        }
        await waitForNoConnections(timeout: timeout)
    }

    private func waitForNoConnections(timeout: TimeAmount) async {
        let id = nextSequence()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            drainWaiters.withLock { $0[id] = continuation }
            if connectionCount == 0 { resumeDrainWaiters() }
            shards[0].eventLoop.scheduleTask(in: timeout) {
                self.drainWaiters.withLock { $0.removeValue(forKey: id) }?.resume()
            }
        }
    }

    private func resumeDrainWaiters() {
        let waiters = drainWaiters.withLock { waiters in
            defer { waiters.removeAll() }
            return Array(waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    private func shard(for loop: any EventLoop) -> LoopShard {
        guard let shard = shardIndex[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop not part of the Hub's group")
        }
        return shard
    }
}

/// The delivered counter, shared by the shards before the Hub exists.
private final class DeliveredBox: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.add(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

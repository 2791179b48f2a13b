import HeraldProtocol
import NIOCore
import Synchronization

/// This node's connections and channel memberships, and the fan-out of publications to them.
///
/// State is sharded by event loop (``LoopShard``): a connection's memberships live on its own
/// loop, so subscribing and delivering take no lock there. The only shared state is the
/// per-channel subscriber count, kept under one mutex with a count per shard: it decides when
/// the broker gains or loses interest in a channel (first local subscriber in, last one out),
/// answers `subscriberCount`, and lets a publication wake only the loops that have
/// subscribers of its channel.
///
/// A publication's payload is handed to every local subscriber as it is; each transport frames
/// it once per loop (``Delivery/framed(by:_:)``) and writes the same bytes to every one of its
/// subscribers there.
public final class Hub: PublicationSink {
    /// A channel's local subscribers, in total and per shard.
    private struct ChannelCount {
        var total = 0
        var perShard: [Int]
    }

    public let nodeID: String
    /// Told of interest changes and asked for confirmations; never handed out.
    private let broker: any Broker
    private let shards: [LoopShard]
    private let shardIndex: [ObjectIdentifier: Int]
    private let counts = Mutex<[String: ChannelCount]>([:])
    private let sequences = Atomic<UInt64>(0)
    private let delivered: DeliveredCounter
    private let observers = Mutex<(any HubObserver)?>(nil)
    /// Set before the node serves; read on every membership change.
    private let membership = Mutex<[any MembershipObserver]>([])
    /// Set before the node serves; read when a channel's local count crosses zero.
    private let occupancy = Mutex<[any OccupancyObserver]>([])
    public let metrics: NodeMetrics
    /// Receipts this node collects as a publisher and reports as a deliverer.
    public let receipts: Receipts

    /// - Parameters:
    ///   - broker: told when a channel gains its first or loses its last local subscriber.
    ///   - eventLoopGroup: the loops connections run on; one shard each.
    public init(nodeID: String, broker: any Broker, eventLoopGroup: any EventLoopGroup, metrics: NodeMetrics = NodeMetrics()) {
        self.nodeID = nodeID
        self.broker = broker
        self.metrics = metrics
        let delivered = DeliveredCounter()
        var shards: [LoopShard] = []
        var index: [ObjectIdentifier: Int] = [:]
        for loop in eventLoopGroup.makeIterator() {
            index[ObjectIdentifier(loop)] = shards.count
            shards.append(LoopShard(eventLoop: loop, delivered: delivered, metrics: metrics))
        }
        self.shards = shards
        self.shardIndex = index
        self.delivered = delivered
        self.receipts = Receipts(nodeID: nodeID, broker: broker)
    }

    // MARK: Connections

    /// A fresh node-local sequence number for a new connection.
    public func nextSequence() -> UInt64 {
        sequences.add(1, ordering: .relaxed).newValue
    }

    /// Connects the registry that mirrors this Hub into the cluster. Called once, at start.
    public func setObserver(_ observer: any HubObserver) {
        observers.withLock { $0 = observer }
    }

    private var observer: (any HubObserver)? { observers.withLock { $0 } }

    /// Adds an observer of public channel memberships (presence, join and leave). Called at start.
    public func addMembershipObserver(_ observer: any MembershipObserver) {
        membership.withLock { $0.append(observer) }
    }

    private var membershipObservers: [any MembershipObserver] { membership.withLock { $0 } }

    /// Adds an observer of channels (and users) becoming occupied or vacant on this node
    /// (webhooks). Called at start.
    public func addOccupancyObserver(_ observer: any OccupancyObserver) {
        occupancy.withLock { $0.append(observer) }
    }

    private func occupancyChanged(_ channel: String, occupied: Bool) {
        for observer in occupancy.withLock({ $0 }) { observer.occupancyChanged(channel, occupied: occupied) }
    }

    /// Adds a connection; call on its event loop after the handshake.
    public func register(_ connection: any HubConnection, on loop: any EventLoop) {
        shard(for: loop).add(connection)
        clientChanged(connection)
    }

    /// Removes a connection and all its memberships; call on its event loop.
    public func unregister(_ connection: any HubConnection, channels: Set<String>, on loop: any EventLoop) {
        let index = shardNumber(for: loop)
        let userChannel = shards[index].remove(connection, channels: channels)
        for channel in channels { decrement(channel, shard: index) }
        if let userChannel { decrement(userChannel, shard: index) }
        if !channels.isEmpty {
            metrics.subscriptions.decrement(by: Double(channels.count))
            let observers = membershipObservers
            if !observers.isEmpty {
                let member = connection.member
                for channel in channels { for observer in observers { observer.left(channel, member) } }
            }
        }
        observer?.clientRemoved(id: connection.clientID, sequence: connection.sequence)
    }

    /// The connection belongs to `user` (its token's `sub`): it joins the user's private
    /// channel (``UserChannel``), so the user's notifications and signals reach it. Once per
    /// connection, on its event loop; left again by ``unregister(_:channels:on:)``.
    @discardableResult
    public func identify(_ connection: any HubConnection, as user: String, on loop: any EventLoop) -> Subscription {
        let channel = UserChannel.name(of: user)
        let index = shardNumber(for: loop)
        guard shards[index].identify(connection, channel: channel) else {
            return Subscription(localCount: subscriberCount(channel), confirmed: loop.makeSucceededVoidFuture())
        }
        return join(channel, shard: index, loop: loop)
    }

    /// A member's name changed: presence shows the new one.
    public func renamed(_ connection: any HubConnection, channels: Set<String>) {
        guard !channels.isEmpty else { return }
        let observers = membershipObservers
        guard !observers.isEmpty else { return }
        let member = connection.member
        for observer in observers { observer.updated(member, channels: channels.sorted()) }
    }

    /// A connection's name or subscriptions changed; the registry republishes its row.
    public func clientChanged(_ connection: any HubConnection) {
        observer?.clientChanged(connection.info(), sequence: connection.sequence)
    }

    // MARK: Channels

    /// What ``subscribe(_:to:on:)`` did.
    public struct Subscription: Sendable {
        /// The channel's local subscribers afterwards.
        public var localCount: Int
        /// Succeeds once this node receives the channel's publications (the broker confirmed
        /// its subscription); fails if it cannot (the broker is down or refused).
        public var confirmed: EventLoopFuture<Void>
    }

    /// Adds `connection` to `channel`. Deliveries start at once; ``Subscription/confirmed``
    /// says when the broker's side is in effect too.
    public func subscribe(_ connection: any HubConnection, to channel: String, on loop: any EventLoop) -> Subscription {
        let index = shardNumber(for: loop)
        shards[index].join(channel, connection)
        metrics.subscriptions.increment()
        let observers = membershipObservers
        if !observers.isEmpty {
            let member = connection.member
            for observer in observers { observer.joined(channel, member) }
        }
        return join(channel, shard: index, loop: loop)
    }

    /// Counts a new local member of `channel` (already in its shard) and tells the broker of
    /// a first one.
    private func join(_ channel: String, shard index: Int, loop: any EventLoop) -> Subscription {
        let shardCount = shards.count
        let count = counts.withLock { counts in
            var entry = counts[channel] ?? ChannelCount(perShard: Array(repeating: 0, count: shardCount))
            entry.total += 1
            entry.perShard[index] += 1
            counts[channel] = entry
            if entry.total == 1 {
                broker.setInterest(in: channel, true)
                occupancyChanged(channel, occupied: true)
            }
            observer?.channelCountChanged(channel)
            return entry.total
        }
        return Subscription(localCount: count, confirmed: broker.whenSubscribed(channel, on: loop))
    }

    /// Removes `connection` from `channel`.
    public func unsubscribe(_ connection: any HubConnection, from channel: String, on loop: any EventLoop) {
        let index = shardNumber(for: loop)
        shards[index].leave(channel, connection)
        decrement(channel, shard: index)
        metrics.subscriptions.decrement()
        let observers = membershipObservers
        if !observers.isEmpty {
            let member = connection.member
            for observer in observers { observer.left(channel, member) }
        }
    }

    private func decrement(_ channel: String, shard index: Int) {
        counts.withLock { counts in
            guard var entry = counts[channel] else { return }
            entry.total -= 1
            entry.perShard[index] -= 1
            if entry.total <= 0 {
                counts[channel] = nil
                broker.setInterest(in: channel, false)
                occupancyChanged(channel, occupied: false)
            } else {
                counts[channel] = entry
            }
            observer?.channelCountChanged(channel)
        }
    }

    /// Local subscribers of `channel`.
    public func subscriberCount(_ channel: String) -> Int {
        counts.withLock { $0[channel]?.total ?? 0 }
    }

    /// Every channel with local subscribers, and how many — users' private channels too (the
    /// registry counts those for `delivered`); ``UserChannel/isPrivate(_:)`` tells them apart.
    public func channelCounts() -> [String: Int] {
        counts.withLock { $0.mapValues(\.total) }
    }

    /// Public channels with local subscribers.
    public var channelCount: Int {
        counts.withLock { counts in counts.keys.count { !UserChannel.isPrivate($0) } }
    }

    /// The local members of `channel` with a client id above `cursor`, at most `limit`, in
    /// client id order, and how many there are in all.
    public func members(of channel: String, after cursor: String?, limit: Int) async -> (members: [PresenceMember], total: Int) {
        var members: [PresenceMember] = []
        for shard in shards {
            let found = try? await shard.eventLoop.submit { shard.members(of: channel) }.get()
            members.append(contentsOf: found ?? [])
        }
        members.sort { $0.clientId < $1.clientId }
        let total = members.count
        if let cursor { members.removeAll { $0.clientId <= cursor } }
        return (Array(members.prefix(limit)), total)
    }

    // MARK: Delivery

    /// Called by the broker: queues the publication on every loop that has subscribers of the
    /// channel (the others are not woken).
    public func deliver(_ publication: Publication) {
        if let request = publication.receipt {
            return enqueue(publication, tallied: request)
        }
        if ReceiptRequest.isReceiptChannel(publication.channel) {
            return receipts.received(publication)
        }
        enqueue(.publication(publication, nil), channel: publication.channel)
    }

    /// A publication whose publisher waits for a receipt: its loops' writes are tallied and
    /// reported (nothing when no loop here has subscribers).
    private func enqueue(_ publication: Publication, tallied request: ReceiptRequest) {
        let wake = loops(of: publication.channel)
        guard !wake.isEmpty else { return }
        let receipts = self.receipts
        let tally = ReceiptTally(request: request, loops: wake.count) { written, sequences in
            receipts.delivered(publication, request: request, written: written, sequences: sequences)
        }
        for index in wake { shards[index].enqueue(.publication(publication, tally)) }
    }

    /// Called by the broker: the channel's local connections act on `signal`, in order with
    /// its publications.
    public func deliver(_ signal: ConnectionSignal, to channel: String) {
        enqueue(.signal(signal, channel: channel), channel: channel)
    }

    private func enqueue(_ item: LoopShard.Pending, channel: String) {
        for index in loops(of: channel) { shards[index].enqueue(item) }
    }

    /// The shards with subscribers of `channel`.
    private func loops(of channel: String) -> [Int] {
        var wake: [Int] = []
        counts.withLock { counts in
            guard let entry = counts[channel] else { return }
            for (index, count) in entry.perShard.enumerated() where count > 0 { wake.append(index) }
        }
        return wake
    }

    /// Notifications written to this node's sockets.
    public var messagesDelivered: Int { delivered.value }

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

    /// Sends each connection a message from `message` (`server_shutdown`) and starts its close.
    public func shutdownConnections(with message: @escaping @Sendable () -> ServerMessage) {
        for shard in shards {
            shard.stopHeartbeat()
            shard.shutdownAll(with: message)
        }
    }

    private func shardNumber(for loop: any EventLoop) -> Int {
        guard let index = shardIndex[ObjectIdentifier(loop)] else {
            preconditionFailure("event loop not part of the Hub's group")
        }
        return index
    }

    private func shard(for loop: any EventLoop) -> LoopShard {
        shards[shardNumber(for: loop)]
    }
}

/// The delivered counter, shared by the shards.
final class DeliveredCounter: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.add(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

import HeraldCore
import HeraldProtocol
import HeraldSupport
import Logging
import NIOCore
import Synchronization

/// One Server-Sent Events stream: a ``HubConnection`` whose deliveries become `text/event-stream`
/// events, written by the HTTP response's body task.
///
/// Its state lives on its event loop, like a WebSocket connection's; the only thing shared
/// with the writing task is the queue of encoded events (an `AsyncStream`), bounded in bytes:
/// a reader that falls `HERALD_SEND_QUEUE_BYTES` behind is dropped, like a slow WebSocket
/// reader. Every notification's `id:` is the ``ResumeToken`` of every channel of the stream,
/// so the `Last-Event-ID` of a reconnecting `EventSource` resumes them all.
///
/// A thin transport for a ``Session``, the rules a WebSocket follows: the subscribe sequence,
/// the token's expiry — when `exp` passes, the stream gets an `error` event (`token_expired`)
/// and a `disconnect` event with 4002, then ends — the slow consumer, the application's
/// signals. It decides nothing but how to write what the session says as events.
final class SSEConnection: HubConnection, @unchecked Sendable {
    let clientID: String
    let sequence: UInt64
    let loop: any EventLoop
    private let joiner: ChannelJoiner
    /// Asked to extend a stream the connect hook admitted when its expiry passes.
    private let hooks: BackendHooks?
    private let configuration: HeraldConfiguration
    private let metrics: NodeMetrics
    private var logger: Logger
    private let connectedAt = HeraldNotification.timestampNow()
    private let output: AsyncStream<ByteBuffer>.Continuation
    let events: AsyncStream<ByteBuffer>
    /// Bytes handed to the writer and not yet written.
    private let queued = Atomic<Int>(0)
    /// The queue passed its bound and the session lags: the writer wakes the loop once it
    /// drained half of it.
    private let lagging = Atomic<Bool>(false)

    // Confined to `loop`.
    private var positions: [String: StreamPosition] = [:]
    /// The client's session; the stream's keep-alive comments are its own (they need no answer).
    private var state: Session
    private var timer: Scheduled<Void>?
    private var open = true
    /// Why the stream ends, when the server ends it (else the client went away).
    private var endReason: DisconnectReason?
    private var lastWrite = NIODeadline.now()

    /// - Parameter access: what the stream's token (or its absence) allows.
    init(
        clientID: String = RandomID.make(), joiner: ChannelJoiner, configuration: HeraldConfiguration, metrics: NodeMetrics,
        access: ChannelAccess, namespaces: NamespaceRules = NamespaceRules(), hooks: BackendHooks? = nil, loop: any EventLoop,
        logger: Logger
    ) {
        self.hooks = hooks
        self.metrics = metrics
        self.clientID = clientID
        self.sequence = joiner.hub.nextSequence()
        self.joiner = joiner
        self.configuration = configuration
        self.loop = loop
        self.state = Session(
            clientID: clientID, transport: .sse, rules: configuration.streamRules, limits: configuration.sessionLimits,
            maxReplay: configuration.maxReplay, access: access, namespaces: namespaces, now: .now())
        self.logger = logger
        self.logger[metadataKey: "client"] = "\(clientID)"
        (events, output) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .unbounded)
    }

    // MARK: Lifecycle (on the loop)

    /// Registers with the Hub, sends the welcome, then subscribes to each channel in turn —
    /// replaying, per channel, what followed its position in `resume`.
    func start(channels wanted: [String], resume: [String: StreamPosition]) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        hub.register(self, on: loop)
        metrics.connected(.sse)
        if let userID { hub.identify(self, as: userID, on: loop) }
        perform(state.opened(
            handshake: identity.map { .success($0) }, refreshable: hooks?.hasRefreshHook == true && state.client.access.isBackend,
            now: .now(), wallClockMillis: WebSocketConnection.wallClockMillis()))
        emit(SSEEvent.retry(milliseconds: 1000))
        emit(SSEEvent.event(
            name: "welcome",
            data: ByteBuffer(bytes: ServerMessage.welcome(clientId: clientID, node: hub.nodeID, message: "Connected to Herald").jsonBytes())
                .readableBytesView))
        var chain = loop.makeSucceededVoidFuture()
        for channel in wanted {
            chain = chain.flatMap { self.subscribe(channel, since: resume[channel]) }
        }
        return chain
    }

    private var hub: Hub { joiner.hub }
    /// The stream's token, kept by its session (whose `exp` ends the stream).
    private var identity: ClientIdentity? { state.client.access.identity }
    private var userID: String? { identity?.userID }

    /// One channel: join, wait for the broker, read the history, then what the session says:
    /// `subscribed` (and `recovery` when resuming), the replay, and the live notifications
    /// that came meanwhile.
    private func subscribe(_ channel: String, since: StreamPosition?) -> EventLoopFuture<Void> {
        guard open else { return loop.makeSucceededVoidFuture() }
        // A `durable` channel the stream does not resume by itself resumes after its user's ack.
        guard since == nil else { return subscribe(channel, since: since, fromAcknowledged: false) }
        return joiner.resumePosition(of: channel, user: userID, namespaces: state.client.namespaces, on: loop).flatMap { stored in
            self.subscribe(channel, since: stored, fromAcknowledged: stored != nil)
        }
    }

    private func subscribe(_ channel: String, since: StreamPosition?, fromAcknowledged: Bool) -> EventLoopFuture<Void> {
        guard open else { return loop.makeSucceededVoidFuture() }
        state.client.subscribedByTransport(channel)
        let query = state.subscribing(channel, since: since, fromAcknowledged: fromAcknowledged)
        return joiner.join(self, to: channel, query: query, on: loop).map { answer in
            if case .notConfirmed(let error) = answer {
                self.logger.warning("subscription not confirmed by the broker", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
            self.perform(self.state.answered(channel, answer), since: since)
        }
    }

    /// Writes what the session decided as events.
    /// - Parameter since: where the client resumes the channel being answered, if it does.
    private func perform(_ actions: [Session.Action], since: StreamPosition? = nil) {
        for action in actions {
            switch action {
            case .send(.unsubscribed(let channel)):
                emit(SSEEvent.event(
                    name: "unsubscribed", id: positions.isEmpty ? nil : ResumeToken.encode(positions),
                    data: ByteBuffer(bytes: ServerMessage.unsubscribed(channel: channel).jsonBytes()).readableBytesView))
            case .send(let message):
                emit(SSEEvent.event(name: message.type, data: ByteBuffer(bytes: message.jsonBytes()).readableBytesView))
            case .subscribed(let channel, let count, let position, let recovery, let deliveries):
                if let recovery { metrics.recovery(recovered: recovery.recovered) }
                if let position, recovery?.recovered != true { positions[channel] = position }
                if let since, recovery?.recovered == true { positions[channel] = since }
                let subscribed = ServerMessage.subscribed(channel: channel, subscriberCount: count, position: position, recovery: recovery)
                emit(SSEEvent.event(
                    name: "subscribed", id: ResumeToken.encode(positions), data: ByteBuffer(bytes: subscribed.jsonBytes()).readableBytesView))
                if let recovery {
                    let report = RecoveryReport(channel: channel, recovery: recovery, position: position)
                    emit(SSEEvent.event(name: "recovery", data: report.encoded().readableBytesView))
                }
                deliver(merged: deliveries)
            case .deliver(let deliveries):
                deliver(merged: deliveries)
            case .catchUp(let catchUp):
                catchUpOn(catchUp)
            case .leave(let channel):
                positions[channel] = nil
                hub.unsubscribe(self, from: channel, on: loop)
                hub.clientChanged(self)
            case .close(let code, let reason, let error):
                // An EventSource reconnects after any end of stream; the `disconnect` event
                // tells herald.js (and the page) what a WebSocket close code would.
                logger.debug("closing", metadata: ["code": "\(code.rawValue)", "reason": "\(reason)"])
                if let error {
                    emit(SSEEvent.event(name: "error", data: ByteBuffer(bytes: ServerMessage.error(error).jsonBytes()).readableBytesView))
                }
                let message = ServerMessage.disconnect(code: Int(code.rawValue), reason: reason)
                emit(SSEEvent.event(name: "disconnect", data: ByteBuffer(bytes: message.jsonBytes()).readableBytesView))
                close(reason: state.lifecycle.disconnectReason ?? DisconnectReason(closing: code))
            case .end(let error, let reason):
                // The stream ends with the reason, so the client reconnects later rather than
                // believing it is subscribed.
                emit(SSEEvent.event(name: "error", data: ByteBuffer(bytes: ServerMessage.error(error).jsonBytes()).readableBytesView))
                close(reason: reason)
            case .closeSocket:
                close(reason: state.lifecycle.disconnectReason ?? .normal)
            case .refreshExpiry:
                refreshExpiry()
            }
        }
        armTimer()
    }

    // MARK: Deadlines

    /// The stream's expiry passed: the backend's refresh hook says whether it lives on.
    private func refreshExpiry() {
        guard let hooks else { return }
        let (client, user) = (clientID, userID)
        loop.makeFutureWithTask { await hooks.refresh(client: client, user: user) }.whenSuccess { [self] verdict in
            guard open else { return }
            perform(state.refreshAnswered(verdict, now: .now(), wallClockMillis: WebSocketConnection.wallClockMillis()))
        }
    }

    private func armTimer() {
        timer?.cancel()
        timer = nil
        guard open, let deadline = state.nextDeadline else { return }
        timer = loop.scheduleTask(deadline: deadline) { [self] in
            timer = nil
            guard open else { return }
            perform(state.deadlineReached(now: .now()))
        }
    }

    /// Ends the stream (the body task finishes the response); `reason` when the server ends it.
    func close(reason: DisconnectReason = .normal) {
        guard open else { return }
        open = false
        timer?.cancel()
        timer = nil
        endReason = endReason ?? reason
        output.finish()
    }

    /// The body task ended (the client went away, or the stream was closed): leave the Hub.
    func finished() {
        loop.preconditionInEventLoop()
        open = false
        hub.unregister(self, channels: state.client.subscriptions, on: loop)
        metrics.disconnected(.sse, reason: endReason ?? .normal)
    }

    // MARK: Writing

    /// Queues encoded bytes for the writer. Past the queue's bound the reader is slow: the
    /// session's policies decide whether the stream lags (nothing more is queued until the
    /// writer drained half of it) or ends — as NIO's write-buffer marks do for a WebSocket.
    private func emit(_ bytes: ByteBuffer) {
        guard open else { return }
        let total = queued.add(bytes.readableBytes, ordering: .relaxed).newValue
        lastWrite = .now()
        output.yield(bytes)
        guard total > configuration.sendQueueBytes, !state.isLagging else { return }
        let actions = state.writabilityLost()
        if state.isLagging {
            for policy in state.slowConsumerPolicies { metrics.slowConsumer(policy) }
            lagging.store(true, ordering: .relaxed)
            // The writer may have drained everything meanwhile: nothing would wake us.
            if queued.load(ordering: .relaxed) <= configuration.sendQueueBytes / 2 { loop.execute { self.drained() } }
        } else {
            metrics.slowConsumer(.disconnect)
            logger.notice("dropping slow SSE consumer", metadata: ["queued": "\(total)"])
        }
        perform(actions)
    }

    /// Called by the writer after each write.
    func written(_ bytes: Int) {
        let left = queued.subtract(bytes, ordering: .relaxed).newValue
        guard left <= configuration.sendQueueBytes / 2, lagging.exchange(false, ordering: .relaxed) else { return }
        loop.execute { self.drained() }
    }

    /// The writer drained half the queue while the stream lagged.
    private func drained() {
        lagging.store(false, ordering: .relaxed)
        guard open, state.isLagging else { return }
        perform(state.writabilityRegained())
    }

    /// Deliveries a merge placed (a replay, a catch-up, kept `latest` ones).
    private func deliver(merged deliveries: [Delivery]) {
        for delivery in deliveries where admitted(state.deliverMerged(delivery)) { deliver(delivery) }
    }

    /// Whether the session's verdict is to write now; counts what a slow client's policy did.
    private func admitted(_ outgoing: Session.Outgoing) -> Bool {
        switch outgoing {
        case .write:
            return true
        case .hold(let holding):
            if holding == .kept(replaced: true) { metrics.conflated.increment() }
            return false
        case .closeSocket:
            metrics.slowConsumer(.disconnect)
            logger.notice("dropping slow SSE consumer: a notification it cannot catch up on arrived")
            close(reason: .slowConsumer)
            return false
        }
    }

    /// Reads what the reader missed of a channel while it was slow, then sends it.
    private func catchUpOn(_ catchUp: SlowConsumerFlow.CatchUp) {
        let channel = catchUp.channel
        joiner.read(channel, query: catchUp.query, localCount: hub.subscriberCount(channel), on: loop).whenSuccess { [self] answer in
            guard open else { return }
            let actions = state.caughtUp(channel, answer)
            metrics.caughtUp(actions)
            perform(actions)
        }
    }

    /// A notification as an unnamed event whose id carries the positions of every channel of
    /// the stream; any other message (`join`, `leave`, `presence_changed`) as an event named by
    /// its type, without an id. The id differs per stream, so nothing here is shared.
    private func deliver(_ delivery: Delivery) {
        switch delivery.kind {
        case .message(let type):
            emit(SSEEvent.event(name: type, data: delivery.payload.readableBytesView))
        case .notification:
            if let position = delivery.position { positions[delivery.channel] = position }
            emit(SSEEvent.event(id: positions.isEmpty ? nil : ResumeToken.encode(positions), data: delivery.payload.readableBytesView))
        }
    }

    // MARK: HubConnection

    @discardableResult
    func write(_ delivery: Delivery) -> WriteResult {
        send(delivery) ? .written(firstSinceFlush: false) : .held
    }

    func flush() {}

    @discardableResult
    func send(_ delivery: Delivery) -> Bool {
        guard open, admitted(state.deliver(delivery)) else { return false }
        deliver(delivery)
        return true
    }

    func heartbeat(now: NIODeadline) {
        guard open, now - lastWrite >= configuration.pingInterval else { return }
        emit(SSEEvent.comment("keep-alive"))
    }

    func shutdown(with message: ServerMessage) {
        guard open else { return }
        // The goodbye's delay hint becomes EventSource's reconnection delay, so a rolling
        // restart's browsers come back spread out, as WebSocket clients do.
        if case .serverShutdown(_, let after?) = message {
            emit(SSEEvent.retry(milliseconds: max(after, 50)))
        }
        emit(SSEEvent.event(name: "server_shutdown", data: ByteBuffer(bytes: message.jsonBytes()).readableBytesView))
        close(reason: .shutdown)
    }

    var member: PresenceMember {
        PresenceMember(clientId: clientID, user: userID, name: nil, node: hub.nodeID, connectedAt: connectedAt)
    }

    func handle(_ signal: ConnectionSignal) {
        guard open else { return }
        perform(state.signal(signal, now: .now()))
    }

    func info() -> ClientInfo {
        ClientInfo(
            id: clientID, name: nil, connectedAt: connectedAt, subscriptions: state.client.subscriptions.sorted(), node: hub.nodeID,
            userId: userID)
    }
}

/// The `recovery` event of a resumed SSE channel.
struct RecoveryReport {
    var channel: String
    var recovery: ServerMessage.Recovery
    var position: StreamPosition?

    func encoded() -> ByteBuffer {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.field("type", "recovery")
        writer.field("channel", channel)
        writer.field("recovered", recovery.recovered)
        writer.field("replayed", recovery.replayed)
        if let position {
            writer.field("offset", Int(position.offset))
            writer.field("epoch", position.epoch)
        }
        writer.endObject()
        return writer.buffer
    }
}

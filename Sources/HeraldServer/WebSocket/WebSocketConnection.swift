import Foundation
import HeraldCore
import HeraldProtocol
import HeraldSupport
import Logging
import NIOCore
import NIOWebSocket

/// Serves one `/ws` client: a thin transport for its ``Session``. It runs frames through
/// ``FrameAssembler``, hands the session's machines the events only a WebSocket has (frames,
/// messages held behind an operation), and carries out what the session decides against the
/// ``Hub`` and the socket — the same session rules an SSE stream follows.
///
/// A plain NIO handler on the connection's event loop — no task, no actor hop, no lock on the
/// delivery path. The Hub writes publication frames through ``write(_:)`` directly.
final class WebSocketConnection: WebSocketEndpoint, HubConnection {
    typealias InboundIn = WebSocketFrame

    /// What every connection of a node shares.
    struct Services: Sendable {
        let hub: Hub
        let publisher: Publisher
        let counts: SubscriberCounts
        /// Where a `subscribe` reads the channel's position and what the client missed.
        let history: any ChannelHistory
        /// Where `presence` reads a channel's members.
        let presence: any PresenceStore
        let metrics: NodeMetrics
        let shared: SharedConfiguration
        /// `nil` when the node verifies no tokens.
        let verifier: TokenVerifier?
        /// `nil` when no backend hook is configured.
        let hooks: BackendHooks?
        /// Each channel's namespace rules (reloaded on SIGHUP).
        let namespaces: NamespaceRules
        /// Users' acknowledged positions (`durable` namespaces).
        let positions: any ReadPositions

        /// The node's one joiner (its reads are shared across connections).
        let joiner: ChannelJoiner
    }

    let clientID: String
    let sequence: UInt64
    private let connectedAt = HeraldNotification.timestampNow()
    let services: Services
    var logger: Logger
    /// The client's session: lifecycle, client rules, subscribe sequence.
    var state: Session
    private var assembler: FrameAssembler
    var context: ChannelHandlerContext?
    /// The handshake's `?token=` verdict, acted on when the connection opens.
    private let handshake: Result<ClientIdentity, ProtocolError>?
    /// The connect hook's verdict, acted on when the connection opens.
    private let backend: BackendHooks.ConnectVerdict?
    /// Channels the connect hook's answer subscribes the client to, one after the other.
    var joinsAtConnect: [String] = []
    /// The one timer, armed for the machine's next deadline.
    private var timer: (deadline: NIODeadline, task: Scheduled<Void>)?
    /// Frames written since the last flush (the Hub flushes each connection once per batch).
    private var pendingFlush = false

    var hub: Hub { services.hub }
    var configuration: HeraldConfiguration { services.shared.configuration }

    /// - Parameters:
    ///   - handshake: the outcome of verifying the handshake's `?token=`, if it had one.
    ///   - backend: the connect hook's verdict, for a handshake without a token.
    init(
        services: Services, handshake: Result<ClientIdentity, ProtocolError>?,
        backend: BackendHooks.ConnectVerdict? = nil, clientID: String = RandomID.make(), logger: Logger
    ) {
        let now = NIODeadline.now()
        self.clientID = clientID
        self.backend = backend
        self.sequence = services.hub.nextSequence()
        self.services = services
        let configuration = services.shared.configuration
        self.logger = logger
        self.logger[metadataKey: "client"] = "\(clientID)"
        var access = services.verifier == nil ? ChannelAccess.open : .anonymous
        var lifecycleHandshake = handshake
        if case .success(let identity) = handshake { access = .token(identity) }
        if case .accepted(let identity, let channels) = backend {
            // The backend vouched: the lifecycle keeps its expiry as it keeps a token's.
            access = .backend(identity)
            lifecycleHandshake = .success(identity)
            joinsAtConnect = channels
        }
        self.handshake = lifecycleHandshake
        self.state = Session(
            clientID: clientID, transport: .websocket, rules: configuration.connectionRules, limits: configuration.sessionLimits,
            maxReplay: configuration.maxReplay, access: access,
            requiresToken: services.verifier != nil && !configuration.auth.allowAnonymous && backend == nil,
            namespaces: services.namespaces, now: now)
        self.assembler = FrameAssembler(maxMessageBytes: configuration.maxMessageBytes)
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        hub.register(self, on: context.eventLoop)
        services.metrics.connected(.websocket)
        logger.debug("client connected")
        let refreshable = services.hooks?.hasRefreshHook == true && state.client.access.isBackend
        let opened = state.opened(handshake: handshake, refreshable: refreshable, now: .now(), wallClockMillis: Self.wallClockMillis())
        switch backend {
        case .refused(let code, let message):
            let error = ProtocolError(.forbidden, message)
            return perform(state.lifecycle.close(code, reason: error.code.rawValue, error: error, now: .now(), cause: .unauthorized))
        case .unavailable:
            let error = ProtocolError(.temporarilyUnavailable, "the backend could not be asked; try again")
            return perform(state.lifecycle.close(.backendUnavailable, reason: error.code.rawValue, error: error, now: .now()))
        case .accepted, nil:
            break
        }
        if opened.isEmpty {
            send(.welcome(clientId: clientID, node: hub.nodeID, message: "Connected to Herald"))
            if let user = state.client.access.userID { hub.identify(self, as: user, on: context.eventLoop) }
        }
        perform(opened)
        if !joinsAtConnect.isEmpty, state.isOpen {
            begin(.other)
            nextOperation()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch state.lifecycle.frameReceived(isClose: frame.opcode == .connectionClose, now: .now()) {
        case .ignore: return
        case .closeSocket: context.close(promise: nil); return
        case .process: break
        }
        switch assembler.frameReceived(frame) {
        case .none:
            break
        case .text(let buffer):
            textReceived(buffer)
        case .binary:
            close(.unsupportedData, reason: "binary frames are not supported; send JSON text")
        case .pong(let payload):
            writeAndFlush(ServerFrame.pong(payload.readableBytesView))
        case .peerClosed(let code):
            perform(state.lifecycle.peerClosed(code: code))
        case .fail(let code, let reason):
            close(code, reason: reason)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            perform(state.writabilityRegained())
        } else if state.isOpen, !state.isLagging {
            let actions = state.writabilityLost()
            if state.isLagging {
                for policy in state.slowConsumerPolicies { services.metrics.slowConsumer(policy) }
                logger.debug("slow consumer: holding its notifications", metadata: ["queued": "\(configuration.sendQueueBytes)"])
            } else {
                services.metrics.slowConsumer(.disconnect)
                logger.notice("dropping slow consumer", metadata: ["queued": "\(configuration.sendQueueBytes)"])
            }
            perform(actions)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Messages

    func textReceived(_ buffer: ByteBuffer) {
        switch state.lifecycle.textReceived(buffer, now: .now()) {
        case .handle(let text):
            let action = state.client.textReceived(
                text.readableBytesView, now: .now(), wallClockMillis: Self.wallClockMillis())
            handle(action)
        case .held:
            break
        case .perform(let action):
            perform(action)
        }
    }

    private func handle(_ action: ClientSession.Action) {
        guard let loop = context?.eventLoop else { return }
        switch action {
        case .reply(let message):
            send(message)
            if case .nameSet = message {
                hub.clientChanged(self)
                hub.renamed(self, channels: state.client.subscriptions)
            }
        case .subscribe(let channel, let since):
            begin(.other)
            join(channel, since: since, loop: loop)
        case .askSubscribeHook(let channel, let since):
            askSubscribeHook(channel, since: since, loop: loop)
        case .askPublishHook(let channel, let text):
            askPublishHook(channel, text: text, loop: loop)
        case .resubscribe(let channel):
            begin(.other)
            let query = state.resubscribing(channel)
            let loopBound = NIOLoopBound(self, eventLoop: loop)
            services.joiner.read(channel, query: query, localCount: hub.subscriberCount(channel), on: loop).whenSuccess {
                loopBound.value.answered(channel, $0)
            }
        case .unsubscribe(let channel):
            state.left(channel)
            leave(channel)
            send(.unsubscribed(channel: channel))
        case .publish(let channel, let text):
            post(text, to: channel, loop: loop)
        case .authenticate(let token):
            authenticate(token, loop: loop)
        case .presence(let channel):
            presence(of: channel, loop: loop)
        case .acknowledge(let channel, let offset, let epoch):
            acknowledge(channel, offset: offset, epoch: epoch, loop: loop)
        case .none:
            break
        case .close(let code, let reason, let error):
            perform(state.lifecycle.close(code, reason: reason, error: error, now: .now()))
        }
    }

    // MARK: HubConnection

    @discardableResult
    func write(_ delivery: Delivery) -> WriteResult {
        guard let context = context, admitted(state.deliver(delivery)) else { return .held }
        context.write(NIOAny(Self.frame(delivery)), promise: nil)
        defer { pendingFlush = true }
        return .written(firstSinceFlush: !pendingFlush)
    }

    func flush() {
        pendingFlush = false
        context?.flush()
    }

    @discardableResult
    func send(_ delivery: Delivery) -> Bool {
        guard admitted(state.deliver(delivery)) else { return false }
        writeAndFlush(Self.frame(delivery))
        return true
    }

    /// Writes deliveries a merge placed (a replay, a catch-up), then flushes.
    private func write(merged deliveries: [Delivery]) {
        guard let context = context else { return }
        for delivery in deliveries where admitted(state.deliverMerged(delivery)) {
            context.write(NIOAny(Self.frame(delivery)), promise: nil)
        }
        context.flush()
    }

    /// Whether the session's verdict is to write now; counts what a slow client's policy did.
    private func admitted(_ outgoing: Session.Outgoing) -> Bool {
        switch outgoing {
        case .write:
            return true
        case .hold(let holding):
            if holding == .kept(replaced: true) { services.metrics.conflated.increment() }
            return false
        case .closeSocket:
            services.metrics.slowConsumer(.disconnect)
            logger.notice("dropping slow consumer: a notification it cannot catch up on arrived")
            context?.close(promise: nil)
            return false
        }
    }

    func heartbeat(now: NIODeadline) {
        let actions = state.heartbeat(now: now, wallClockMillis: Self.wallClockMillis())
        if actions.contains(where: { if case .close = $0 { true } else { false } }) { logger.debug("heartbeat timeout") }
        perform(actions)
    }

    func shutdown(with message: ServerMessage) {
        guard state.isOpen else { return }
        send(message)
        perform(state.lifecycle.shutdown(now: .now()))
    }

    var member: PresenceMember {
        PresenceMember(
            clientId: clientID, user: state.client.access.userID, name: state.client.name, node: hub.nodeID, connectedAt: connectedAt)
    }

    func handle(_ signal: ConnectionSignal) {
        if signal == .disconnect, state.isOpen { logger.info("disconnected by the application") }
        perform(state.signal(signal, now: .now()))
    }

    func info() -> ClientInfo {
        ClientInfo(
            id: clientID, name: state.client.name, connectedAt: connectedAt,
            subscriptions: state.client.subscriptions.sorted(), node: hub.nodeID, userId: state.client.access.userID)
    }

    // MARK: Output

    /// The text frame of a delivery: built once per publication on this loop and shared by
    /// every WebSocket subscriber here (the same buffer, written by reference).
    static func frame(_ delivery: Delivery) -> ByteBuffer {
        delivery.framed(by: WebSocketConnection.self) { ServerFrame.text($0.readableBytesView) }
    }

    /// Sends a message while the connection is open (nothing may follow our close frame).
    func send(_ message: ServerMessage) {
        guard state.isOpen else { return }
        writeAndFlush(ServerFrame.message(message))
    }

    private func writeAndFlush(_ frame: ByteBuffer) {
        context?.writeAndFlush(NIOAny(frame), promise: nil)
    }

    var maxMessageBytes: Int { configuration.maxMessageBytes }

    func fail(context: ChannelHandlerContext, _ code: CloseCode, reason: String) {
        close(code, reason: reason)
    }

    private func close(_ code: CloseCode, reason: String) {
        perform(state.lifecycle.close(code, reason: reason, error: nil, now: .now()))
    }

    /// Carries out what the session decided, then re-arms the timer for its next deadline.
    func perform(_ actions: [Session.Action]) {
        for action in actions {
            switch action {
            case .send(let message):
                send(message)
            case .subscribed(let channel, let count, let position, let recovery, let deliveries):
                if let recovery { services.metrics.recovery(recovered: recovery.recovered) }
                send(.subscribed(channel: channel, subscriberCount: count, position: position, recovery: recovery))
                write(merged: deliveries)
            case .deliver(let deliveries):
                write(merged: deliveries)
            case .catchUp(let catchUp):
                catchUpOn(catchUp)
            case .leave(let channel):
                leave(channel)
            case .close(let code, let reason, let error):
                perform(.close(code, reason: reason, error: error))
            case .end(let error, _):
                // Not decided for WebSockets (a client subscribes again by itself); close as
                // an unavailable server would.
                perform(.close(.goingAway, reason: error.code.rawValue, error: error))
            case .closeSocket:
                perform(.closeSocket)
            case .refreshExpiry:
                perform(.refreshExpiry)
            }
        }
        armTimer()
    }

    /// Reads what the client missed of a channel while it was slow, then sends it.
    private func catchUpOn(_ catchUp: SlowConsumerFlow.CatchUp) {
        guard let loop = context?.eventLoop else { return }
        let (channel, metrics) = (catchUp.channel, services.metrics)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        services.joiner.read(channel, query: catchUp.query, localCount: hub.subscriberCount(channel), on: loop).whenSuccess { answer in
            let connection = loopBound.value
            let actions = connection.state.caughtUp(channel, answer)
            metrics.caughtUp(actions)
            connection.perform(actions)
        }
    }

    /// Leaves `channel` in the Hub.
    private func leave(_ channel: String) {
        guard let loop = context?.eventLoop else { return }
        hub.unsubscribe(self, from: channel, on: loop)
        hub.clientChanged(self)
    }

    /// Carries out what the lifecycle decided, then re-arms the timer for its next deadline.
    func perform(_ action: ConnectionStateMachine.Action) {
        switch action {
        case .none:
            break
        case .send(let message):
            send(message)
        case .close(let code, let reason, let error):
            logger.debug("closing", metadata: ["code": "\(code.rawValue)", "reason": "\(reason)"])
            if let error { writeAndFlush(ServerFrame.message(.error(error))) }
            writeAndFlush(ServerFrame.close(code: code.rawValue, reason: reason))
        case .answerClose(let code):
            writeAndFlush(ServerFrame.close(code: code))
            context?.close(promise: nil)
        case .closeSocket:
            context?.close(promise: nil)
        case .refreshExpiry:
            refreshExpiry()
        }
        armTimer()
    }

    func armTimer() {
        let next = state.nextDeadline
        guard next != timer?.deadline else { return }
        timer?.task.cancel()
        timer = nil
        guard let next, let loop = context?.eventLoop else { return }
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        timer = (next, loop.scheduleTask(deadline: next) {
            let connection = loopBound.value
            connection.timer = nil
            connection.perform(connection.state.deadlineReached(now: .now()))
        })
    }

    /// Leaves the Hub exactly once, whichever way the connection ends.
    private func finish() {
        let first = state.lifecycle.channelClosed()
        timer?.task.cancel()
        timer = nil
        guard first, let loop = context?.eventLoop else { return }
        hub.unregister(self, channels: state.client.subscriptions, on: loop)
        services.metrics.disconnected(.websocket, reason: state.lifecycle.disconnectReason ?? .connectionLost)
        logger.debug("client disconnected")
    }

    static func wallClockMillis() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }
}

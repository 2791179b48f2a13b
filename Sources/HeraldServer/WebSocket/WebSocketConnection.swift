import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOWebSocket

/// Serves one `/ws` client: runs its frames through ``FrameAssembler`` and ``ClientSession``
/// and carries out what they decide against the ``Hub`` and the socket.
///
/// A plain NIO handler on the connection's event loop — no task, no actor hop, no lock on the
/// delivery path. The Hub writes publication frames through ``write(_:)`` directly.
final class WebSocketConnection: WebSocketEndpoint, HubConnection {
    typealias InboundIn = WebSocketFrame

    enum State {
        case open
        /// We sent a close frame and wait for the peer's, or for the close timeout.
        case closing
        case closed
    }

    let clientID: String
    let sequence: UInt64
    private let connectedAt = HeraldNotification.timestampNow()
    private let hub: Hub
    private let outlet: RawFrameOutlet
    private let shared: SharedConfiguration
    private var logger: Logger
    private var session: ClientSession
    private var assembler: FrameAssembler
    private var context: ChannelHandlerContext?
    private var state = State.open
    private var lastHeard: NIODeadline
    private var lastPing: NIODeadline
    private var registered = false
    /// Frames written since the last flush (the Hub flushes each connection once per batch).
    private var pendingFlush = false
    private let verifier: TokenVerifier?
    /// Why the handshake's `?token=` was refused; the connection closes as soon as it opens.
    private let handshakeFailure: ProtocolError?
    /// An `auth` token is being verified: later messages wait here, in order.
    private var authenticating = false
    private var heldMessages: [ByteBuffer] = []
    /// Closes the connection when the token expires, or when `auth` does not come in time.
    private var deadline: Scheduled<Void>?

    /// Messages a client may send behind its `auth` before the verdict; more is a flood.
    static let maxHeldMessages = 64

    /// The furthest an expiry timer is set (100 years, in ms); a longer-lived token simply
    /// outlives the process.
    static let longestTokenTimer: Int64 = 100 * 365 * 86_400 * 1000

    /// How long we wait for the peer's close frame after sending ours.
    static let closeTimeout = TimeAmount.seconds(2)

    /// - Parameters:
    ///   - handshake: the outcome of verifying the handshake's `?token=`, if it had one.
    init(
        hub: Hub, outlet: RawFrameOutlet, shared: SharedConfiguration, verifier: TokenVerifier?,
        handshake: Result<ClientIdentity, ProtocolError>?, logger: Logger
    ) {
        let now = NIODeadline.now()
        self.clientID = RandomID.make()
        self.sequence = hub.nextSequence()
        self.hub = hub
        self.outlet = outlet
        self.shared = shared
        let configuration = shared.configuration
        self.logger = logger
        self.logger[metadataKey: "client"] = "\(clientID)"
        var access = verifier == nil ? ChannelAccess.open : .anonymous
        if case .success(let identity) = handshake { access = .token(identity) }
        if case .failure(let error) = handshake { self.handshakeFailure = error } else { self.handshakeFailure = nil }
        self.verifier = verifier
        self.session = ClientSession(
            clientID: clientID, limits: configuration.sessionLimits, access: access,
            requiresToken: verifier != nil && !configuration.auth.allowAnonymous, now: now)
        self.assembler = FrameAssembler(maxMessageBytes: configuration.maxMessageBytes)
        self.lastHeard = now
        self.lastPing = now
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        hub.register(self, on: context.eventLoop)
        registered = true
        logger.debug("client connected")
        if let handshakeFailure {
            refuse(handshakeFailure)
            return
        }
        send(.welcome(clientId: clientID, node: hub.nodeID, message: "Connected to Herald"))
        if case .token(let identity) = session.access {
            expire(at: identity)
        } else if session.awaitsToken {
            let timeout = shared.configuration.auth.timeout
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: timeout) {
                loopBound.value.refuse(ProtocolError(.unauthorized, "no auth message within \(timeout.nanoseconds / 1_000_000) ms"))
            }
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
        lastHeard = .now()
        guard state == .open else {
            if state == .closing, frame.opcode == .connectionClose { context.close(promise: nil) }
            return
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
            writeAndFlush(ServerFrame.close(code: code))
            state = .closed
            context.close(promise: nil)
        case .fail(let code, let reason):
            close(code, reason: reason)
        }
    }

    /// NIO reports the outbound queue crossing `sendQueueBytes`: the client is not reading.
    /// Buffering more would grow memory without bound, so it is dropped at once; a close frame
    /// would only queue behind what it has not read, so the TCP connection is closed instead.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable, state != .closed {
            logger.notice("dropping slow consumer", metadata: ["queued": "\(shared.configuration.sendQueueBytes)"])
            state = .closed
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Session

    private func textReceived(_ buffer: ByteBuffer) {
        if authenticating {
            guard heldMessages.count < Self.maxHeldMessages else {
                close(.policyViolation, reason: "too many messages before auth completed")
                return
            }
            heldMessages.append(buffer)
            return
        }
        let action = session.textReceived(
            buffer.readableBytesView, now: .now(), wallClockMillis: Int64(Date().timeIntervalSince1970 * 1000))
        guard let loop = context?.eventLoop else { return }
        switch action {
        case .reply(let message):
            send(message)
            if case .nameSet = message { hub.clientChanged(self) }
        case .subscribe(let channel):
            let count = hub.subscribe(self, to: channel, on: loop)
            hub.clientChanged(self)
            logger.trace("subscribed", metadata: ["channel": "\(channel)"])
            replySubscribed(channel, localCount: count, loop: loop)
        case .resubscribe(let channel):
            replySubscribed(channel, localCount: hub.subscriberCount(channel), loop: loop)
        case .unsubscribe(let channel):
            hub.unsubscribe(self, from: channel, on: loop)
            hub.clientChanged(self)
            send(.unsubscribed(channel: channel))
        case .publish(let channel, let text):
            post(text, to: channel, loop: loop)
        case .authenticate(let token):
            authenticate(token, loop: loop)
        case .none:
            break
        case .close(let code, let reason, let error):
            send(.error(error))
            close(code, reason: reason)
        }
    }

    // MARK: Authentication

    /// Verifies an `auth` token off the loop; messages that arrive meanwhile are held and
    /// handled, in order, once the verdict is in.
    private func authenticate(_ token: String, loop: any EventLoop) {
        guard let verifier else { return }
        authenticating = true
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask {
            await verifier.verify(token)
        }.whenSuccess { verdict in
            loopBound.value.authenticated(verdict)
        }
    }

    private func authenticated(_ verdict: Result<ClientIdentity, ProtocolError>) {
        authenticating = false
        guard state == .open else { return }
        switch verdict {
        case .failure(let error):
            refuse(error)
        case .success(let identity):
            deadline?.cancel()
            session.authenticated(identity)
            logger[metadataKey: "user"] = "\(identity.userID)"
            send(.authenticated(userId: identity.userID, expiresAt: identity.expiresAtMillis))
            hub.clientChanged(self)
            expire(at: identity)
            let held = heldMessages
            heldMessages = []
            for message in held where state == .open && !authenticating {
                textReceived(message)
            }
        }
    }

    /// Schedules the close for the moment the token expires.
    private func expire(at identity: ClientIdentity) {
        guard let loop = context?.eventLoop else { return }
        let remaining = identity.expiresAtMillis - Int64(Date().timeIntervalSince1970 * 1000)
        // TimeAmount counts nanoseconds in an Int64 (292 years): clamp, or a far-future token
        // would overflow it.
        let delay = TimeAmount.milliseconds(min(max(remaining, 0), Self.longestTokenTimer))
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        deadline = loop.scheduleTask(in: delay) {
            loopBound.value.refuse(ProtocolError(.tokenExpired, "token expired; reconnect with a fresh one"))
        }
    }

    /// Sends the error, then closes with 4002 for an expired token and 4001 for anything else.
    private func refuse(_ error: ProtocolError) {
        logger.debug("authentication refused", metadata: ["code": "\(error.code.rawValue)"])
        send(.error(error))
        close(error.code == .tokenExpired ? .tokenExpired : .unauthorized, reason: error.code.rawValue)
    }

    /// Sends `subscribed` with the cluster-wide count. Alone, the local count is the answer
    /// and goes out at once; in a cluster the other nodes' counts are read from the registry
    /// first (falling back to the local count if the registry cannot be reached).
    private func replySubscribed(_ channel: String, localCount: Int, loop: any EventLoop) {
        guard hub.cluster != nil else {
            send(.subscribed(channel: channel, subscriberCount: localCount))
            return
        }
        let hub = self.hub
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask {
            (try? await hub.clusterSubscriberCount(channel)) ?? localCount
        }.whenSuccess { count in
            loopBound.value.send(.subscribed(channel: channel, subscriberCount: count))
        }
    }

    /// A client `message`: published like a REST notification, minus the sender.
    private func post(_ text: String, to channel: String, loop: any EventLoop) {
        let notification = OutgoingNotification(HeraldNotification(
            channel: channel, body: text, from: clientID, fromName: session.name, fromUser: session.access.userID))
        let publication = Publication(channel: channel, payload: notification.encoded(), excludedClient: clientID)
        let hub = self.hub
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask {
            try await hub.publish(publication)
        }.whenFailure { error in
            loopBound.value.send(.error(ProtocolError(.unavailable, "could not publish: \(error)")))
        }
    }

    // MARK: HubConnection

    @discardableResult
    func write(_ frame: ByteBuffer) -> Bool {
        guard state == .open, let context = outlet.context else { return false }
        context.write(NIOAny(frame), promise: nil)
        defer { pendingFlush = true }
        return !pendingFlush
    }

    func flush() {
        pendingFlush = false
        outlet.context?.flush()
    }

    func send(_ frame: ByteBuffer) {
        guard state == .open else { return }
        writeAndFlush(frame)
    }

    func heartbeat(now: NIODeadline) {
        guard state == .open else { return }
        if now - lastHeard >= shared.configuration.pingTimeout {
            logger.debug("heartbeat timeout")
            close(.normal, reason: "timeout")
        } else if now - lastPing >= shared.configuration.pingInterval {
            lastPing = now
            send(.ping(timestamp: Int64(Date().timeIntervalSince1970 * 1000)))
        }
    }

    func shutdown(with frame: ByteBuffer) {
        guard state == .open else { return }
        write(frame)
        close(.goingAway, reason: "server shutdown")
    }

    func info() -> ClientInfo {
        ClientInfo(
            id: clientID, name: session.name, connectedAt: connectedAt,
            subscriptions: session.subscriptions.sorted(), node: hub.nodeID, userId: session.access.userID)
    }

    // MARK: Output

    private func send(_ message: ServerMessage) {
        writeAndFlush(ServerFrame.message(message))
    }

    private func writeAndFlush(_ frame: ByteBuffer) {
        outlet.context?.writeAndFlush(NIOAny(frame), promise: nil)
    }

    var maxMessageBytes: Int { shared.configuration.maxMessageBytes }

    func fail(context: ChannelHandlerContext, _ code: CloseCode, reason: String) {
        close(code, reason: reason)
    }

    /// Starts the closing handshake: our close frame now, the TCP close when the peer answers
    /// or after ``closeTimeout``.
    private func close(_ code: CloseCode, reason: String) {
        guard state == .open, let context else { return }
        logger.debug("closing", metadata: ["code": "\(code.rawValue)", "reason": "\(reason)"])
        writeAndFlush(ServerFrame.close(code: code.rawValue, reason: reason))
        state = .closing
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
    }

    /// Leaves the Hub exactly once, whichever way the connection ends.
    private func finish() {
        state = .closed
        deadline?.cancel()
        deadline = nil
        guard registered, let loop = context?.eventLoop else { return }
        registered = false
        hub.unregister(self, channels: session.subscriptions, on: loop)
        logger.debug("client disconnected")
    }
}

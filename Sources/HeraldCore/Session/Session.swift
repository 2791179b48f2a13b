import HeraldProtocol
import NIOCore

/// One client's session, whatever its transport, as a pure state machine: the rules a
/// WebSocket and an SSE stream share, written once.
///
/// It nests the machines that each own one concern (postgres-nio's `ConnectionStateMachine`
/// is the model): ``lifecycle`` (open, closing, the deadlines: auth, token expiry, heartbeat,
/// slow consumer), ``client`` (what the client may do and has: access, name, subscriptions,
/// rate) and the subscribe sequence (``SubscriptionFlow``: the recovery merge and the replay
/// floor). Rules that involve more than one of them are its own methods, taking events with
/// the time passed in and returning ``Action``s; a transport performs those — frames and
/// writes, closes, reads from the broker — and decides nothing. Events only one transport has
/// (WebSocket frames, the messages held behind an operation) go to the nested machines
/// directly.
public struct Session: Sendable {
    /// How the client is connected; the rules differ only where the transport cannot do
    /// something (an SSE client cannot subscribe again on the same stream).
    public enum Transport: Sendable, Equatable {
        case websocket
        case sse
    }

    /// What a subscribe learned from the broker (``ChannelJoiner`` in the server reads it).
    public enum SubscribeAnswer: Sendable {
        /// The broker confirmed; the history page (or why it could not be read) and the
        /// cluster-wide subscriber count.
        case read(Result<HistoryPage, BrokerError>, count: Int)
        /// The broker could not confirm the subscription.
        case notConfirmed(String)
    }

    public enum Action: Sendable {
        /// Send this message.
        case send(ServerMessage)
        /// `subscribed` for a channel: the reply, then the deliveries (replay and the live ones
        /// that arrived meanwhile), in order. `recovery` is `nil` for a plain subscribe.
        case subscribed(channel: String, count: Int, position: StreamPosition?, recovery: ServerMessage.Recovery?, deliveries: [Delivery])
        /// Leave `channel` in the Hub (a subscription undone or ended by the application).
        case leave(String)
        /// Send `error` (if any), then close the connection with `code` (a WebSocket close
        /// frame; for SSE a `disconnect` event that tells the client not to come back as is).
        case close(CloseCode, reason: String, error: ProtocolError?)
        /// Send `error`, then end the connection so that the client reconnects by itself (an
        /// SSE stream whose subscribe failed).
        case end(ProtocolError, reason: DisconnectReason)
        /// Close the socket now, without a goodbye (a slow consumer, the close handshake done).
        case closeSocket
        /// Ask the backend's refresh hook to extend the connection (its expiry passed).
        case refreshExpiry
        /// Write these deliveries, in order, each through ``deliverMerged(_:)`` (a slow client's
        /// kept `latest` notifications, or its catch-up).
        case deliver([Delivery])
        /// Read what a slow client missed of a channel (``ChannelJoiner``'s read), then call
        /// ``caughtUp(_:_:)``.
        case catchUp(SlowConsumerFlow.CatchUp)
    }

    /// What to do with one delivery.
    public enum Outgoing: Equatable, Sendable {
        case write
        /// Not now (a merge holds it, a replay sent it, the client is slow, the connection
        /// closes); what a slow client's policy did with it, if that was the reason.
        case hold(SlowConsumerFlow.Holding?)
        /// End the connection as a slow consumer (the lifecycle recorded why).
        case closeSocket
    }

    public let transport: Transport
    public var lifecycle: ConnectionStateMachine
    public var client: ClientSession
    private var flow: SubscriptionFlow
    private var slow = SlowConsumerFlow()
    /// Each channel's epoch as its `subscribed` said: what an `ack` without one refers to.
    private var epochs: [String: String] = [:]

    /// - Parameters:
    ///   - access: `.token` when the handshake carried a valid token; otherwise `.open` (the
    ///     node verifies no tokens) or `.anonymous`.
    ///   - requiresToken: anonymous connections must authenticate with their first message.
    public init(
        clientID: String, transport: Transport, rules: ConnectionStateMachine.Configuration, limits: SessionLimits,
        maxReplay: Int, access: ChannelAccess, requiresToken: Bool = false, namespaces: NamespaceRules = NamespaceRules(),
        now: NIODeadline
    ) {
        self.transport = transport
        self.lifecycle = ConnectionStateMachine(configuration: rules, now: now)
        self.client = ClientSession(
            clientID: clientID, limits: limits, access: access, requiresToken: requiresToken, namespaces: namespaces, now: now)
        self.flow = SubscriptionFlow(maxReplay: maxReplay, canResubscribe: transport == .websocket)
    }

    // MARK: Lifecycle

    /// The connection is open (the WebSocket handshake completed; the SSE stream started).
    /// - Parameter handshake: the verdict on the handshake's token, if it carried one.
    /// - Returns: nothing to go on (send `welcome`), or the refusal.
    /// - Parameter refreshable: the backend's refresh hook may extend the identity's expiry.
    public mutating func opened(
        handshake: Result<ClientIdentity, ProtocolError>?, refreshable: Bool = false, now: NIODeadline, wallClockMillis: Int64
    ) -> [Action] {
        Self.actions(lifecycle.opened(
            handshake: handshake, awaitsToken: client.awaitsToken, refreshable: refreshable, now: now, wallClockMillis: wallClockMillis))
    }

    /// The transport's timer fired at ``nextDeadline``: auth timeout, token expiry, the end of
    /// the close handshake.
    public mutating func deadlineReached(now: NIODeadline) -> [Action] {
        Self.actions(lifecycle.deadlineReached(now: now))
    }

    /// The periodic heartbeat: a `ping` to send, or a silent client to close.
    public mutating func heartbeat(now: NIODeadline, wallClockMillis: Int64) -> [Action] {
        Self.actions(lifecycle.heartbeat(now: now, wallClockMillis: wallClockMillis))
    }

    /// What the backend's refresh hook said once the connection's expiry passed
    /// (``Action/refreshExpiry``): live on until the new expiry, or close — 4002 when the backend
    /// refused (the session is over), 4503 when it could not be asked (reconnect and be asked again).
    public mutating func refreshAnswered(_ verdict: ExpiryVerdict, now: NIODeadline, wallClockMillis: Int64) -> [Action] {
        switch verdict {
        case .extended(let millis):
            return Self.actions(lifecycle.expiryRefreshed(expiresAtMillis: millis, now: now, wallClockMillis: wallClockMillis))
        case .refused(let message):
            let error = ProtocolError(.tokenExpired, message)
            return Self.actions(lifecycle.close(.tokenExpired, reason: error.code.rawValue, error: error, now: now))
        case .unavailable(let message):
            let error = ProtocolError(.temporarilyUnavailable, message)
            return Self.actions(lifecycle.close(.backendUnavailable, reason: error.code.rawValue, error: error, now: now))
        }
    }

    /// The client stopped reading: its outbound queue passed its bound. Its channels'
    /// `slow_consumer` policies decide: lag (nothing more is queued until
    /// ``writabilityRegained()``) or close.
    public mutating func writabilityLost() -> [Action] {
        if lifecycle.isOpen, slow.lost(subscriptions: client.subscriptions, policy: slowConsumerPolicy) { return [] }
        return Self.actions(lifecycle.writabilityLost())
    }

    /// The outbound queue drained: the kept `latest` notifications go out, and what `catch_up`
    /// channels missed is read back.
    public mutating func writabilityRegained() -> [Action] {
        guard lifecycle.isOpen else { return [] }
        let rules = client.namespaces
        let (reads, deliveries) = slow.regained { rules.history(for: $0).size }
        var actions: [Action] = deliveries.isEmpty ? [] : [.deliver(deliveries)]
        actions += reads.map { .catchUp($0) }
        return actions
    }

    /// What a catch-up's read (``Action/catchUp(_:)``) brought.
    public mutating func caughtUp(_ channel: String, _ answer: SubscribeAnswer) -> [Action] {
        let page: Result<HistoryPage, BrokerError>
        var count = 0
        switch answer {
        case .read(let read, let total): (page, count) = (read, total)
        case .notConfirmed(let error): page = .failure(.unavailable(error))
        }
        guard let outcome = slow.caughtUp(channel, page), client.subscriptions.contains(channel), lifecycle.isOpen else { return [] }
        flow.sent(channel, through: outcome.position)
        if let epoch = outcome.position?.epoch { epochs[channel] = epoch }
        if outcome.recovery?.recovered == true { return [.deliver(outcome.deliveries)] }
        return [.subscribed(
            channel: channel, count: count, position: outcome.position, recovery: .init(recovered: false, replayed: 0),
            deliveries: outcome.deliveries)]
    }

    /// Whether the client is slow now: its queue is past its bound.
    public var isLagging: Bool { slow.isLagging }

    /// The policies of the connection's channels (for metrics).
    public var slowConsumerPolicies: Set<SlowConsumerPolicy> {
        Set(client.subscriptions.map(slowConsumerPolicy))
    }

    private var slowConsumerPolicy: (String) -> SlowConsumerPolicy {
        let rules = client.namespaces
        return { rules.policy(for: $0)?.slowConsumer ?? .disconnect }
    }

    /// The earliest moment ``deadlineReached(now:)`` has something to do.
    public var nextDeadline: NIODeadline? { lifecycle.nextDeadline }

    /// Whether messages and publications may still be written.
    public var isOpen: Bool { lifecycle.isOpen }

    // MARK: Subscribes

    /// The client subscribes to `channel` (accepted by ``client``; for SSE, named by the
    /// stream). The transport joins the channel in the Hub; live publications of it are
    /// held until ``answered(_:_:)``.
    /// - Returns: what to ask the channel's history for.
    /// - Parameter fromAcknowledged: `since` is the user's acknowledged position, read for a
    ///   `durable` channel subscribed without one (`subscribed` then says how many are unread).
    public mutating func subscribing(_ channel: String, since: StreamPosition?, fromAcknowledged: Bool = false) -> (after: Int64?, limit: Int) {
        flow.subscribe(channel, since: since, fromAcknowledged: fromAcknowledged)
    }

    /// A `subscribe` to a channel the connection is in already: answered again, no replay.
    public mutating func resubscribing(_ channel: String) -> (after: Int64?, limit: Int) {
        flow.resubscribe(channel)
    }

    /// What the broker said about the subscribe to `channel`.
    public mutating func answered(_ channel: String, _ answer: SubscribeAnswer) -> [Action] {
        let stillSubscribed = client.subscriptions.contains(channel)
        switch answer {
        case .notConfirmed(let error):
            switch flow.confirmationFailed(channel, error: error, stillSubscribed: stillSubscribed) {
            case .none:
                return []
            case .undo(let refusal):
                _ = client.subscriptionFailed(channel)
                slow.left(channel)
                return [.leave(channel), .send(.error(refusal))]
            case .end(let refusal):
                _ = client.subscriptionFailed(channel)
                slow.left(channel)
                return [.leave(channel), .end(refusal, reason: .connectionLost)]
            }
        case .read(let page, let count):
            guard let outcome = flow.historyRead(channel, page, stillSubscribed: stillSubscribed) else { return [] }
            epochs[channel] = outcome.position?.epoch
            return [.subscribed(
                channel: channel, count: count, position: outcome.position, recovery: outcome.recovery,
                deliveries: outcome.deliveries)]
        }
    }

    /// A live publication for the client: write it, hold it (a subscribe's merge, a replay
    /// sent it already, the client is slow, the connection is closing), or close.
    public mutating func deliver(_ delivery: Delivery) -> Outgoing {
        guard lifecycle.isOpen, flow.live(delivery) else { return .hold(nil) }
        return admit(delivery)
    }

    /// A delivery a merge already placed (a subscribe's replay, a catch-up, kept `latest`
    /// ones): only a slow client's policy still applies.
    public mutating func deliverMerged(_ delivery: Delivery) -> Outgoing {
        guard lifecycle.isOpen else { return .hold(nil) }
        return admit(delivery)
    }

    private mutating func admit(_ delivery: Delivery) -> Outgoing {
        // The fan-out path: one branch, no policy lookup, while nothing is slow.
        guard !slow.isIdle else { return .write }
        switch slow.admit(delivery, policy: slowConsumerPolicy) {
        case .write:
            return .write
        case .held(let holding):
            return .hold(holding)
        case .disconnect:
            _ = lifecycle.writabilityLost()
            return .closeSocket
        }
    }

    /// The client unsubscribed (already taken off ``client``'s subscriptions).
    public mutating func left(_ channel: String) {
        flow.left(channel)
        slow.left(channel)
        epochs[channel] = nil
    }

    /// The position an `ack` refers to: its own epoch, else the one the channel was answered with.
    public func acknowledged(_ channel: String, offset: Int64, epoch: String?) -> StreamPosition? {
        guard let epoch = epoch ?? epochs[channel] else { return nil }
        return StreamPosition(offset: offset, epoch: epoch)
    }

    // MARK: Signals

    /// The application acted on the connection's user.
    public mutating func signal(_ signal: ConnectionSignal, now: NIODeadline) -> [Action] {
        guard lifecycle.isOpen else { return [] }
        switch signal {
        case .disconnect:
            return Self.actions(lifecycle.close(.disconnectedByServer, reason: "disconnected by the server", error: nil, now: now))
        case .unsubscribe(let channel):
            guard case .unsubscribe = client.serverUnsubscribed(channel) else { return [] }
            left(channel)
            return [.leave(channel), .send(.unsubscribed(channel: channel))]
        }
    }

    /// The lifecycle's decision as session actions.
    static func actions(_ action: ConnectionStateMachine.Action) -> [Action] {
        switch action {
        case .none: []
        case .send(let message): [.send(message)]
        case .close(let code, let reason, let error): [.close(code, reason: reason, error: error)]
        // The events handled here never answer a peer's close frame (the transport does, as
        // it receives one); closing the socket is what is left of either.
        case .answerClose, .closeSocket: [.closeSocket]
        case .refreshExpiry: [.refreshExpiry]
        }
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// The session rules every transport follows, without sockets: each test runs for a WebSocket
/// and for an SSE stream through the same machine, and says where the transports differ.
@Suite struct SessionTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let wall: Int64 = 1_800_000_000_000

    func session(
        _ transport: Session.Transport, access: ChannelAccess = .open, requiresToken: Bool = false,
        namespaces: NamespaceRules = NamespaceRules()
    ) -> Session {
        // An SSE stream runs without `ping` (its keep-alive comments need no answer).
        let rules = ConnectionStateMachine.Configuration(
            pingInterval: transport == .websocket ? .seconds(30) : nil, pingTimeout: .seconds(60), authTimeout: .seconds(10))
        return Session(
            clientID: "c1", transport: transport, rules: rules, limits: SessionLimits(), maxReplay: 100, access: access,
            requiresToken: requiresToken, namespaces: namespaces, now: start)
    }

    func identity(expiresIn millis: Int64) -> ClientIdentity {
        ClientIdentity(userID: "ada", grant: .none, expiresAtMillis: wall + millis)
    }

    func delivery(_ channel: String, _ offset: Int64) -> Delivery {
        Delivery(
            channel: channel, position: StreamPosition(offset: offset, epoch: "e1"), payload: ByteBuffer(string: #"{"n":\#(offset)}"#))
    }

    func page(_ channel: String, latest: Int64, after: Int64) -> HistoryPage {
        HistoryPage(
            latest: StreamPosition(offset: latest, epoch: "e1"),
            publications: (after + 1...max(latest, after + 1)).filter { $0 <= latest }.map { offset in
                Publication(channel: channel, payload: ByteBuffer(string: #"{"n":\#(offset)}"#), position: StreamPosition(offset: offset, epoch: "e1"))
            },
            oldest: 1)
    }

    /// Subscribes the way each transport does: a `subscribe` message, or the stream's channel.
    func subscribe(_ session: inout Session, _ channel: String, since: Int64?) -> (after: Int64?, limit: Int) {
        let position = since.map { StreamPosition(offset: $0, epoch: "e1") }
        switch session.transport {
        case .websocket:
            let message = #"{"type":"subscribe","channel":"\#(channel)"\#(since.map { #","since":{"offset":\#($0),"epoch":"e1"}"# } ?? "")}"#
            let action = session.client.textReceived(Array(message.utf8), now: start, wallClockMillis: wall)
            #expect(action == .subscribe(channel, since: position))
        case .sse:
            session.client.subscribedByTransport(channel)
        }
        return session.subscribing(channel, since: position)
    }

    func live(_ session: inout Session, _ delivery: Delivery) -> Bool { session.deliver(delivery) == .write }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func theRecoveryMergeSendsWhatWasMissedOnceAndInOrder(transport: Session.Transport) throws {
        var session = session(transport)
        let query = subscribe(&session, "news", since: 3)
        #expect(query.after == 3)
        // Live publications wait for the history; one the history also holds goes out once.
        #expect(!live(&session, delivery("news", 6)))
        #expect(!live(&session, delivery("news", 7)))
        let actions = session.answered("news", .read(.success(page("news", latest: 6, after: 3)), count: 2))
        guard case .subscribed("news", 2, let position, let recovery, let deliveries)? = actions.first, actions.count == 1 else {
            Issue.record("not a subscribed: \(actions)")
            return
        }
        #expect(position == StreamPosition(offset: 6, epoch: "e1"))
        #expect(recovery == .init(recovered: true, replayed: 3))
        #expect(deliveries.map { $0.position?.offset } == [4, 5, 6, 7])
        // A late copy of what the history page held (the pub/sub link may lag the command
        // link) is not sent again; the next one is.
        #expect(!live(&session, delivery("news", 6)))
        #expect(live(&session, delivery("news", 8)))
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func aSubscribeTheBrokerCannotConfirmIsUndoneOrEndsTheStream(transport: Session.Transport) {
        var session = session(transport)
        _ = subscribe(&session, "news", since: nil)
        let actions = session.answered("news", .notConfirmed("redis down"))
        #expect(!session.client.subscriptions.contains("news"))
        guard case .leave("news")? = actions.first else {
            Issue.record("the channel is left in the Hub first: \(actions)")
            return
        }
        switch (transport, actions.last) {
        case (.websocket, .send(.error(let error))?):
            // The client stays connected and may subscribe again.
            #expect(error.code == .unavailable)
            #expect(session.isOpen)
        case (.sse, .end(let error, .connectionLost)?):
            // An EventSource cannot subscribe again on the same stream: it reconnects.
            #expect(error.code == .unavailable)
        default:
            Issue.record("\(transport): \(actions)")
        }
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func theTokenExpiryClosesWith4002(transport: Session.Transport) {
        var session = session(transport, access: .token(identity(expiresIn: 5000)))
        #expect(session.opened(handshake: .success(identity(expiresIn: 5000)), now: start, wallClockMillis: wall).isEmpty)
        #expect(session.nextDeadline == start + .seconds(5))
        #expect(session.deadlineReached(now: start + .milliseconds(4999)).isEmpty)
        guard case .close(.tokenExpired, _, let error?)? = session.deadlineReached(now: start + .seconds(5)).first else {
            Issue.record("no 4002 at expiry")
            return
        }
        #expect(error.code == .tokenExpired)
        #expect(session.lifecycle.disconnectReason == .tokenExpired)
        // Nothing more is delivered to a session that is closing.
        #expect(!live(&session, delivery("news", 1)))
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func aClientThatOwesATokenIsClosedWith4001AtTheAuthDeadline(transport: Session.Transport) {
        var session = session(transport, access: .anonymous, requiresToken: true)
        #expect(session.opened(handshake: nil, now: start, wallClockMillis: wall).isEmpty)
        guard case .close(.unauthorized, _, let error?)? = session.deadlineReached(now: start + .seconds(10)).first else {
            Issue.record("no 4001 at the auth deadline")
            return
        }
        #expect(error.code == .unauthorized)
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func aSlowConsumerIsDroppedAtOnceWithoutAGoodbye(transport: Session.Transport) {
        var session = session(transport, namespaces: NamespaceRules(Namespaces(defaultPolicy: NamespacePolicy(slowConsumer: .disconnect))))
        _ = session.opened(handshake: nil, now: start, wallClockMillis: wall)
        _ = subscribe(&session, "news", since: nil)
        guard case .closeSocket? = session.writabilityLost().first else {
            Issue.record("a slow consumer is closed at once: a goodbye would queue behind what it does not read")
            return
        }
        #expect(session.lifecycle.disconnectReason == .slowConsumer)
        #expect(session.writabilityLost().isEmpty)
        #expect(!live(&session, delivery("news", 1)))
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func theApplicationsSignalsActTheSameForEveryTransport(transport: Session.Transport) {
        var session = session(transport)
        _ = subscribe(&session, "news", since: nil)
        _ = session.answered("news", .read(.success(page("news", latest: 0, after: 0)), count: 1))
        let unsubscribed = session.signal(.unsubscribe(channel: "news"), now: start)
        guard case .leave("news")? = unsubscribed.first, case .send(.unsubscribed("news"))? = unsubscribed.last else {
            Issue.record("\(unsubscribed)")
            return
        }
        #expect(session.client.subscriptions.isEmpty)
        // Not subscribed (any more): nothing to do.
        #expect(session.signal(.unsubscribe(channel: "news"), now: start).isEmpty)
        guard case .close(.disconnectedByServer, _, nil)? = session.signal(.disconnect, now: start).first else {
            Issue.record("no 4003")
            return
        }
        #expect(session.lifecycle.disconnectReason == .serverDisconnect)
    }

    @Test func onlyAWebSocketIsPingedAndClosedForSilence() {
        var websocket = session(.websocket)
        var stream = session(.sse)
        guard case .send(.ping)? = websocket.heartbeat(now: start + .seconds(30), wallClockMillis: wall).first else {
            Issue.record("no ping")
            return
        }
        guard case .close(.normal, "timeout", nil)? = websocket.heartbeat(now: start + .seconds(61), wallClockMillis: wall).first else {
            Issue.record("a silent WebSocket is closed")
            return
        }
        // An SSE client cannot answer: its stream is never closed for silence.
        #expect(stream.heartbeat(now: start + .seconds(600), wallClockMillis: wall).isEmpty)
        #expect(stream.isOpen)
    }
}

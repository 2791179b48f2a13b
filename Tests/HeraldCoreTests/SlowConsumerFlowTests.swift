import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// A slow client's `slow_consumer` policies through the session, without sockets: the same
/// rules for a WebSocket and an SSE stream.
@Suite struct SlowConsumerFlowTests {
    let helpers = SessionTests()
    let rules = NamespaceRules(
        Namespaces(
            defaultPolicy: NamespacePolicy(history: HistoryPolicy(size: 100)),
            named: [
                "ticker": NamespacePolicy(history: HistoryPolicy(size: 10), slowConsumer: .latest),
                "chat": NamespacePolicy(history: HistoryPolicy(size: 10), slowConsumer: .disconnect),
                "live": NamespacePolicy(history: HistoryPolicy(size: 0)),
            ]))

    func subscribed(_ transport: Session.Transport, _ channels: String...) -> Session {
        var session = helpers.session(transport, namespaces: rules)
        _ = session.opened(handshake: nil, now: helpers.start, wallClockMillis: helpers.wall)
        for channel in channels {
            _ = helpers.subscribe(&session, channel, since: nil)
            _ = session.answered(channel, .read(.success(helpers.page(channel, latest: 4, after: 4)), count: 1))
        }
        return session
    }

    func keyed(_ channel: String, _ offset: Int64, key: String) -> Delivery {
        Delivery(
            channel: channel, position: StreamPosition(offset: offset, epoch: "e1"),
            payload: ByteBuffer(string: #"{"type":"notification","conflate_key":"\#(key)","offset":\#(offset)}"#))
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func catchUpSkipsWhileSlowThenSendsTheGapFromHistoryOnceAndInOrder(transport: Session.Transport) {
        var session = subscribed(transport, "news")
        #expect(session.deliver(helpers.delivery("news", 5)) == .write)
        #expect(session.writabilityLost().isEmpty, "catch_up (history on) keeps the connection")
        #expect(session.isLagging)
        for offset: Int64 in 6...8 { #expect(session.deliver(helpers.delivery("news", offset)) == .hold(.skipped)) }
        #expect(session.deliver(Delivery(channel: "news", position: nil, payload: ByteBuffer(string: "{}"), kind: .message(type: "join"))) == .hold(.dropped))

        let actions = session.writabilityRegained()
        guard case .catchUp(let read)? = actions.first, actions.count == 1 else {
            Issue.record("one catch-up read, got \(actions)")
            return
        }
        #expect(read.channel == "news" && read.since == StreamPosition(offset: 5, epoch: "e1"))
        #expect(read.query.after == 5 && read.query.limit == 101)
        // Published while the history is read: merged, not written ahead of the gap.
        #expect(session.deliver(helpers.delivery("news", 9)) == .hold(.buffered))
        let answer = session.caughtUp("news", .read(.success(helpers.page("news", latest: 10, after: 5)), count: 1))
        guard case .deliver(let deliveries)? = answer.first, answer.count == 1 else {
            Issue.record("the gap and what followed, got \(answer)")
            return
        }
        #expect(deliveries.map { $0.position?.offset } == [6, 7, 8, 9, 10])
        // The live stream (another socket to Redis) may still bring what the page held: dropped.
        #expect(session.deliver(helpers.delivery("news", 10)) == .hold(nil))
        #expect(session.deliver(helpers.delivery("news", 11)) == .write)
    }

    @Test func aGapTheHistoryNoLongerHoldsIsSubscribedAgainWithRecoveredFalse() {
        var session = subscribed(.websocket, "news")
        _ = session.writabilityLost()
        _ = session.deliver(helpers.delivery("news", 5))
        _ = session.writabilityRegained()
        // Trimmed: the oldest retained is 50.
        var page = helpers.page("news", latest: 60, after: 49)
        page.oldest = 50
        let actions = session.caughtUp("news", .read(.success(page), count: 3))
        guard case .subscribed("news", 3, let position, let recovery, let deliveries)? = actions.first else {
            Issue.record("subscribed again, got \(actions)")
            return
        }
        #expect(position == StreamPosition(offset: 60, epoch: "e1"))
        #expect(recovery == .init(recovered: false, replayed: 0))
        #expect(deliveries.isEmpty)
    }

    @Test func aSlowClientLosingWritabilityDuringItsCatchUpIsCaughtUpAgainFromWhereItStopped() {
        var session = subscribed(.websocket, "news")
        _ = session.writabilityLost()
        _ = session.deliver(helpers.delivery("news", 5))
        _ = session.writabilityRegained()
        guard case .deliver(let deliveries)? = session.caughtUp("news", .read(.success(helpers.page("news", latest: 8, after: 4)), count: 1)).first else {
            Issue.record("no catch-up")
            return
        }
        // The socket fills again after two of them.
        #expect(session.deliverMerged(deliveries[0]) == .write)
        #expect(session.deliverMerged(deliveries[1]) == .write)
        _ = session.writabilityLost()
        #expect(session.deliverMerged(deliveries[2]) == .hold(.skipped))
        #expect(session.deliverMerged(deliveries[3]) == .hold(.skipped))
        guard case .catchUp(let read)? = session.writabilityRegained().first else {
            Issue.record("no second catch-up")
            return
        }
        #expect(read.since == StreamPosition(offset: 6, epoch: "e1"))
    }

    @Test(arguments: [Session.Transport.websocket, .sse])
    func latestKeepsOnlyTheNewestPerKeyWithItsRealOffset(transport: Session.Transport) {
        var session = subscribed(transport, "ticker:us")
        _ = session.writabilityLost()
        #expect(session.deliver(keyed("ticker:us", 5, key: "AAPL")) == .hold(.kept(replaced: false)))
        #expect(session.deliver(keyed("ticker:us", 6, key: "MSFT")) == .hold(.kept(replaced: false)))
        #expect(session.deliver(keyed("ticker:us", 7, key: "AAPL")) == .hold(.kept(replaced: true)))
        #expect(session.deliver(helpers.delivery("ticker:us", 8)) == .hold(.kept(replaced: false)), "no key: one per channel")
        #expect(session.deliver(helpers.delivery("ticker:us", 9)) == .hold(.kept(replaced: true)))
        let actions = session.writabilityRegained()
        guard case .deliver(let deliveries)? = actions.first, actions.count == 1 else {
            Issue.record("the kept ones, got \(actions)")
            return
        }
        #expect(deliveries.map { $0.position?.offset } == [6, 7, 9])
        #expect(session.deliver(keyed("ticker:us", 10, key: "AAPL")) == .write)
    }

    @Test func aChannelWhosePolicyIsDisconnectEndsTheConnection() {
        var session = subscribed(.websocket, "news", "chat:1")
        #expect(session.writabilityLost().first.map { if case .closeSocket = $0 { true } else { false } } == true)
        #expect(session.lifecycle.disconnectReason == .slowConsumer)
        // Without history `catch_up` cannot be served: such a namespace disconnects.
        var live = subscribed(.websocket, "live:1")
        #expect(live.writabilityLost().count == 1)
    }

    @Test func aNotificationNoHistoryKeepsEndsALaggingConnection() {
        var session = subscribed(.websocket, "news")
        _ = session.writabilityLost()
        // A user's notification: never stored, so it cannot be caught up.
        let personal = Delivery(channel: "#user:ada", position: nil, payload: ByteBuffer(string: "{}"))
        #expect(session.deliver(personal) == .closeSocket)
        #expect(session.lifecycle.disconnectReason == .slowConsumer)
        #expect(!session.isOpen)
    }

    @Test func leavingAChannelForgetsWhatItOwed() {
        var session = subscribed(.websocket, "news", "ticker:us")
        _ = session.writabilityLost()
        _ = session.deliver(helpers.delivery("news", 5))
        _ = session.deliver(keyed("ticker:us", 5, key: "AAPL"))
        session.left("news")
        session.left("ticker:us")
        #expect(session.writabilityRegained().isEmpty)
    }

    @Test func theKeptNotificationsAreBounded() {
        var flow = SlowConsumerFlow(maxKept: 2)
        _ = flow.lost(subscriptions: ["t"], policy: { _ in .latest })
        #expect(flow.admit(keyed("t", 1, key: "a"), policy: { _ in .latest }) == .held(.kept(replaced: false)))
        #expect(flow.admit(keyed("t", 2, key: "b"), policy: { _ in .latest }) == .held(.kept(replaced: false)))
        #expect(flow.admit(keyed("t", 3, key: "a"), policy: { _ in .latest }) == .held(.kept(replaced: true)))
        #expect(flow.admit(keyed("t", 4, key: "c"), policy: { _ in .latest }) == .disconnect)
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// The subscribe sequence that WebSocket and SSE connections share, without sockets: what goes
/// out live while a subscribe is in flight, the merge, the floor after it, and what each
/// transport does when the broker cannot confirm.
@Suite struct SubscriptionFlowTests {
    func delivery(_ channel: String, _ offset: Int64?, epoch: String = "e1") -> Delivery {
        Delivery(
            channel: channel, position: offset.map { StreamPosition(offset: $0, epoch: epoch) },
            payload: ByteBuffer(string: #"{"n":\#(offset ?? -1)}"#))
    }

    func page(_ channel: String, latest: Int64, retained: ClosedRange<Int64>, after: Int64) -> HistoryPage {
        HistoryPage(
            latest: StreamPosition(offset: latest, epoch: "e1"),
            publications: retained.filter { $0 > after }.map { offset in
                Publication(
                    channel: channel, payload: ByteBuffer(string: #"{"n":\#(offset)}"#),
                    position: StreamPosition(offset: offset, epoch: "e1"))
            },
            oldest: retained.lowerBound)
    }

    func live(_ flow: inout SubscriptionFlow, _ delivery: Delivery) -> Bool { flow.live(delivery) }

    func historyRead(_ flow: inout SubscriptionFlow, _ channel: String, _ page: Result<HistoryPage, BrokerError>, stillSubscribed: Bool) -> Bool {
        flow.historyRead(channel, page, stillSubscribed: stillSubscribed) != nil
    }

    func failed(_ flow: inout SubscriptionFlow, _ channel: String, error: String, stillSubscribed: Bool) -> SubscriptionFlow.Failure {
        flow.confirmationFailed(channel, error: error, stillSubscribed: stillSubscribed)
    }

    @Test(arguments: [true, false])
    func theMergeIsTheSameForEveryTransport(canResubscribe: Bool) throws {
        var flow = SubscriptionFlow(maxReplay: 100, canResubscribe: canResubscribe)
        let query = flow.subscribe("news", since: StreamPosition(offset: 3, epoch: "e1"))
        #expect(query.after == 3 && query.limit == 101)
        #expect(flow.channelInFlight == "news")
        // Live publications of the channel wait for the history; other channels go out.
        #expect(!live(&flow, delivery("news", 6)))
        #expect(!live(&flow, delivery("news", 7)))
        #expect(live(&flow, delivery("sport", 1)))
        let read = flow.historyRead("news", .success(page("news", latest: 6, retained: 1...6, after: 3)), stillSubscribed: true)
        let outcome = try #require(read)
        #expect(outcome.recovery == .init(recovered: true, replayed: 3))
        #expect(outcome.deliveries.map { $0.position?.offset } == [4, 5, 6, 7])
        #expect(flow.channelInFlight == nil)
        // The floor: a late copy of what the replay sent is dropped, the next one passes.
        #expect(!live(&flow, delivery("news", 6)))
        #expect(live(&flow, delivery("news", 8)))
    }

    @Test func aFailedConfirmationIsUndoneOverWebSocketsAndEndsAnSSEStream() {
        var websocket = SubscriptionFlow(maxReplay: 100, canResubscribe: true)
        _ = websocket.subscribe("news", since: nil)
        guard case .undo(let error) = websocket.confirmationFailed("news", error: "redis down", stillSubscribed: true) else {
            Issue.record("a WebSocket keeps its connection and is told")
            return
        }
        #expect(error.code == .unavailable)
        #expect(error.error.contains("redis down"))
        #expect(websocket.channelInFlight == nil)
        // Nothing is held back for the channel any more.
        #expect(live(&websocket, delivery("news", 1)))

        var sse = SubscriptionFlow(maxReplay: 100, canResubscribe: false)
        _ = sse.subscribe("news", since: nil)
        #expect(failed(&sse, "news", error: "redis down", stillSubscribed: true)
            == .end(ProtocolError(.unavailable, "could not subscribe to news: redis down")))

        // The application made the user leave meanwhile: nothing to say either way.
        _ = sse.subscribe("news", since: nil)
        #expect(failed(&sse, "news", error: "redis down", stillSubscribed: false) == SubscriptionFlow.Failure.none)
    }

    @Test func aChannelLeftDuringItsHistoryReadIsNotAnswered() {
        var flow = SubscriptionFlow(maxReplay: 100, canResubscribe: true)
        _ = flow.subscribe("news", since: nil)
        #expect(historyRead(&flow, "news", .success(page("news", latest: 2, retained: 1...2, after: 2)), stillSubscribed: false) == false)
        // Left explicitly while in flight: the buffer is dropped and live goes out again.
        _ = flow.subscribe("news", since: nil)
        #expect(!live(&flow, delivery("news", 3)))
        flow.left("news")
        #expect(flow.channelInFlight == nil)
        #expect(live(&flow, delivery("news", 4)))
        // A page for a subscribe no longer in flight is ignored.
        #expect(historyRead(&flow, "news", .success(page("news", latest: 4, retained: 1...4, after: 4)), stillSubscribed: true) == false)
    }

    @Test func anUnreadableHistoryKeepsTheSubscriptionButPromisesNothing() throws {
        var flow = SubscriptionFlow(maxReplay: 100, canResubscribe: true)
        _ = flow.subscribe("news", since: StreamPosition(offset: 3, epoch: "e1"))
        #expect(!live(&flow, delivery("news", 9)))
        let read = flow.historyRead("news", .failure(.unavailable("down")), stillSubscribed: true)
        let outcome = try #require(read)
        #expect(outcome.recovery == .init(recovered: false, replayed: 0))
        #expect(outcome.position == nil)
        // What arrived meanwhile still goes out, once.
        #expect(outcome.deliveries.map { $0.position?.offset } == [9])
    }

    @Test func aResubscribeReplaysNothingAndBoundsWhatItBuffers() throws {
        var flow = SubscriptionFlow(maxReplay: 100, maxBuffered: 2, canResubscribe: true)
        let query = flow.resubscribe("news")
        #expect(query.after == nil && query.limit == 0)
        for offset in Int64(5)...7 { #expect(!live(&flow, delivery("news", offset))) }
        let read = flow.historyRead("news", .success(page("news", latest: 4, retained: 1...4, after: 4)), stillSubscribed: true)
        let outcome = try #require(read)
        #expect(outcome.recovery == nil)
        // Three arrived, two fit: the merge gave up rather than grow; the offsets tell the rest.
        #expect(outcome.deliveries.isEmpty)
    }
}

import NIOCore
import NIOHTTP1
import Testing

@testable import HeraldServer

/// Request order on one connection with the fast path in front of the router, without sockets.
@Suite struct FastPublishStateMachineTests {
    func head(_ method: HTTPMethod, _ uri: String) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri)
    }

    @Test func routesAreMatchedAsTheRouterMatchesThem() {
        #expect(FastPublishRoute(head(.POST, "/api/notify/news")) == .notify(channel: "news"))
        #expect(FastPublishRoute(head(.POST, "/api/notify/news/?x=1")) == .notify(channel: "news"))
        #expect(FastPublishRoute(head(.POST, "//api//notify/news")) == .notify(channel: "news"))
        #expect(FastPublishRoute(head(.POST, "/api/notify/bad%20name")) == .notify(channel: "bad%20name"))
        #expect(FastPublishRoute(head(.POST, "/api/broadcast")) == .broadcast)
        #expect(FastPublishRoute(head(.GET, "/api/notify/news")) == nil)
        #expect(FastPublishRoute(head(.POST, "/api/notify")) == nil)
        #expect(FastPublishRoute(head(.POST, "/api/notify/a/b")) == nil)
        #expect(FastPublishRoute(head(.POST, "/api/history/news")) == nil)
    }

    @Test func aFastRequestIsCollectedWholeAndWhatFollowsWaitsForItsAnswer() {
        var machine = FastPublishStateMachine(maxBodyBytes: 10)
        let publish = head(.POST, "/api/notify/a")
        #expect(machine.received(.head(publish)) == .none)
        #expect(machine.received(.body(ByteBuffer(string: "{}"))) == .none)
        #expect(machine.received(.end(nil)) == .serve(publish, .notify(channel: "a"), body: ByteBuffer(string: "{}")))
        // A pipelined request for the router waits, and reading stops.
        let health = head(.GET, "/health")
        #expect(machine.received(.head(health)) == .none)
        #expect(machine.received(.end(nil)) == .none)
        #expect(machine.holdsReads)
        #expect(machine.served() == [.forward(.head(health)), .forward(.end(nil))])
        #expect(!machine.holdsReads)
        // Behind the router's request, a fast one waits for the router's answer.
        #expect(machine.received(.head(publish)) == .none)
        #expect(machine.received(.end(nil)) == .none)
        #expect(machine.routerResponded() == [.serve(publish, .notify(channel: "a"), body: ByteBuffer())])
    }

    @Test func anOversizedBodyIsDroppedAndReportedAsMissing() {
        var machine = FastPublishStateMachine(maxBodyBytes: 4)
        let publish = head(.POST, "/api/broadcast")
        _ = machine.received(.head(publish))
        _ = machine.received(.body(ByteBuffer(string: "{\"a\"")))
        _ = machine.received(.body(ByteBuffer(string: ":1}")))
        #expect(machine.received(.end(nil)) == .serve(publish, .broadcast, body: nil))
    }

    @Test func aRouterThatAnswersBeforeTheRequestEndsDoesNotStallTheConnection() {
        var machine = FastPublishStateMachine(maxBodyBytes: 10)
        let upload = head(.POST, "/api/history/a")
        #expect(machine.received(.head(upload)) == .forward(.head(upload)))
        #expect(machine.routerResponded().isEmpty)
        #expect(machine.received(.end(nil)) == .forward(.end(nil)))
        // The connection is idle again: the next request is served at once.
        let publish = head(.POST, "/api/notify/b")
        #expect(machine.received(.head(publish)) == .none)
        #expect(machine.received(.end(nil)) == .serve(publish, .notify(channel: "b"), body: ByteBuffer()))
    }
}

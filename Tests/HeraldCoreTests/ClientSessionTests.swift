import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@Suite struct ClientSessionTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func session(_ limits: SessionLimits = SessionLimits()) -> ClientSession {
        ClientSession(clientID: "c1", limits: limits, now: start)
    }

    func receive(_ session: inout ClientSession, _ text: String, at offset: TimeAmount = .zero) -> ClientSession.Action {
        session.textReceived(Array(text.utf8), now: start + offset, wallClockMillis: 42)
    }

    func errorCode(_ action: ClientSession.Action) -> ErrorCode? {
        if case .reply(.error(let error)) = action { return error.code }
        return nil
    }

    @Test func subscribeIsIdempotent() {
        var s = session()
        #expect(receive(&s, #"{"type":"subscribe","channel":"news"}"#) == .subscribe("news", since: nil))
        #expect(receive(&s, #"{"type":"subscribe","channel":"news"}"#) == .resubscribe("news"))
        #expect(s.subscriptions == ["news"])
    }

    @Test func unsubscribeFromUnknownChannelIsAnError() {
        var s = session()
        #expect(errorCode(receive(&s, #"{"type":"unsubscribe","channel":"news"}"#)) == .notSubscribed)
        _ = receive(&s, #"{"type":"subscribe","channel":"news"}"#)
        #expect(receive(&s, #"{"type":"unsubscribe","channel":"news"}"#) == .unsubscribe("news"))
        #expect(s.subscriptions.isEmpty)
    }

    @Test func invalidChannelNames() {
        var s = session()
        #expect(errorCode(receive(&s, #"{"type":"subscribe","channel":"a b"}"#)) == .invalidChannel)
        #expect(errorCode(receive(&s, #"{"type":"subscribe","channel":""}"#)) == .invalidChannel)
        #expect(s.subscriptions.isEmpty)
    }

    @Test func subscriptionLimit() {
        var limits = SessionLimits()
        limits.maxSubscriptions = 2
        var s = session(limits)
        #expect(receive(&s, #"{"type":"subscribe","channel":"a"}"#) == .subscribe("a", since: nil))
        #expect(receive(&s, #"{"type":"subscribe","channel":"b"}"#) == .subscribe("b", since: nil))
        #expect(errorCode(receive(&s, #"{"type":"subscribe","channel":"c"}"#)) == .tooManySubscriptions)
        // Re-subscribing to a held channel is still fine at the limit.
        #expect(receive(&s, #"{"type":"subscribe","channel":"a"}"#) == .resubscribe("a"))
    }

    @Test func names() {
        var limits = SessionLimits()
        limits.maxNameLength = 5
        var s = session(limits)
        #expect(receive(&s, #"{"type":"set_name","name":"Alice"}"#) == .reply(.nameSet(name: "Alice")))
        #expect(s.name == "Alice")
        #expect(errorCode(receive(&s, #"{"type":"set_name","name":"Alice!"}"#)) == .nameTooLong)
        #expect(errorCode(receive(&s, #"{"type":"set_name","name":""}"#)) == .invalidField)
        #expect(errorCode(receive(&s, #"{"type":"set_name","name":"a\u0007"}"#)) == .invalidField)
        #expect(s.name == "Alice")
    }

    @Test func listPingAndPong() {
        var s = session()
        _ = receive(&s, #"{"type":"subscribe","channel":"b"}"#)
        _ = receive(&s, #"{"type":"subscribe","channel":"a"}"#)
        #expect(receive(&s, #"{"type":"list_subscriptions"}"#) == .reply(.subscriptions(channels: ["a", "b"])))
        #expect(receive(&s, #"{"type":"ping"}"#) == .reply(.pong(timestamp: 42)))
        #expect(receive(&s, #"{"type":"pong"}"#) == .none)
    }

    @Test func messagesNeedASubscription() {
        var s = session()
        #expect(errorCode(receive(&s, #"{"type":"message","channel":"chat","text":"hi"}"#)) == .notSubscribed)
        _ = receive(&s, #"{"type":"subscribe","channel":"chat"}"#)
        #expect(receive(&s, #"{"type":"message","channel":"chat","text":"hi"}"#) == .publish(channel: "chat", text: "hi"))
        #expect(errorCode(receive(&s, #"{"type":"message","channel":"chat","text":""}"#)) == .invalidField)
    }

    @Test func rateLimitErrorsThenCloses1008() {
        var limits = SessionLimits()
        limits.rateLimit = 1
        limits.rateBurst = 3
        limits.rateLimitStrikes = 3
        var s = session(limits)
        for _ in 0..<3 { #expect(receive(&s, #"{"type":"ping"}"#) == .reply(.pong(timestamp: 42))) }
        #expect(errorCode(receive(&s, #"{"type":"ping"}"#)) == .rateLimited)
        #expect(errorCode(receive(&s, #"{"type":"ping"}"#)) == .rateLimited)
        guard case .close(.policyViolation, _, let error) = receive(&s, #"{"type":"ping"}"#) else {
            Issue.record("expected a 1008 close on the third strike")
            return
        }
        #expect(error.code == .rateLimited)
    }

    @Test func rateLimitRefillsOverTimeAndResetsStrikes() {
        var limits = SessionLimits()
        limits.rateLimit = 10
        limits.rateBurst = 1
        limits.rateLimitStrikes = 2
        var s = session(limits)
        #expect(receive(&s, #"{"type":"ping"}"#) == .reply(.pong(timestamp: 42)))
        #expect(errorCode(receive(&s, #"{"type":"ping"}"#)) == .rateLimited)
        // 100 ms later one token is back, and the strike count starts over.
        #expect(receive(&s, #"{"type":"ping"}"#, at: .milliseconds(100)) == .reply(.pong(timestamp: 42)))
        #expect(errorCode(receive(&s, #"{"type":"ping"}"#, at: .milliseconds(100))) == .rateLimited)
    }

    @Test func malformedInputKeepsTheSessionUsable() {
        var s = session()
        #expect(errorCode(receive(&s, "{")) == .invalidJSON)
        #expect(errorCode(receive(&s, #"{"type":"nope"}"#)) == .unknownType)
        #expect(receive(&s, #"{"type":"subscribe","channel":"ok"}"#) == .subscribe("ok", since: nil))
    }
}

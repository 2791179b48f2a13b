import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@Suite struct SessionAuthTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func receive(_ session: inout ClientSession, _ text: String) -> ClientSession.Action {
        session.textReceived(Array(text.utf8), now: start, wallClockMillis: 42)
    }

    @Test func requiredTokenMustComeFirst() {
        var s = ClientSession(clientID: "c", limits: .init(), access: .anonymous, requiresToken: true, now: start)
        guard case .close(.unauthorized, _, let error) = receive(&s, #"{"type":"ping"}"#) else {
            Issue.record("ping before auth was not refused")
            return
        }
        #expect(error.code == .unauthorized)
        var t = ClientSession(clientID: "c", limits: .init(), access: .anonymous, requiresToken: true, now: start)
        #expect(receive(&t, #"{"type":"auth","token":"abc"}"#) == .authenticate(token: "abc"))
        t.authenticated(ClientIdentity(userID: "u", grant: .none, expiresAtMillis: 0))
        #expect(!t.awaitsToken)
        #expect(receive(&t, #"{"type":"subscribe","channel":"news"}"#) == .subscribe("news", since: nil))
    }

    @Test func authOnlyAsFirstMessageAndOnlyWhereTokensAreVerified() {
        var late = ClientSession(clientID: "c", limits: .init(), access: .anonymous, now: start)
        _ = receive(&late, #"{"type":"ping"}"#)
        guard case .reply(.error(let error)) = receive(&late, #"{"type":"auth","token":"abc"}"#) else {
            Issue.record("late auth accepted")
            return
        }
        #expect(error.code == .invalidMessage)
        var open = ClientSession(clientID: "c", limits: .init(), access: .open, now: start)
        guard case .reply(.error(let refused)) = receive(&open, #"{"type":"auth","token":"abc"}"#) else {
            Issue.record("auth accepted by an open node")
            return
        }
        #expect(refused.code == .invalidMessage)
        var empty = ClientSession(clientID: "c", limits: .init(), access: .anonymous, now: start)
        guard case .reply(.error(let missing)) = receive(&empty, #"{"type":"auth","token":""}"#) else {
            Issue.record("empty token accepted")
            return
        }
        #expect(missing.code == .invalidField)
    }

    @Test func forbiddenChannelsAreNotRecorded() {
        var s = ClientSession(clientID: "c", limits: .init(), access: .anonymous, now: start)
        guard case .reply(.error(let error)) = receive(&s, #"{"type":"subscribe","channel":"private:x"}"#) else {
            Issue.record("private channel accepted")
            return
        }
        #expect(error.code == .forbidden)
        #expect(s.subscriptions.isEmpty)
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@Suite struct ChannelGrantTests {
    @Test func exactNamesAndPrefixes() throws {
        let grant = try ChannelGrant(["news", "orders:*", "private:team-a:*"])
        #expect(grant.allows("news"))
        #expect(!grant.allows("news2"))
        #expect(grant.allows("orders:1"))
        #expect(!grant.allows("orders"))
        #expect(grant.allows("private:team-a:alerts"))
        #expect(!grant.allows("private:team-b:alerts"))
        #expect(try ChannelGrant(["*"]).allows("private:anything"))
        #expect(!ChannelGrant.none.allows("news"))
    }

    @Test func invalidClaimsAreRefused() {
        #expect(throws: ProtocolError.self) { try ChannelGrant(["bad name"]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant(["a*b*"]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant([""]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant(Array(repeating: "x", count: ChannelGrant.maxEntries + 1)) }
    }
}

@Suite struct ChannelAccessTests {
    let identity = ClientIdentity(userID: "alice", grant: try! ChannelGrant(["private:ops", "chat:*"]), expiresAtMillis: 0)

    @Test func rulesTable() {
        #expect(ChannelAccess.open.maySubscribe("news") && ChannelAccess.open.mayPost("news"))
        #expect(!ChannelAccess.open.maySubscribe("private:ops") && !ChannelAccess.open.mayPost("private:ops"))
        #expect(ChannelAccess.anonymous.maySubscribe("news") && !ChannelAccess.anonymous.mayPost("news"))
        #expect(!ChannelAccess.anonymous.maySubscribe("private:ops"))
        let token = ChannelAccess.token(identity)
        #expect(token.maySubscribe("news") && !token.mayPost("news"))
        #expect(token.maySubscribe("private:ops") && token.mayPost("private:ops"))
        #expect(token.mayPost("chat:lobby"))
        #expect(!token.maySubscribe("private:hr"))
        #expect(token.userID == "alice")
    }
}

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
        #expect(receive(&t, #"{"type":"subscribe","channel":"news"}"#) == .subscribe("news"))
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

@Suite struct AdmissionTests {
    @Test func trustedProxiesMatchAddressesAndRanges() throws {
        let trusted = try TrustedProxies(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
        #expect(trusted.contains("10.42.0.3"))
        #expect(!trusted.contains("11.0.0.1"))
        #expect(trusted.contains("192.168.1.7"))
        #expect(!trusted.contains("192.168.1.8"))
        #expect(trusted.contains("fd12::1"))
        #expect(!trusted.contains("fe80::1"))
        #expect(!trusted.contains("not-an-ip"))
        #expect(throws: TrustedProxies.InvalidEntry.self) { try TrustedProxies(["10.0.0.0/33"]) }
        #expect(throws: TrustedProxies.InvalidEntry.self) { try TrustedProxies(["nginx"]) }
    }

    @Test func forwardedForIsUsedOnlyBehindTrustedProxies() throws {
        #expect(ClientAddress.resolve(peer: "10.0.0.9", forwardedFor: ["1.2.3.4"], trustedProxies: .none) == "10.0.0.9")
        #expect(ClientAddress.resolve(peer: "10.0.0.9", forwardedFor: ["1.2.3.4"], trustedProxies: try TrustedProxies(["10.0.0.9"])) == "1.2.3.4")
        // A client-supplied entry left of the real one is ignored.
        #expect(
            ClientAddress.resolve(peer: "10.0.0.9", forwardedFor: ["6.6.6.6, 1.2.3.4"], trustedProxies: try TrustedProxies(["10.0.0.9"]))
                == "1.2.3.4")
        // Chained trusted proxies are skipped.
        #expect(
            ClientAddress.resolve(
                peer: "10.0.0.9", forwardedFor: ["1.2.3.4", "10.0.0.8"], trustedProxies: try TrustedProxies(["10.0.0.0/24"]))
                == "1.2.3.4")
        #expect(ClientAddress.resolve(peer: "10.0.0.9", forwardedFor: [], trustedProxies: try TrustedProxies(["10.0.0.9"])) == "10.0.0.9")
    }

    @Test func gateLimitsPerAddressAndRate() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let gate = ConnectionGate(maxPerAddress: 2, rate: 1, burst: 3, now: start)
        #expect(gate.admit("a", now: start) == .admitted)
        #expect(gate.admit("a", now: start) == .admitted)
        #expect(gate.admit("a", now: start) == .tooManyFromAddress(limit: 2))
        #expect(gate.admit("b", now: start) == .admitted)
        #expect(gate.admit("c", now: start) == .tooFast)
        #expect(gate.admit("c", now: start + .seconds(1)) == .admitted)
        gate.release("a")
        gate.release("a")
        gate.release("a")
        #expect(gate.openConnections(from: "a") == 0)
    }
}

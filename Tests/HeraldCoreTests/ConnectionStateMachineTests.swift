import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// The connection lifecycle without sockets: time is a parameter, so deadlines test instantly.
@Suite struct ConnectionStateMachineTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let wall: Int64 = 1_800_000_000_000
    let rules = ConnectionStateMachine.Configuration(
        pingInterval: .seconds(30), pingTimeout: .seconds(60), authTimeout: .seconds(10), closeTimeout: .seconds(2))

    func machine(_ rules: ConnectionStateMachine.Configuration? = nil) -> ConnectionStateMachine {
        ConnectionStateMachine(configuration: rules ?? self.rules, now: start)
    }

    func identity(expiresIn millis: Int64) -> ClientIdentity {
        ClientIdentity(userID: "ada", grant: .none, expiresAtMillis: wall + millis)
    }

    @Test func aClientThatOwesATokenIsClosedWith4001AtTheAuthDeadline() {
        var machine = machine()
        #expect(machine.opened(handshake: nil, awaitsToken: true, now: start, wallClockMillis: wall) == .none)
        #expect(machine.nextDeadline == start + .seconds(10))
        #expect(machine.deadlineReached(now: start + .milliseconds(9999)) == .none)
        guard case .close(.unauthorized, "unauthorized", let error?) = machine.deadlineReached(now: start + .seconds(10)) else {
            Issue.record("no 4001 at the deadline")
            return
        }
        #expect(error.code == .unauthorized)
        #expect(!machine.isOpen)
        // Our close frame went out; the TCP connection closes at the close deadline.
        #expect(machine.nextDeadline == start + .seconds(12))
        #expect(machine.deadlineReached(now: start + .seconds(12)) == .closeSocket)
        #expect(machine.nextDeadline == nil)
    }

    @Test func anOpenNodeSetsNoAuthDeadline() {
        var machine = machine()
        #expect(machine.opened(handshake: nil, awaitsToken: false, now: start, wallClockMillis: wall) == .none)
        #expect(machine.nextDeadline == nil)
    }

    @Test func aRefusedHandshakeTokenClosesAtOnceWithItsCode() {
        var expired = machine()
        let expiredError = ProtocolError(.tokenExpired, "expired")
        #expect(
            expired.opened(handshake: .failure(expiredError), awaitsToken: false, now: start, wallClockMillis: wall)
                == .close(.tokenExpired, reason: "token_expired", error: expiredError))
        var forged = machine()
        let forgedError = ProtocolError(.invalidToken, "bad signature")
        #expect(
            forged.opened(handshake: .failure(forgedError), awaitsToken: false, now: start, wallClockMillis: wall)
                == .close(.unauthorized, reason: "invalid_token", error: forgedError))
    }

    /// WebSockets run the machine with a heartbeat; SSE streams (which have their own
    /// keep-alive comments) without one — the token's expiry is the same rule for both.
    @Test(arguments: [TimeAmount.seconds(30), nil])
    func theConnectionClosesWith4002WhenItsTokenExpires(pingInterval: TimeAmount?) {
        var rules = rules
        rules.pingInterval = pingInterval
        var machine = machine(rules)
        _ = machine.opened(handshake: .success(identity(expiresIn: 5000)), awaitsToken: false, now: start, wallClockMillis: wall)
        #expect(machine.nextDeadline == start + .seconds(5))
        guard case .close(.tokenExpired, _, let error?) = machine.deadlineReached(now: start + .seconds(5)) else {
            Issue.record("no 4002 at expiry")
            return
        }
        #expect(error.code == .tokenExpired)
        #expect(machine.disconnectReason == .tokenExpired)
        #expect(!machine.isOpen)
        // Nothing else is asked of a connection that is ending: no heartbeat, no second close.
        #expect(machine.heartbeat(now: start + .seconds(100), wallClockMillis: wall) == .none)
    }

    @Test func farFutureAndPastExpiriesAreClamped() {
        var future = machine()
        _ = future.opened(
            handshake: .success(ClientIdentity(userID: "a", grant: .none, expiresAtMillis: .max)),
            awaitsToken: false, now: start, wallClockMillis: wall)
        #expect(future.nextDeadline == start + ConnectionStateMachine.longestTokenLifetime)
        var past = machine()
        _ = past.opened(handshake: .success(identity(expiresIn: -60_000)), awaitsToken: false, now: start, wallClockMillis: wall)
        #expect(past.nextDeadline == start)
    }

    @Test func heartbeatPingsAfterTheIntervalAndClosesAfterTheTimeout() {
        var machine = machine()
        _ = machine.opened(handshake: nil, awaitsToken: false, now: start, wallClockMillis: wall)
        #expect(machine.heartbeat(now: start + .seconds(29), wallClockMillis: wall) == .none)
        #expect(machine.heartbeat(now: start + .seconds(30), wallClockMillis: wall + 30_000) == .send(.ping(timestamp: wall + 30_000)))
        #expect(machine.heartbeat(now: start + .seconds(31), wallClockMillis: wall) == .none)
        // A frame proves the peer alive: the timeout counts from it.
        #expect(machine.frameReceived(isClose: false, now: start + .seconds(50)) == .process)
        #expect(machine.heartbeat(now: start + .seconds(109), wallClockMillis: wall) != .close(.normal, reason: "timeout", error: nil))
        #expect(machine.heartbeat(now: start + .seconds(110), wallClockMillis: wall) == .close(.normal, reason: "timeout", error: nil))
        #expect(machine.heartbeat(now: start + .seconds(200), wallClockMillis: wall) == .none)
    }

    @Test func theEchoEndpointHasNoHeartbeat() {
        var rules = self.rules
        rules.pingInterval = nil
        var machine = machine(rules)
        #expect(machine.heartbeat(now: start + .seconds(3600), wallClockMillis: wall) == .none)
    }

    @Test func messagesBehindAnAuthWaitInOrderAndAFloodCloses() {
        var machine = machine()
        _ = machine.opened(handshake: nil, awaitsToken: true, now: start, wallClockMillis: wall)
        machine.operationStarted(.authentication)
        let messages = (0..<64).map { ByteBuffer(string: "m\($0)") }
        for message in messages { #expect(machine.textReceived(message, now: start) == .held) }
        #expect(
            machine.textReceived(ByteBuffer(string: "one too many"), now: start)
                == .perform(.close(.policyViolation, reason: "too many messages before auth completed", error: nil)))
        #expect(machine.textReceived(ByteBuffer(string: "after the close"), now: start) == .perform(.none))
    }

    @Test func anAcceptedTokenReleasesTheHeldMessagesAndSwapsTheDeadline() {
        var machine = machine()
        _ = machine.opened(handshake: nil, awaitsToken: true, now: start, wallClockMillis: wall)
        machine.operationStarted(.authentication)
        #expect(machine.isBusy)
        _ = machine.textReceived(ByteBuffer(string: "first"), now: start)
        _ = machine.textReceived(ByteBuffer(string: "second"), now: start)
        let identity = identity(expiresIn: 60_000)
        let outcome = machine.authenticationFinished(.success(identity), now: start + .seconds(1), wallClockMillis: wall + 1000)
        #expect(outcome == .accepted(identity, held: [ByteBuffer(string: "first"), ByteBuffer(string: "second")]))
        #expect(!machine.isBusy)
        // The auth deadline is gone; the token's expiry replaces it.
        #expect(machine.nextDeadline == start + .seconds(60))
        #expect(machine.textReceived(ByteBuffer(string: "now"), now: start) == .handle(ByteBuffer(string: "now")))
    }

    @Test func aRefusedAuthTokenCloses() {
        var machine = machine()
        _ = machine.opened(handshake: nil, awaitsToken: true, now: start, wallClockMillis: wall)
        machine.operationStarted(.authentication)
        let error = ProtocolError(.invalidToken, "forged")
        #expect(
            machine.authenticationFinished(.failure(error), now: start, wallClockMillis: wall)
                == .refused(.close(.unauthorized, reason: "invalid_token", error: error)))
        // A verdict that comes after the connection closed changes nothing.
        var closed = self.machine()
        closed.operationStarted(.authentication)
        _ = closed.channelClosed()
        #expect(closed.authenticationFinished(.success(identity(expiresIn: 1)), now: start, wallClockMillis: wall) == .ignore)
    }

    @Test func otherOperationsHoldMessagesUntilTheyFinish() {
        var rules = self.rules
        rules.maxHeld = 3
        var machine = machine(rules)
        machine.operationStarted(.other)
        for index in 0..<3 { #expect(machine.textReceived(ByteBuffer(string: "\(index)"), now: start) == .held) }
        #expect(machine.textReceived(ByteBuffer(string: "x"), now: start) == .perform(.close(.policyViolation, reason: "too many messages in flight", error: nil)))
        var fresh = self.machine(rules)
        fresh.operationStarted(.other)
        _ = fresh.textReceived(ByteBuffer(string: "a"), now: start)
        #expect(fresh.operationFinished() == [ByteBuffer(string: "a")])
        #expect(fresh.operationFinished() == [])
    }

    @Test func theClosingHandshake() {
        var machine = machine()
        #expect(machine.close(.protocolError, reason: "bad", error: nil, now: start) == .close(.protocolError, reason: "bad", error: nil))
        // Closing twice sends nothing more.
        #expect(machine.close(.normal, reason: "again", error: nil, now: start) == .none)
        #expect(machine.frameReceived(isClose: false, now: start) == .ignore)
        #expect(machine.frameReceived(isClose: true, now: start) == .closeSocket)

        var peer = self.machine()
        #expect(peer.peerClosed(code: 1000) == .answerClose(code: 1000))
        #expect(!peer.isOpen)
        #expect(peer.peerClosed(code: 1000) == .none)
        #expect(peer.heartbeat(now: start + .seconds(100), wallClockMillis: wall) == .none)
    }

    @Test func aSlowConsumerIsDroppedOnceAndShutdownSays1001() {
        var slow = machine()
        #expect(slow.writabilityLost() == .closeSocket)
        #expect(slow.writabilityLost() == .none)
        var leaving = machine()
        #expect(leaving.shutdown(now: start) == .close(.goingAway, reason: "server shutdown", error: nil))
    }

    @Test func theConnectionLeavesTheHubExactlyOnce() {
        var machine = machine()
        let first = machine.channelClosed()
        let second = machine.channelClosed()
        #expect(first && !second)
        #expect(machine.nextDeadline == nil)
    }

    @Test func theFirstCauseOfTheEndIsTheDisconnectReason() {
        func ended(_ steps: (inout ConnectionStateMachine) -> Void) -> DisconnectReason? {
            var machine = machine()
            _ = machine.opened(handshake: nil, awaitsToken: false, now: start, wallClockMillis: wall)
            steps(&machine)
            _ = machine.channelClosed()
            return machine.disconnectReason
        }
        let cases: [(DisconnectReason, (inout ConnectionStateMachine) -> Void)] = [
            (.normal, { _ = $0.peerClosed(code: 1000) }),
            (.connectionLost, { _ in }),
            (.slowConsumer, { _ = $0.writabilityLost() }),
            (.heartbeatTimeout, { [start, wall] in _ = $0.heartbeat(now: start + .seconds(60), wallClockMillis: wall) }),
            (.shutdown, { [start] in _ = $0.shutdown(now: start) }),
            (.rateLimit, { [start] in _ = $0.close(.policyViolation, reason: "rate limit", error: nil, now: start) }),
            (.protocolError, { [start] in _ = $0.close(.messageTooBig, reason: "big", error: nil, now: start) }),
            (.serverDisconnect, { [start] in _ = $0.close(.disconnectedByServer, reason: "bye", error: nil, now: start) }),
            // The client answering our close frame does not change why it ended.
            (.heartbeatTimeout, { [start, wall] in
                _ = $0.heartbeat(now: start + .seconds(60), wallClockMillis: wall)
                _ = $0.peerClosed(code: 1000)
            }),
        ]
        for (expected, steps) in cases {
            let reason = ended(steps)
            #expect(reason == expected)
        }
        var expiring = machine()
        _ = expiring.opened(handshake: .success(identity(expiresIn: 1000)), awaitsToken: false, now: start, wallClockMillis: wall)
        _ = expiring.deadlineReached(now: start + .seconds(1))
        #expect(expiring.disconnectReason == .tokenExpired)
        var anonymous = machine()
        _ = anonymous.opened(handshake: nil, awaitsToken: true, now: start, wallClockMillis: wall)
        _ = anonymous.deadlineReached(now: start + .seconds(10))
        #expect(anonymous.disconnectReason == .unauthorized)
    }

    @Test func aRefreshableExpiryAsksTheBackendAndLivesOnUntilTheNewOne() {
        var machine = machine()
        _ = machine.opened(
            handshake: .success(identity(expiresIn: 5000)), awaitsToken: false, refreshable: true, now: start, wallClockMillis: wall)
        #expect(machine.deadlineReached(now: start + .seconds(5)) == .refreshExpiry)
        #expect(machine.isOpen)
        // No deadline while the backend is asked: the timer does not fire the question again.
        #expect(machine.nextDeadline == nil)
        let later = start + .seconds(6)
        #expect(machine.expiryRefreshed(expiresAtMillis: wall + 66_000, now: later, wallClockMillis: wall + 6000) == .none)
        #expect(machine.nextDeadline == later + .seconds(60))
        #expect(machine.deadlineReached(now: later + .seconds(60)) == .refreshExpiry)
        // An extension to a time already past ends the connection with 4002.
        guard case .close(.tokenExpired, _, _) = machine.expiryRefreshed(
            expiresAtMillis: wall, now: later + .seconds(61), wallClockMillis: wall + 67_000)
        else {
            Issue.record("a past expiry was taken")
            return
        }
        #expect(!machine.isOpen)
    }
}

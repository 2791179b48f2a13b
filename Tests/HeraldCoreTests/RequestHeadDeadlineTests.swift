import HeraldCore
import NIOCore
import Testing

/// The deadlines of an HTTP connection that is not yet useful, without sockets.
@Suite struct RequestHeadDeadlineTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func aNewConnectionMustSendItsHeadWithinTheHeaderTimeout() {
        let machine = RequestHeadDeadline(headerTimeout: .seconds(10), idleTimeout: .seconds(60), now: start)
        #expect(machine.isPending)
        #expect(machine.deadline == start + .seconds(10))
        #expect(!machine.deadlineReached(now: start + .seconds(9)))
        #expect(machine.deadlineReached(now: start + .seconds(10)))
    }

    @Test func servingHasNoDeadlineAndKeepAliveGetsTheIdleTimeout() {
        var machine = RequestHeadDeadline(headerTimeout: .seconds(10), idleTimeout: .seconds(60), now: start)
        let first = machine.headReceived()
        #expect(first)
        #expect(!machine.isPending)
        // A long answer (an SSE stream) is never cut by these deadlines.
        #expect(machine.deadline == nil)
        #expect(!machine.deadlineReached(now: start + .hours(1)))
        machine.responseEnded(now: start + .seconds(20))
        #expect(machine.deadline == start + .seconds(80))
        // The next head is not the first: the pending place was given back already.
        let second = machine.headReceived()
        #expect(!second)
        #expect(machine.deadline == nil)
    }

    @Test func pipelinedRequestsKeepTheConnectionServingUntilTheLastResponse() {
        var machine = RequestHeadDeadline(headerTimeout: .seconds(10), idleTimeout: .seconds(60), now: start)
        _ = machine.headReceived()
        _ = machine.headReceived()
        machine.responseEnded(now: start + .seconds(1))
        #expect(machine.deadline == nil)
        machine.responseEnded(now: start + .seconds(2))
        #expect(machine.deadline == start + .seconds(62))
        // A stray response end (a 101 already counted) changes nothing.
        machine.responseEnded(now: start + .seconds(3))
        #expect(machine.deadline == start + .seconds(62))
    }

    @Test func pendingConnectionsAreBoundedPerAddressExceptForTrustedProxies() throws {
        let pending = PendingConnections(maxPerAddress: 2, trustedProxies: try TrustedProxies(["10.0.0.1"]))
        #expect(pending.admit("1.2.3.4"))
        #expect(pending.admit("1.2.3.4"))
        #expect(!pending.admit("1.2.3.4"))
        #expect(pending.admit("5.6.7.8"))
        pending.release("1.2.3.4")
        #expect(pending.count(from: "1.2.3.4") == 1)
        #expect(pending.admit("1.2.3.4"))
        for _ in 0..<10 { #expect(pending.admit("10.0.0.1")) }
        #expect(pending.count(from: "10.0.0.1") == 0)
        // Released more often than admitted: never below zero, the entry leaves.
        for _ in 0..<5 { pending.release("5.6.7.8") }
        #expect(pending.count(from: "5.6.7.8") == 0)
        let unlimited = PendingConnections(maxPerAddress: 0, trustedProxies: .none)
        for _ in 0..<100 { #expect(unlimited.admit("1.2.3.4")) }
    }
}

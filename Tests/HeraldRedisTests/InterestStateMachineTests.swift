@testable import HeraldRedis
import Testing

/// Redis interest without Redis: what is sent, and what a reply settles.
@Suite struct InterestStateMachineTests {
    typealias Machine = InterestStateMachine

    func connected() -> Machine {
        var machine = Machine()
        machine.connected()
        return machine
    }

    @Test func aChannelIsSubscribedOnlyOnceRedisConfirms() {
        var machine = connected()
        machine.interestChanged("news", wanted: true)
        #expect(machine.readiness(of: "news") == .pending)
        #expect(machine.flush() == .init(subscribe: ["news"]))
        // In flight: a second flush sends nothing again.
        #expect(machine.flush().isEmpty)
        #expect(machine.readiness(of: "news") == .pending)
        #expect(machine.subscribeSucceeded(["news"]) == .init(confirmed: ["news"]))
        #expect(machine.readiness(of: "news") == .ready)
        #expect(machine.confirmedChannels == ["news"])
    }

    @Test func interestDroppedWhileSubscribingIsUnsubscribedWhenTheReplyComes() {
        var machine = connected()
        machine.interestChanged("brief", wanted: true)
        _ = machine.flush()
        machine.interestChanged("brief", wanted: false)
        #expect(machine.flush().isEmpty, "nothing new while the SUBSCRIBE is in flight")
        let settled = machine.subscribeSucceeded(["brief"])
        #expect(settled.confirmed.isEmpty)
        #expect(settled.commands == .init(unsubscribe: ["brief"]))
        #expect(machine.unsubscribeSucceeded(["brief"]).commands.isEmpty)
        #expect(machine.entries.isEmpty)
    }

    @Test func interestRegainedWhileUnsubscribingIsSubscribedAgain() {
        var machine = connected()
        machine.interestChanged("flip", wanted: true)
        _ = machine.flush()
        _ = machine.subscribeSucceeded(["flip"])
        machine.interestChanged("flip", wanted: false)
        #expect(machine.flush() == .init(unsubscribe: ["flip"]))
        machine.interestChanged("flip", wanted: true)
        #expect(machine.flush().isEmpty)
        #expect(machine.readiness(of: "flip") == .pending)
        #expect(machine.unsubscribeSucceeded(["flip"]).commands == .init(subscribe: ["flip"]))
        #expect(machine.subscribeSucceeded(["flip"]).confirmed == ["flip"])
    }

    @Test func aRefusedSubscribeFailsItsWaitersAndIsRetried() {
        var machine = connected()
        machine.interestChanged("private:x", wanted: true)
        _ = machine.flush()
        #expect(machine.subscribeFailed(["private:x"]) == .init(failed: ["private:x"]))
        #expect(machine.confirmedChannels.isEmpty)
        #expect(machine.flush().isEmpty, "no retry before the backoff says so")
        machine.retry(["private:x"])
        #expect(machine.flush() == .init(subscribe: ["private:x"]))
    }

    @Test func aRefusedSubscribeOfAnUnwantedChannelIsForgotten() {
        var machine = connected()
        machine.interestChanged("gone", wanted: true)
        _ = machine.flush()
        machine.interestChanged("gone", wanted: false)
        #expect(machine.subscribeFailed(["gone"]).failed.isEmpty)
        #expect(machine.entries.isEmpty)
    }

    @Test func aFailedUnsubscribeLeavesTheChannelSubscribed() {
        var machine = connected()
        machine.interestChanged("sticky", wanted: true)
        _ = machine.flush()
        _ = machine.subscribeSucceeded(["sticky"])
        machine.interestChanged("sticky", wanted: false)
        _ = machine.flush()
        machine.unsubscribeFailed(["sticky"])
        #expect(machine.confirmedChannels == ["sticky"])
        machine.retry(["sticky"])
        #expect(machine.flush() == .init(unsubscribe: ["sticky"]))
    }

    @Test func aLostConnectionUnconfirmsEverythingAndAReconnectResubscribesWhatIsWanted() {
        var machine = connected()
        for channel in ["a", "b", "c"] { machine.interestChanged(channel, wanted: true) }
        _ = machine.flush()
        _ = machine.subscribeSucceeded(["a", "b"])
        machine.interestChanged("b", wanted: false)
        // "c" was still waiting for its confirmation: its waiters are told the link is gone.
        #expect(machine.disconnected() == ["c"])
        #expect(machine.readiness(of: "a") == .disconnected, "wanted still: confirmed again once the link is back")
        #expect(machine.flush().isEmpty, "nothing to send without a connection")
        machine.interestChanged("d", wanted: true)
        machine.connected()
        #expect(Set(machine.flush().subscribe) == ["a", "c", "d"])
        #expect(machine.readiness(of: "b") == .unavailable)
    }

    @Test func repliesForCommandsOfAnotherStateAreIgnored() {
        var machine = connected()
        machine.interestChanged("x", wanted: true)
        let stray = machine.subscribeSucceeded(["x"])
        #expect(stray.confirmed.isEmpty, "no SUBSCRIBE was sent")
        // Any reply lets the machine send what is due.
        #expect(stray.commands == .init(subscribe: ["x"]))
        #expect(machine.unsubscribeSucceeded(["never"]) == .init())
        #expect(machine.readiness(of: "x") == .pending)
    }
}

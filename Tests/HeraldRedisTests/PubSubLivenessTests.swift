@testable import HeraldRedis
import NIOCore
import Testing

@Suite struct PubSubLivenessTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    func at(_ milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }

    @Test func aBusyLinkIsNeverProbed() {
        var liveness = PubSubLiveness(interval: .milliseconds(100))
        for now in stride(from: Int64(50), to: 1000, by: 50) {
            #expect(liveness.check(lastHeard: at(now - 20), now: at(now)) == .wait)
        }
    }

    @Test func aQuietLinkIsProbedAndKeptWhenTheProbeComesBack() {
        var liveness = PubSubLiveness(interval: .milliseconds(100))
        #expect(liveness.check(lastHeard: at(0), now: at(50)) == .wait)
        #expect(liveness.check(lastHeard: at(0), now: at(100)) == .probe)
        #expect(liveness.check(lastHeard: at(0), now: at(150)) == .wait, "the probe has its interval to come back")
        // The probe arrived at 160: alive; the next probe is due an interval later.
        #expect(liveness.check(lastHeard: at(160), now: at(200)) == .wait)
        #expect(liveness.check(lastHeard: at(160), now: at(260)) == .probe)
    }

    @Test func aProbeThatNeverComesBackRebuildsTheLinkOnce() {
        var liveness = PubSubLiveness(interval: .milliseconds(100))
        #expect(liveness.check(lastHeard: at(0), now: at(100)) == .probe)
        #expect(liveness.check(lastHeard: at(0), now: at(199)) == .wait)
        #expect(liveness.check(lastHeard: at(0), now: at(200)) == .rebuild)
        // A new link starts with nothing owed.
        liveness.connected()
        #expect(liveness.check(lastHeard: at(210), now: at(250)) == .wait)
    }
}

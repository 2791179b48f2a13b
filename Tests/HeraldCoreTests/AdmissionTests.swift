import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

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

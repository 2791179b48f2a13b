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

/// The one admission of WebSockets and SSE streams: origin first, then the per-address and
/// rate limits, then the node's cap; a refusal takes nothing, a ticket gives everything back.
@Suite struct AdmissionDecisionTests {
    func admission(origins: Set<String> = [], max: Int = 10, perAddress: Int = 5) -> Admission {
        Admission(
            allowedOrigins: origins, maxConnections: max, trustedProxies: .none,
            gate: ConnectionGate(maxPerAddress: perAddress, rate: 1000, burst: 1000), slots: ConnectionSlots())
    }

    @Test func aForeignOriginIsRefusedBeforeAnyLimitIsTouched() {
        let admission = admission(origins: ["https://app.example"])
        let refused = admission.decide(origin: "https://evil.example", peer: "1.2.3.4", forwardedFor: [])
        #expect(refused.failure == Admission.Refusal(status: 403, error: ProtocolError(.forbidden, "origin https://evil.example is not allowed")))
        #expect(admission.gate.openConnections(from: "1.2.3.4") == 0)
        #expect(admission.slots.count == 0)
        // Allowed origins, and clients that send none (not browsers), are admitted.
        #expect(admission.decide(origin: "https://app.example", peer: "1.2.3.4", forwardedFor: []).failure == nil)
        #expect(admission.decide(origin: nil, peer: "1.2.3.4", forwardedFor: []).failure == nil)
        #expect(admission.slots.count == 2)
    }

    @Test func limitsAndTheCapAnswer429And503AndTicketsGiveBack() throws {
        let admission = admission(max: 3, perAddress: 2)
        let first = try admission.decide(origin: nil, peer: "1.2.3.4", forwardedFor: []).get()
        _ = try admission.decide(origin: nil, peer: "1.2.3.4", forwardedFor: []).get()
        let perAddress = admission.decide(origin: nil, peer: "1.2.3.4", forwardedFor: []).failure
        #expect(perAddress?.status == 429 && perAddress?.error.code == .tooManyConnections && perAddress?.isTransient == true)
        _ = try admission.decide(origin: nil, peer: "5.6.7.8", forwardedFor: []).get()
        let full = admission.decide(origin: nil, peer: "9.9.9.9", forwardedFor: []).failure
        #expect(full?.status == 503 && full?.error.code == .unavailable)
        // The refused connection's address slot was given back with the refusal.
        #expect(admission.gate.openConnections(from: "9.9.9.9") == 0)
        first.release()
        #expect(admission.slots.count == 2)
        #expect(admission.gate.openConnections(from: "1.2.3.4") == 1)
        #expect(admission.decide(origin: nil, peer: "9.9.9.9", forwardedFor: []).failure == nil)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { failure } else { nil }
    }
}

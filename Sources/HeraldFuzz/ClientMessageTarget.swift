import HeraldCore
import HeraldProtocol
import NIOCore

/// Fuzz target: one inbound text message through the whole session (JSON decoding, field
/// checks, channel rules, auth ordering, rate limit). It must never crash or trap, and any
/// input must come out as an action — a reply, an error, or a close.
///
/// Built two ways (see scripts/fuzz): with `-sanitize=fuzzer,address -DFUZZING` it is a
/// libFuzzer binary; in a normal build it replays the files it is given (regression inputs).
func fuzzClientMessage(_ bytes: UnsafeBufferPointer<UInt8>) {
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var open = ClientSession(clientID: "fuzz", limits: SessionLimits(maxSubscriptions: 4), now: now)
    var strict = ClientSession(
        clientID: "fuzz", limits: SessionLimits(maxSubscriptions: 4), access: .anonymous, requiresToken: true, now: now)
    // Each input may hold several messages separated by newlines, so sequences get explored.
    for message in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        _ = open.textReceived(message, now: now, wallClockMillis: 0)
        _ = strict.textReceived(message, now: now, wallClockMillis: 0)
    }
    if let message = try? ClientMessage.decode(bytes) {
        // Whatever decodes must survive a round trip unchanged.
        let encoded = try! JSONEncoderShim.encode(message)
        precondition((try? ClientMessage.decode(encoded)) == message, "round trip changed \(message)")
    }
}

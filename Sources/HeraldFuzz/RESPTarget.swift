import HeraldProtocol
import NIOCore
import RedisBridge

/// Fuzz target: bytes "from Redis" through hiredis' reader and our conversion to
/// ``RESPValue``, fed in two slices split at a point the input chooses. A malformed stream
/// must end in ``HiredisReader/ProtocolError``, never a crash; and splitting must not change
/// the replies.
func fuzzRESP(_ bytes: UnsafeBufferPointer<UInt8>) {
    guard let first = bytes.first else { return }
    let payload = bytes.dropFirst()
    let split = payload.isEmpty ? 0 : Int(first) % (payload.count + 1)
    let whole = replies(from: [ByteBuffer(bytes: payload)])
    let sliced = replies(from: [
        ByteBuffer(bytes: payload.prefix(split)), ByteBuffer(bytes: payload.dropFirst(split)),
    ])
    precondition(whole == sliced || whole.failed || sliced.failed, "splitting changed the replies")
}

struct Outcome: Equatable {
    var values: [RESPValue] = []
    var failed = false
}

func replies(from chunks: [ByteBuffer]) -> Outcome {
    let reader = HiredisReader()
    var outcome = Outcome()
    do {
        for chunk in chunks {
            try reader.feed(chunk)
            // Bounded: a reply needs at least 3 bytes, so there are never more replies than bytes.
            while outcome.values.count < 100_000, let value = try reader.next() {
                outcome.values.append(value)
            }
        }
    } catch {
        outcome.failed = true
    }
    return outcome
}

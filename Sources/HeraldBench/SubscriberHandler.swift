import NIOCore
import NIOWebSocket

/// One subscriber connection of the load generator: a plain NIO handler (no task per
/// connection), so that ten thousand of them cost the generator little.
///
/// It reads the publisher's stamp (`"t":<ns>`) and sequence (`"seq":<n>`) straight from the
/// bytes, without decoding JSON, answers Herald's `ping`, and signals `ready` when the
/// subscription is confirmed (Herald) or the upgrade is done (Nchan).
final class SubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame

    private let recorder: DeliveryRecorder
    /// The recorder's shard for this connection's loop (set when added).
    private var shard: DeliveryRecorder.Shard?
    private let herald: Bool
    private let ready: EventLoopPromise<Void>
    private var seen: [UInt64] = []

    init(recorder: DeliveryRecorder, herald: Bool, ready: EventLoopPromise<Void>) {
        self.recorder = recorder
        self.herald = herald
        self.ready = ready
    }

    func handlerAdded(context: ChannelHandlerContext) {
        shard = recorder.shard(for: context.eventLoop)
        if !herald { ready.succeed(()) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let bytes = frame.unmaskedData.readableBytesView
            if let sent = Self.number(after: Self.stampKey, in: bytes), let sequence = Self.number(after: Self.sequenceKey, in: bytes) {
                (shard ?? recorder.shard(for: context.eventLoop)).record(
                    sequence: Int(sequence), sentNanos: sent, duplicate: markSeen(Int(sequence)))
            } else if herald, Self.contains(Self.subscribedType, in: bytes) {
                ready.succeed(())
            } else if herald, Self.contains(Self.pingType, in: bytes) {
                let pong = ByteBuffer(string: #"{"type":"pong"}"#)
                context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: pong)), promise: nil)
            }
        case .ping:
            context.writeAndFlush(
                NIOAny(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// Marks `sequence` seen; `true` if it had been seen before.
    private func markSeen(_ sequence: Int) -> Bool {
        let word = sequence / 64
        if word >= seen.count { seen.append(contentsOf: repeatElement(0, count: word - seen.count + 1)) }
        let bit = UInt64(1) << UInt64(sequence % 64)
        defer { seen[word] |= bit }
        return seen[word] & bit != 0
    }

    static let stampKey = Array(#""t":"#.utf8)
    static let sequenceKey = Array(#""seq":"#.utf8)
    static let subscribedType = Array(#""type":"subscribed""#.utf8)
    static let pingType = Array(#""type":"ping""#.utf8)

    static func contains(_ needle: [UInt8], in bytes: ByteBufferView) -> Bool {
        bytes.withUnsafeBytes { offset(of: needle, in: $0) != nil }
    }

    /// The unsigned integer right after `key`, if present.
    static func number(after key: [UInt8], in bytes: ByteBufferView) -> Int64? {
        bytes.withUnsafeBytes { raw -> Int64? in
            guard var index = offset(of: key, in: raw) else { return nil }
            index += key.count
            var value: Int64 = 0
            var digits = 0
            while index < raw.count, raw[index] >= 48, raw[index] <= 57 {
                value = value * 10 + Int64(raw[index] - 48)
                index += 1
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }

    /// Where `needle` starts in `bytes`: a plain byte loop over raw memory. The generic
    /// `Collection.firstRange(of:)` it replaces spent half the generator's CPU in metadata
    /// lookups (perf), which on a 2-core machine is CPU taken from the server under test.
    static func offset(of needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard let first = needle.first, needle.count <= bytes.count else { return nil }
        return needle.withUnsafeBufferPointer { needle -> Int? in
            var start = 0
            let last = bytes.count - needle.count
            while start <= last {
                if bytes[start] == first {
                    var matched = 1
                    while matched < needle.count, bytes[start + matched] == needle[matched] { matched += 1 }
                    if matched == needle.count { return start }
                }
                start += 1
            }
            return nil
        }
    }
}

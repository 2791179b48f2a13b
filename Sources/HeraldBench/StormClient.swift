import HeraldClient
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket

/// One client of a reconnect storm (`herald bench --mode storm`): subscribed to one channel, it
/// follows its position from what it receives and, when its node goes away, comes back to
/// another node with `since` after a jittered exponential backoff — what herald.js does.
final class StormClient: Sendable {
    struct State {
        var position: (offset: Int64, epoch: String)?
        var seen: [UInt64] = []
        var unique = 0
        var subscribedAgain = false
        var recovered: Bool?
        var attempts = 0
    }

    let index: Int
    let channel: String
    private let state = NIOLockedValueBox(State())
    private let group: any EventLoopGroup

    init(index: Int, channel: String, group: any EventLoopGroup) {
        self.index = index
        self.channel = channel
        self.group = group
    }

    var snapshot: State { state.withLockedValue { $0 } }

    /// Connects to `node` and subscribes (with `since` once it has a position); completes when
    /// `subscribed` arrived. `onClose` runs when the connection ends.
    func connect(to node: BenchRunner.Node, onClose: @escaping @Sendable () -> Void) async throws {
        let subscribed = group.next().makePromise(of: Void.self)
        let channel = try await WebSocketDialer.connect(host: node.host, port: node.port, path: "/ws", group: group) { pipeline in
            try pipeline.addHandler(StormHandler(client: self, subscribed: subscribed, onClose: onClose))
        }
        var message = #"{"type":"subscribe","channel":"\#(self.channel)""#
        if let position = state.withLockedValue({ $0.position }) {
            message += #","since":{"offset":\#(position.offset),"epoch":"\#(position.epoch)"}"#
        }
        message += "}"
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: message)))
        try await subscribed.futureResult.get()
    }

    /// A notification: its sequence number and position.
    fileprivate func received(sequence: Int, offset: Int64?, epoch: String?) {
        state.withLockedValue { state in
            let word = sequence / 64
            if word >= state.seen.count { state.seen.append(contentsOf: repeatElement(0, count: word - state.seen.count + 1)) }
            let bit = UInt64(1) << UInt64(sequence % 64)
            if state.seen[word] & bit == 0 { state.unique += 1 }
            state.seen[word] |= bit
            if let offset, let epoch { state.position = (offset, epoch) }
        }
    }

    /// `subscribed`: a recovered subscription continues from the client's own position; otherwise
    /// it starts at the channel's latest.
    fileprivate func subscribed(offset: Int64?, epoch: String?, recovered: Bool?) {
        state.withLockedValue { state in
            if recovered != nil { state.subscribedAgain = true; state.recovered = recovered }
            if recovered != true, let offset, let epoch { state.position = (offset, epoch) }
        }
    }

    /// Comes back after a drop: jittered backoff (herald.js' defaults: 200 ms doubling to 10 s),
    /// each attempt to the next surviving node.
    func reconnect(to nodes: [BenchRunner.Node], base: Duration = .milliseconds(200), cap: Duration = .seconds(10)) async {
        while !Task.isCancelled {
            let attempt = state.withLockedValue { state -> Int in
                defer { state.attempts += 1 }
                return state.attempts
            }
            let ceiling = min(cap, base * (1 << min(attempt, 16)))
            let delay = Duration.nanoseconds(Int64.random(in: 0...max(1, ceiling.nanosecondsApproximately)))
            try? await Task.sleep(for: delay)
            let node = nodes[(index + attempt) % nodes.count]
            do {
                try await connect(to: node) {}
                return
            } catch {
                continue
            }
        }
    }
}

extension Duration {
    var nanosecondsApproximately: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

/// The storm client's connection: notifications, `subscribed`, pings.
final class StormHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame

    private let client: StormClient
    private let subscribed: EventLoopPromise<Void>
    private let onClose: @Sendable () -> Void

    init(client: StormClient, subscribed: EventLoopPromise<Void>, onClose: @escaping @Sendable () -> Void) {
        self.client = client
        self.subscribed = subscribed
        self.onClose = onClose
    }

    static let offsetKey = Array(#""offset":"#.utf8)
    static let epochKey = Array(#""epoch":""#.utf8)
    static let recoveredTrue = Array(#""recovered":true"#.utf8)
    static let recoveredFalse = Array(#""recovered":false"#.utf8)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let bytes = frame.unmaskedData.readableBytesView
            let offset = SubscriberHandler.number(after: Self.offsetKey, in: bytes)
            if let sequence = SubscriberHandler.number(after: SubscriberHandler.sequenceKey, in: bytes) {
                client.received(sequence: Int(sequence), offset: offset, epoch: Self.string(after: Self.epochKey, in: bytes))
            } else if SubscriberHandler.contains(SubscriberHandler.subscribedType, in: bytes) {
                let recovered: Bool? =
                    SubscriberHandler.contains(Self.recoveredTrue, in: bytes) ? true
                    : SubscriberHandler.contains(Self.recoveredFalse, in: bytes) ? false : nil
                client.subscribed(offset: offset, epoch: Self.string(after: Self.epochKey, in: bytes), recovered: recovered)
                subscribed.succeed(())
            } else if SubscriberHandler.contains(SubscriberHandler.pingType, in: bytes) {
                let pong = ByteBuffer(string: #"{"type":"pong"}"#)
                context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: pong)), promise: nil)
            }
        case .ping:
            context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        subscribed.fail(ChannelError.ioOnClosedChannel)
        onClose()
        context.fireChannelInactive()
    }

    /// The string value right after `key` (which ends with the opening quote); no escapes (epochs are hex).
    static func string(after key: [UInt8], in bytes: ByteBufferView) -> String? {
        bytes.withUnsafeBytes { raw -> String? in
            guard let start = SubscriberHandler.offset(of: key, in: raw).map({ $0 + key.count }) else { return nil }
            var end = start
            while end < raw.count, raw[end] != UInt8(ascii: "\"") { end += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<end]), as: UTF8.self)
        }
    }
}

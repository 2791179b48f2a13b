import Foundation
import HeraldCore
import HeraldProtocol
import HeraldTesting
import NIOCore
import NIOWebSocket
import Testing

/// Hostile and broken input against `/ws`, one attacker connection per case. Each case must
/// get its documented answer, the node must stay up, and a bystander on the same node must
/// receive every notification published between the cases.
@Suite(.bothPublishPaths) struct MalformedInputTests {
    enum Expected {
        /// An `error` message with this code; the connection stays usable.
        case error(ErrorCode)
        /// A close frame with this code.
        case close(CloseCode)
        /// Tolerated input: this reply.
        case reply(String)
    }

    struct Case: Sendable, CustomStringConvertible {
        var description: String
        /// Raw frames: (opcode, payload, fin).
        var frames: [(WebSocketOpcode, [UInt8], Bool)]
        var expected: Expected

        static func text(_ name: String, _ text: String, _ expected: Expected) -> Case {
            Case(description: name, frames: [(.text, Array(text.utf8), true)], expected: expected)
        }

        static func bytes(_ name: String, _ bytes: [UInt8], _ expected: Expected) -> Case {
            Case(description: name, frames: [(.text, bytes, true)], expected: expected)
        }
    }

    static let maxMessageBytes = 65_536

    static let cases: [Case] = {
        let deep = String(repeating: "[", count: 30_000) + String(repeating: "]", count: 30_000)
        let deepObject = #"{"type":"ping","x":"# + String(repeating: #"{"a":"#, count: 2000) + "1"
            + String(repeating: "}", count: 2000) + "}"
        let bigArray = "[" + Array(repeating: "1", count: 10_000).joined(separator: ",") + "]"
        let chunk = Array(repeating: UInt8(ascii: "a"), count: maxMessageBytes / 2 + 1)
        return [
            .text("empty frame", "", .error(.invalidJSON)),
            .text("truncated JSON", #"{"type":"subscribe","channel":"ne"#, .error(.invalidJSON)),
            .text("not JSON", "subscribe news", .error(.invalidJSON)),
            .text("unquoted keys", "{type:subscribe}", .error(.invalidJSON)),
            .text("a JSON string", #""subscribe""#, .error(.invalidMessage)),
            .text("null", "null", .error(.invalidMessage)),
            .text("missing type", #"{"channel":"news"}"#, .error(.missingField)),
            .text("type of the wrong type", #"{"type":7}"#, .error(.invalidField)),
            .text("unknown type", #"{"type":"subscribe_all"}"#, .error(.unknownType)),
            .text("missing channel", #"{"type":"subscribe"}"#, .error(.missingField)),
            .text("null channel", #"{"type":"subscribe","channel":null}"#, .error(.missingField)),
            .text("numeric channel", #"{"type":"subscribe","channel":42}"#, .error(.invalidField)),
            .text("object channel", #"{"type":"subscribe","channel":{"a":1}}"#, .error(.invalidField)),
            .text("huge number", #"{"type":"subscribe","channel":1e999999}"#, .error(.invalidField)),
            .text(
                "huge integer",
                #"{"type":"subscribe","channel":123456789012345678901234567890123456789}"#, .error(.invalidField)),
            .text("deeply nested arrays", deep, .error(.invalidJSON)),
            .text("deeply nested objects", deepObject, .error(.invalidJSON)),
            .text("10,000-element array", bigArray, .error(.invalidMessage)),
            .text(
                "10,000-element channel",
                #"{"type":"subscribe","channel":"# + bigArray + "}", .error(.invalidField)),
            .text("empty channel", #"{"type":"subscribe","channel":""}"#, .error(.invalidChannel)),
            .text("channel with a space", #"{"type":"subscribe","channel":"bad name"}"#, .error(.invalidChannel)),
            .text(
                "overlong channel",
                #"{"type":"subscribe","channel":""# + String(repeating: "c", count: 129) + #""}"#,
                .error(.invalidChannel)),
            .text("emoji channel", #"{"type":"subscribe","channel":"news🔥"}"#, .error(.invalidChannel)),
            .text("channel with NUL", #"{"type":"subscribe","channel":"news\u0000"}"#, .error(.invalidChannel)),
            .text("name with control characters", #"{"type":"set_name","name":"a\u0007b"}"#, .error(.invalidField)),
            .text("lone surrogate", #"{"type":"set_name","name":"\ud800"}"#, .error(.invalidField)),
            // RFC 8259 lets parsers ignore a byte order mark; Foundation does.
            .text("BOM before JSON", "\u{FEFF}{\"type\":\"ping\"}", .reply("pong")),
            .text("zero-width joiner in an emoji name", #"{"type":"set_name","name":"👩\u200D💻"}"#, .reply("name_set")),
            .text(
                "right-to-left override in a name",
                #"{"type":"set_name","name":"\u202Eevil"}"#, .error(.invalidField)),
            .text("empty text", #"{"type":"message","channel":"news","text":""}"#, .error(.notSubscribed)),
            .text("auth on an open node", #"{"type":"auth","token":"x"}"#, .error(.invalidMessage)),
            .bytes("invalid UTF-8", [0x7B, 0xFF, 0xFE, 0x7D], .close(.invalidPayload)),
            .bytes("overlong UTF-8 encoding", [0x22, 0xC0, 0xAF, 0x22], .close(.invalidPayload)),
            .bytes("UTF-16 surrogate encoded in UTF-8", [0x22, 0xED, 0xA0, 0x80, 0x22], .close(.invalidPayload)),
            Case(
                description: "frame over the limit",
                frames: [(.text, Array(repeating: UInt8(ascii: "a"), count: maxMessageBytes + 1), true)],
                expected: .close(.messageTooBig)),
            Case(
                description: "fragments adding up over the limit",
                frames: [(.text, chunk, false), (.continuation, chunk, false), (.continuation, chunk, true)],
                expected: .close(.messageTooBig)),
            Case(
                description: "continuation without a start",
                frames: [(.continuation, Array("{}".utf8), true)], expected: .close(.protocolError)),
            Case(
                description: "new message inside a fragmented one",
                frames: [(.text, Array("{".utf8), false), (.text, Array("{}".utf8), true)],
                expected: .close(.protocolError)),
            Case(
                description: "fragmented control frame",
                frames: [(.ping, Array("x".utf8), false)], expected: .close(.protocolError)),
            Case(
                description: "oversized control frame",
                frames: [(.ping, Array(repeating: 0, count: 126), true)], expected: .close(.protocolError)),
            Case(description: "binary frame", frames: [(.binary, [1, 2, 3], true)], expected: .close(.unsupportedData)),
        ]
    }()

    @Test func everyMalformedInputGetsItsAnswerWhileABystanderKeepsReceiving() async throws {
        try await withNode({ $0.maxMessageBytes = Self.maxMessageBytes }) { node in
            let bystander = try await node.subscriber("watch")
            var published = 0
            func bystanderStillReceives(after name: String) async throws {
                published += 1
                let result = try await node.request(.POST, "/api/notify/watch", body: #"{"body":"\#(published)"}"#)
                #expect(result.status == 200, "publish after \(name)")
                let received = try await bystander.nextNotification()
                #expect(received.body == "\(published)", "bystander after \(name)")
            }

            for item in Self.cases {
                do {
                    try await Self.run(item, on: node)
                } catch {
                    Issue.record("\(item): \(error)")
                }
                try await bystanderStillReceives(after: item.description)
            }
            #expect(try await node.request(.GET, "/health").status == 200)
        }
    }

    static func run(_ item: Case, on node: RunningNode) async throws {
                let attacker = try await node.connect()
                for (opcode, payload, fin) in item.frames {
                    try await attacker.sendFrame(opcode: opcode, data: payload, fin: fin)
                }
                switch item.expected {
                case .error(let code):
                    let error = try await attacker.nextError()
                    #expect(error.code == code, "\(item): got \(error)")
                    // Still usable afterwards.
                    try await attacker.send(.ping)
                    let answer = try await attacker.next { if case .pong = $0 { true } else { false } }
                    #expect(answer.type == "pong", "\(item): connection unusable after the error")
                case .reply(let type):
                    let answer = try await attacker.nextMessage()
                    #expect(answer.type == type, "\(item): got \(answer)")
                case .close(let code):
                    let close = try await attacker.nextClose()
                    #expect(close.code == code.rawValue, "\(item): closed with \(String(describing: close.code))")
                }
                await attacker.close()
    }

    @Test func aFloodOfPingFramesIsAnsweredAndHarmsNoOne() async throws {
        try await withNode { node in
            let bystander = try await node.subscriber("watch")
            let flooder = try await node.connect()
            for index in 0..<2000 {
                try await flooder.sendFrame(opcode: .ping, data: Array("\(index)".utf8))
            }
            // Every ping is answered with its payload, in order.
            var pongs = 0
            while pongs < 2000 {
                let frame = try await flooder.nextFrame()
                guard frame.opcode == .pong else { continue }
                #expect(String(buffer: frame.unmaskedData) == "\(pongs)")
                pongs += 1
            }
            let result = try await node.request(.POST, "/api/notify/watch", body: #"{"body":"still here"}"#)
            #expect(result.status == 200)
            #expect(try await bystander.nextNotification().body == "still here")
        }
    }

    @Test func aFloodOfJSONPingsIsRateLimitedThenClosed() async throws {
        // No refill to speak of (the count does not depend on how fast this machine sends),
        // and exactly as many pings as it takes to be closed: burst 2, then 5 refusals. More
        // would still be unread at the node when it closes, and the reset that follows can
        // discard the very frames this test reads.
        try await withNode({
            $0.sessionLimits.rateLimit = 0.01
            $0.sessionLimits.rateBurst = 2
            $0.sessionLimits.rateLimitStrikes = 5
        }) { node in
            let bystander = try await node.subscriber("watch")
            let flooder = try await node.connect()
            for _ in 0..<7 { try await flooder.send(.ping) }
            #expect(try await flooder.nextError(timeout: .seconds(10)).code == .rateLimited)
            #expect(try await flooder.nextClose(timeout: .seconds(10)).code == CloseCode.policyViolation.rawValue)
            let result = try await node.request(.POST, "/api/notify/watch", body: #"{"body":"unaffected"}"#)
            #expect(result.status == 200)
            #expect(try await bystander.nextNotification().body == "unaffected")
        }
    }
}

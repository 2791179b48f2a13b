import HeraldCore
import NIOCore
import NIOWebSocket
import Testing

@Suite struct FrameAssemblerTests {
    let key = WebSocketMaskingKey([1, 2, 3, 4])

    func frame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true, rsv1: Bool = false) -> WebSocketFrame {
        var data = ByteBuffer(bytes: bytes)
        if masked { data.webSocketMask(key!) }
        return WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: masked ? key : nil, data: data)
    }

    func text(_ action: FrameAssembler.Action) -> String? {
        if case .text(let buffer) = action { return String(buffer: buffer) }
        return nil
    }

    @Test func wholeTextMessage() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(text(assembler.frameReceived(frame(.text, Array("hello".utf8)))) == "hello")
    }

    @Test func reassemblesFragmentsAroundControlFrames() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.text, Array("hel".utf8), fin: false)) == .none)
        #expect(assembler.frameReceived(frame(.ping, [9])) == .pong(ByteBuffer(bytes: [9])))
        #expect(assembler.frameReceived(frame(.continuation, Array("l".utf8), fin: false)) == .none)
        #expect(text(assembler.frameReceived(frame(.continuation, Array("o".utf8)))) == "hello")
    }

    @Test func binaryMessages() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.binary, [0, 255])) == .binary(ByteBuffer(bytes: [0, 255])))
    }

    @Test func protocolViolationsClose1002() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.text, [65], masked: false)) == .fail(.protocolError, reason: "client frames must be masked"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.text, [65], rsv1: true)) == .fail(.protocolError, reason: "reserved bits set"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.continuation, [65])) == .fail(.protocolError, reason: "continuation without a message"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        _ = assembler.frameReceived(frame(.text, [65], fin: false))
        #expect(assembler.frameReceived(frame(.text, [65])) == .fail(.protocolError, reason: "new message inside a fragmented message"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.ping, [], fin: false)) == .fail(.protocolError, reason: "fragmented control frame"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(WebSocketOpcode(encodedWebSocketOpcode: 3)!, [])) == .fail(.protocolError, reason: "reserved opcode"))
    }

    @Test func oversizedMessagesClose1009EvenWhenFragmented() {
        var assembler = FrameAssembler(maxMessageBytes: 10)
        #expect(assembler.frameReceived(frame(.text, Array(repeating: 65, count: 11))) == .fail(.messageTooBig, reason: "message too big"))
        assembler = FrameAssembler(maxMessageBytes: 10)
        #expect(assembler.frameReceived(frame(.text, Array(repeating: 65, count: 6), fin: false)) == .none)
        #expect(assembler.frameReceived(frame(.continuation, Array(repeating: 65, count: 6))) == .fail(.messageTooBig, reason: "message too big"))
    }

    @Test func invalidUTF8Closes1007() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.text, [0xC3, 0x28])) == .fail(.invalidPayload, reason: "invalid UTF-8"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        // An overlong encoding of "/" and a UTF-16 surrogate are both invalid.
        #expect(assembler.frameReceived(frame(.text, [0xC0, 0xAF])) == .fail(.invalidPayload, reason: "invalid UTF-8"))
        assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.text, [0xED, 0xA0, 0x80])) == .fail(.invalidPayload, reason: "invalid UTF-8"))
    }

    @Test func closeFrames() {
        var assembler = FrameAssembler(maxMessageBytes: 100)
        #expect(assembler.frameReceived(frame(.connectionClose, [])) == .peerClosed(code: nil))
        #expect(assembler.frameReceived(frame(.connectionClose, [0x03, 0xE8, 0x6F, 0x6B])) == .peerClosed(code: 1000))
        #expect(assembler.frameReceived(frame(.connectionClose, [0x03])) == .fail(.protocolError, reason: "close payload of one byte"))
        #expect(assembler.frameReceived(frame(.connectionClose, [0x03, 0xED])) == .fail(.protocolError, reason: "invalid close code"))
        #expect(assembler.frameReceived(frame(.connectionClose, [0x03, 0xE8, 0xFF])) == .fail(.invalidPayload, reason: "invalid UTF-8 in close reason"))
    }
}

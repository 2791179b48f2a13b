import HeraldProtocol
import NIOCore
import NIOWebSocket

/// RFC 6455 receive rules as a pure state machine: turns decoded client frames into whole
/// messages and control events, and says which close code a violation earns.
///
/// NIO's `WebSocketFrameDecoder` parses frame headers and unmasks; everything above that —
/// masking required, reserved bits, opcode validity, fragmentation, message size, UTF-8 and
/// close-frame rules — lives here so it is unit-tested without sockets.
public struct FrameAssembler {
    /// What the connection must do after a frame.
    public enum Action: Equatable {
        /// Nothing yet (a fragment was buffered, or a pong arrived).
        case none
        /// A complete text message; its bytes are valid UTF-8.
        case text(ByteBuffer)
        /// A complete binary message.
        case binary(ByteBuffer)
        /// Answer with a pong carrying this payload.
        case pong(ByteBuffer)
        /// The peer closed: answer with a close frame carrying `code` (nil: empty payload), then
        /// close the connection.
        case peerClosed(code: UInt16?)
        /// The peer broke the protocol: send a close frame with `code` and `reason`, then close.
        case fail(CloseCode, reason: String)
    }

    /// Largest message (all fragments together) accepted, in bytes.
    public let maxMessageBytes: Int
    private var fragments: ByteBuffer?
    private var fragmentsAreText = false

    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    public mutating func frameReceived(_ frame: WebSocketFrame) -> Action {
        guard frame.maskKey != nil else { return .fail(.protocolError, reason: "client frames must be masked") }
        guard frame.reservedBits.isEmpty else { return .fail(.protocolError, reason: "reserved bits set") }
        switch frame.opcode {
        case .text, .binary:
            guard fragments == nil else { return .fail(.protocolError, reason: "new message inside a fragmented message") }
            return startMessage(frame)
        case .continuation:
            return continueMessage(frame)
        case .ping:
            guard frame.fin else { return .fail(.protocolError, reason: "fragmented control frame") }
            return .pong(frame.unmaskedData)
        case .pong:
            return .none
        case .connectionClose:
            return closeReceived(frame.unmaskedData)
        default:
            return .fail(.protocolError, reason: "reserved opcode")
        }
    }

    private mutating func startMessage(_ frame: WebSocketFrame) -> Action {
        guard frame.length <= maxMessageBytes else { return .fail(.messageTooBig, reason: "message too big") }
        let isText = frame.opcode == .text
        if frame.fin { return complete(frame.unmaskedData, isText: isText) }
        fragments = frame.unmaskedData
        fragmentsAreText = isText
        return .none
    }

    private mutating func continueMessage(_ frame: WebSocketFrame) -> Action {
        guard var buffer = fragments else { return .fail(.protocolError, reason: "continuation without a message") }
        guard buffer.readableBytes + frame.length <= maxMessageBytes else {
            fragments = nil
            return .fail(.messageTooBig, reason: "message too big")
        }
        fragments = nil  // keep `buffer` uniquely referenced while appending
        var data = frame.unmaskedData
        buffer.writeBuffer(&data)
        if frame.fin { return complete(buffer, isText: fragmentsAreText) }
        fragments = buffer
        return .none
    }

    private func complete(_ buffer: ByteBuffer, isText: Bool) -> Action {
        guard isText else { return .binary(buffer) }
        guard Self.isValidUTF8(buffer) else { return .fail(.invalidPayload, reason: "invalid UTF-8") }
        return .text(buffer)
    }

    private func closeReceived(_ payload: ByteBuffer) -> Action {
        var payload = payload
        if payload.readableBytes == 0 { return .peerClosed(code: nil) }
        guard let code = payload.readInteger(as: UInt16.self) else {
            return .fail(.protocolError, reason: "close payload of one byte")
        }
        guard CloseCode.isValidOnWire(code) else { return .fail(.protocolError, reason: "invalid close code") }
        guard Self.isValidUTF8(payload) else { return .fail(.invalidPayload, reason: "invalid UTF-8 in close reason") }
        return .peerClosed(code: code)
    }

    /// Strict UTF-8 check (rejects overlongs, surrogates and code points above U+10FFFF).
    public static func isValidUTF8(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) != nil }
    }
}

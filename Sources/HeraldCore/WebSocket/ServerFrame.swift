import HeraldProtocol
import NIOCore
import NIOWebSocket

/// Builds complete, unmasked server-to-client WebSocket frames (header and payload in one buffer).
///
/// The fan-out path writes these buffers straight to the socket: one buffer per publish per
/// node, shared by reference by every subscriber's write, so no per-subscriber encoding or
/// header allocation happens (see docs/architecture.md).
public enum ServerFrame {
    /// A text frame holding `payload`, which must be valid UTF-8.
    public static func text(_ payload: some Collection<UInt8>, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        frame(opcode: .text, payload: payload, allocator: allocator)
    }

    /// A text frame holding `message` encoded as JSON.
    public static func message(_ message: ServerMessage, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        if let json = message.writtenJSON() { return text(json.readableBytesView, allocator: allocator) }
        return text(message.jsonBytes(), allocator: allocator)
    }

    /// A binary frame (only the echo endpoint sends these).
    public static func binary(_ payload: some Collection<UInt8>, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        frame(opcode: .binary, payload: payload, allocator: allocator)
    }

    /// A pong answering a ping with `payload`.
    public static func pong(_ payload: some Collection<UInt8>, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        frame(opcode: .pong, payload: payload, allocator: allocator)
    }

    /// A close frame. `code == nil` sends an empty close payload (allowed by RFC 6455 §5.5.1).
    public static func close(code: UInt16?, reason: String = "", allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var payload: [UInt8] = []
        if let code {
            payload.append(UInt8(code >> 8))
            payload.append(UInt8(code & 0xFF))
            // Control frame payloads are at most 125 bytes; cut the reason on a character boundary.
            var reasonBytes = 0
            for scalar in reason.unicodeScalars {
                let size = String(scalar).utf8.count
                if reasonBytes + size > 123 { break }
                reasonBytes += size
                payload.append(contentsOf: String(scalar).utf8)
            }
        }
        return frame(opcode: .connectionClose, payload: payload, allocator: allocator)
    }

    static func frame(opcode: WebSocketOpcode, payload: some Collection<UInt8>, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = payload.count
        var buffer = allocator.buffer(capacity: length + 10)
        buffer.writeInteger(0x80 | UInt8(webSocketOpcode: opcode))
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeBytes(payload)
        return buffer
    }
}

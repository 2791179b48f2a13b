import NIOCore

/// Builds Server-Sent Events (the `text/event-stream` framing of the HTML standard).
public enum SSEEvent {
    /// One event: an optional `event:` name and `id:`, then the data — one `data:` line per
    /// line of it (a JSON document may hold line breaks between tokens; the receiver joins the
    /// lines again with `\n`, which is still the same JSON).
    public static func event(name: String? = nil, id: String? = nil, data: ByteBufferView) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(data.count + 24 + (id?.utf8.count ?? 0) + (name?.utf8.count ?? 0))
        if let name {
            buffer.writeStaticString("event: ")
            buffer.writeString(name)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        if let id {
            buffer.writeStaticString("id: ")
            buffer.writeString(id)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        var start = data.startIndex
        var index = data.startIndex
        while index < data.endIndex {
            let byte = data[index]
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                writeLine(data[start..<index], into: &buffer)
                // CRLF is one line break.
                if byte == UInt8(ascii: "\r"), data.index(after: index) < data.endIndex,
                    data[data.index(after: index)] == UInt8(ascii: "\n")
                {
                    index = data.index(after: index)
                }
                start = data.index(after: index)
            }
            index = data.index(after: index)
        }
        writeLine(data[start..<data.endIndex], into: &buffer)
        buffer.writeInteger(UInt8(ascii: "\n"))
        return buffer
    }

    /// A comment line (ignored by receivers): the keep-alive that stops proxies timing out.
    public static func comment(_ text: String) -> ByteBuffer {
        ByteBuffer(string: ": \(text)\n\n")
    }

    /// The `type` of a server message's JSON, found without parsing it: the value of the first
    /// `"type":"…"` (inside a JSON string every quote is escaped, so a member's name cannot
    /// fake it). Notifications put it first.
    public static func messageType(of payload: ByteBuffer) -> String? {
        let bytes = payload.readableBytesView
        let needle = Array(#""type":""#.utf8)
        guard bytes.count > needle.count else { return nil }
        var index = bytes.startIndex
        while index <= bytes.endIndex - needle.count {
            if bytes[index] == needle[0], bytes[index..<index + needle.count].elementsEqual(needle) {
                let start = index + needle.count
                guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
            index += 1
        }
        return nil
    }

    /// The reconnection delay `EventSource` should use, in milliseconds.
    public static func retry(milliseconds: Int) -> ByteBuffer {
        ByteBuffer(string: "retry: \(milliseconds)\n\n")
    }

    /// The payload of a server WebSocket frame built by ``ServerFrame`` (unmasked): the JSON
    /// a WebSocket subscriber receives, shared, without copying.
    public static func payload(ofFrame frame: ByteBuffer) -> ByteBuffer {
        guard let length = frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) else { return ByteBuffer() }
        let header = switch length & 0x7F {
        case 126: 4
        case 127: 10
        default: 2
        }
        return frame.getSlice(at: frame.readerIndex + header, length: frame.readableBytes - header) ?? ByteBuffer()
    }

    private static func writeLine(_ line: ByteBufferView.SubSequence, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("data: ")
        buffer.writeBytes(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }
}

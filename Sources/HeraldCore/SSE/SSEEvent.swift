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

    /// The reconnection delay `EventSource` should use, in milliseconds.
    public static func retry(milliseconds: Int) -> ByteBuffer {
        ByteBuffer(string: "retry: \(milliseconds)\n\n")
    }

    private static func writeLine(_ line: ByteBufferView.SubSequence, into buffer: inout ByteBuffer) {
        buffer.writeStaticString("data: ")
        buffer.writeBytes(line)
        buffer.writeInteger(UInt8(ascii: "\n"))
    }
}

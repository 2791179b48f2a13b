import NIOCore

/// Writes JSON objects straight into a `ByteBuffer`, for the messages built once per publish.
///
/// `JSONEncoder` goes through `Codable`'s containers and an intermediate tree for every
/// notification; on the REST publish path that was a tenth of the CPU. Herald's outgoing
/// shapes are flat objects with a fixed key order, so a writer that appends keys and escaped
/// strings does the same job in one pass. Keys are static ASCII names and are not escaped.
public struct JSONWriter {
    public private(set) var buffer: ByteBuffer
    private var needsComma = false

    public init(capacity: Int = 256, allocator: ByteBufferAllocator = .init()) {
        buffer = allocator.buffer(capacity: capacity)
    }

    public mutating func beginObject() {
        separate()
        buffer.writeInteger(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        buffer.writeInteger(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Starts an array of objects under `key` (each ``beginObject()``…``endObject()``).
    public mutating func beginArray(_ key: StaticString) {
        self.key(key)
        buffer.writeInteger(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        buffer.writeInteger(UInt8(ascii: "]"))
        needsComma = true
    }

    public mutating func field(_ key: StaticString, _ value: String) {
        self.key(key)
        writeString(value)
    }

    /// Writes nothing for `nil`: Herald omits absent optional fields rather than sending null.
    public mutating func field(_ key: StaticString, _ value: String?) {
        if let value { field(key, value) }
    }

    public mutating func field(_ key: StaticString, _ value: Int) {
        self.key(key)
        writeInteger(value)
    }

    public mutating func field(_ key: StaticString, _ value: Bool) {
        self.key(key)
        buffer.writeStaticString(value ? "true" : "false")
    }

    /// A value that already is valid JSON text, copied as it is.
    public mutating func field(_ key: StaticString, raw: RawJSON?) {
        guard let raw else { return }
        self.key(key)
        buffer.writeBytes(raw.bytes)
    }

    /// An array of values that already are valid JSON text (notifications as delivered).
    public mutating func field(_ key: StaticString, rawElements: [ByteBuffer]) {
        self.key(key)
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, element) in rawElements.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeImmutableBuffer(element)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    /// An array of strings.
    public mutating func field(_ key: StaticString, strings: [String]) {
        self.key(key)
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, element) in strings.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            writeString(element)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    private mutating func key(_ key: StaticString) {
        separate()
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeInteger(UInt8(ascii: ":"))
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
    }

    private mutating func writeInteger(_ value: Int) {
        if value < 0 { buffer.writeInteger(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
            UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: digits[start...]))
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped, the rest as UTF-8.
    private mutating func writeString(_ value: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[start..<index])))
                start = index + 1
                buffer.writeInteger(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): buffer.writeInteger(byte)
                case 0x0A: buffer.writeInteger(UInt8(ascii: "n"))
                case 0x0D: buffer.writeInteger(UInt8(ascii: "r"))
                case 0x09: buffer.writeInteger(UInt8(ascii: "t"))
                case 0x08: buffer.writeInteger(UInt8(ascii: "b"))
                case 0x0C: buffer.writeInteger(UInt8(ascii: "f"))
                default:
                    buffer.writeStaticString("u00")
                    buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
                    buffer.writeInteger(Self.hexDigits[Int(byte & 0xF)])
                }
            }
            buffer.writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[start...])))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
}

/// Text already checked to be one valid JSON value, carried as its bytes (the `data` object of
/// a notification travels from publisher to subscribers without being re-encoded).
public struct RawJSON: Sendable, Equatable {
    public let bytes: [UInt8]

    /// `nil` unless `bytes` is exactly one valid JSON value.
    public init?(validating bytes: some Collection<UInt8>) {
        guard JSONReader.isValid(bytes) else { return nil }
        self.bytes = Array(bytes)
    }

    /// For bytes a ``JSONReader`` has already validated.
    init(trusted bytes: [UInt8]) {
        self.bytes = bytes
    }
}

import NIOCore

/// One RESP2 reply, copied out of hiredis into Swift values at once.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// A bulk string, kept as bytes: payloads are JSON and must not be re-decoded.
    case bulkString(ByteBuffer)
    case null
    case array([RESPValue])

    /// The value as text, for strings and bulk strings.
    public var string: String? {
        switch self {
        case .simpleString(let string): string
        case .bulkString(let buffer): String(buffer: buffer)
        default: nil
        }
    }

    public var int: Int? {
        switch self {
        case .integer(let value): Int(value)
        case .bulkString(let buffer): Int(String(buffer: buffer))
        default: nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }
}

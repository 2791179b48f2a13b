import CHiredis
import NIOCore

/// The one place that calls hiredis' reply parser.
///
/// Bytes go in as they arrive from the socket (any split); complete replies come out as
/// ``RESPValue``s. hiredis copies fed bytes into its own buffer, and each reply tree is copied
/// into Swift values and freed before it is returned. Not thread-safe: one reader per
/// connection, used on that connection's event loop.
public final class HiredisReader {
    /// hiredis rejected the stream; the connection must be dropped (the reader is poisoned).
    public struct ProtocolError: Error, CustomStringConvertible {
        public var description: String
    }

    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        // hiredis' default keeps at most 16 KiB of consumed buffer; lift the cap so large
        // payloads do not cost repeated reallocations.
        reader.pointee.maxbuf = 0
        self.reader = reader
    }

    deinit {
        redisReaderFree(reader)
    }

    /// Feeds bytes received from Redis.
    public func feed(_ buffer: ByteBuffer) throws {
        let status = buffer.withUnsafeReadableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return REDIS_OK }
            return redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        if status != REDIS_OK { throw ProtocolError(description: errorText) }
    }

    /// The next complete reply, or `nil` when more bytes are needed.
    public func next() throws -> RESPValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
            throw ProtocolError(description: errorText)
        }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        return Self.convert(reply.assumingMemoryBound(to: redisReply.self))
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let node = reply.pointee
        switch node.type {
        case REDIS_REPLY_STRING:
            return .bulkString(ByteBuffer(bytes: UnsafeRawBufferPointer(start: node.str, count: Int(node.len))))
        case REDIS_REPLY_STATUS:
            return .simpleString(text(node))
        case REDIS_REPLY_ERROR:
            return .error(text(node))
        case REDIS_REPLY_INTEGER:
            return .integer(node.integer)
        case REDIS_REPLY_ARRAY:
            var values: [RESPValue] = []
            values.reserveCapacity(Int(node.elements))
            for index in 0..<Int(node.elements) {
                if let element = node.element[index] { values.append(convert(element)) }
            }
            return .array(values)
        default:
            return .null
        }
    }

    private static func text(_ node: redisReply) -> String {
        String(decoding: UnsafeRawBufferPointer(start: node.str, count: Int(node.len)), as: UTF8.self)
    }

    /// `redisReaderGetError` is a macro; read the fixed-size `errstr` field directly.
    private var errorText: String {
        withUnsafeBytes(of: reader.pointee.errstr) { bytes in
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
    }
}

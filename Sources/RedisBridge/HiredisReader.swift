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

    /// The most elements one array reply may announce. hiredis 0.14 allocates the element
    /// table as soon as it reads the `*<count>` header (up to `INT_MAX` entries, 16 GiB) before
    /// any element has arrived; a broken or hostile peer could make one line cost that much.
    /// Herald's largest legitimate reply (a node's channel table, two entries per channel) stays
    /// far below this; a larger announcement is a protocol error that drops the connection.
    public static let maxArrayElements: Int32 = 1 << 22

    private let reader: UnsafeMutablePointer<redisReader>
    /// This reader's constructor table: hiredis' own, with array creation bounded.
    private let functions: UnsafeMutablePointer<redisReplyObjectFunctions>

    public init() {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        // hiredis' default keeps at most 16 KiB of consumed buffer; lift the cap so large
        // payloads do not cost repeated reallocations.
        reader.pointee.maxbuf = 0
        functions = .allocate(capacity: 1)
        functions.initialize(to: Self.defaultFunctions)
        // Returning nil makes hiredis fail the stream with its out-of-memory error.
        functions.pointee.createArray = { task, elements in
            guard elements <= HiredisReader.maxArrayElements else { return nil }
            return HiredisReader.defaultFunctions.createArray?(task, elements)
        }
        reader.pointee.fn = UnsafeMutablePointer(functions)
        self.reader = reader
    }

    deinit {
        redisReaderFree(reader)
        functions.deallocate()
    }

    /// hiredis' default reply constructors (`freeReplyObject` frees what they build), read
    /// from a reader it set up with them, since hiredis does not export the table itself.
    private static let defaultFunctions: redisReplyObjectFunctions = {
        guard let probe = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        defer { redisReaderFree(probe) }
        return probe.pointee.fn.pointee
    }()

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

import NIOCore
import RedisBridge
import Testing

@Suite struct HiredisReaderTests {
    func replies(_ chunks: [String]) throws -> [RESPValue] {
        let reader = HiredisReader()
        var values: [RESPValue] = []
        for chunk in chunks {
            try reader.feed(ByteBuffer(string: chunk))
            while let value = try reader.next() { values.append(value) }
        }
        return values
    }

    @Test func parsesEveryRESP2Type() throws {
        let values = try replies(["+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n:1\r\n*-1\r\n"])
        #expect(values == [
            .simpleString("OK"), .error("ERR bad"), .integer(42), .bulkString(ByteBuffer(string: "hello")), .null,
            .array([.bulkString(ByteBuffer(string: "a")), .integer(1)]), .null,
        ])
    }

    /// The fuzzer's find: one `*<count>` line made hiredis 0.14 allocate 8.9 GB up front.
    @Test func anArrayAnnouncingTooManyElementsIsAProtocolErrorNotAnAllocation() throws {
        #expect(throws: HiredisReader.ProtocolError.self) { try replies(["*1111111110\r\n"]) }
        #expect(throws: HiredisReader.ProtocolError.self) {
            try replies(["*1\r\n*\(Int(HiredisReader.maxArrayElements) + 1)\r\n"])
        }
        // The bound itself is allowed: the table is made, then waits for its elements.
        #expect(try replies(["*\(HiredisReader.maxArrayElements)\r\n:1\r\n"]) == [])
    }

    @Test func repliesSplitAcrossReadsAtEveryByte() throws {
        let wire = "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$13\r\n{\"title\":\"x\"}\r\n"
        let expected: RESPValue = .array([
            .bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "news")),
            .bulkString(ByteBuffer(string: #"{"title":"x"}"#)),
        ])
        for split in 1..<wire.utf8.count {
            let bytes = Array(wire.utf8)
            let chunks = [String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[split...], as: UTF8.self)]
            #expect(try replies(chunks) == [expected], "split at \(split)")
        }
        // One byte at a time.
        #expect(try replies(wire.map { String($0) }) == [expected])
    }

    @Test func largePipelinesAndLargePayloads() throws {
        let reader = HiredisReader()
        var wire = ByteBuffer()
        for index in 0..<10_000 { wire.writeString(":\(index)\r\n") }
        let big = String(repeating: "x", count: 1 << 20)
        wire.writeString("$\(big.utf8.count)\r\n\(big)\r\n")
        // Feed in 4 KiB slices, as a socket would deliver them.
        var values: [RESPValue] = []
        while wire.readableBytes > 0 {
            let slice = wire.readSlice(length: min(4096, wire.readableBytes))!
            try reader.feed(slice)
            while let value = try reader.next() { values.append(value) }
        }
        #expect(values.count == 10_001)
        #expect(values[9_999] == .integer(9_999))
        #expect(values.last == .bulkString(ByteBuffer(string: big)))
    }

    @Test func binaryPayloadsSurvive() throws {
        var wire = ByteBuffer(string: "$4\r\n")
        wire.writeBytes([0, 13, 10, 255])
        wire.writeString("\r\n")
        let reader = HiredisReader()
        try reader.feed(wire)
        #expect(try reader.next() == .bulkString(ByteBuffer(bytes: [0, 13, 10, 255])))
    }

    @Test func malformedStreamsAreErrors() throws {
        let reader = HiredisReader()
        try reader.feed(ByteBuffer(string: "?what\r\n"))
        #expect(throws: HiredisReader.ProtocolError.self) { try reader.next() }
    }
}

import NIOCore
import RedisBridge
import Testing

@Suite struct RESPCommandTests {
    @Test func encodesBinarySafeArguments() {
        let encoded = RESPCommand.encode([ByteBuffer(string: "PUBLISH"), ByteBuffer(string: "ch"), ByteBuffer(bytes: [0, 10, 13])])
        var expected = ByteBuffer(string: "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$3\r\n")
        expected.writeBytes([0, 10, 13])
        expected.writeString("\r\n")
        #expect(encoded == expected)
    }

    @Test func encodesEmptyArgumentsAndRoundTripsThroughTheReader() throws {
        let encoded = RESPCommand.encode(["SET", "k", ""])
        #expect(String(buffer: encoded) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n")
        // A command is an array of bulk strings: the reader parses it back.
        let reader = HiredisReader()
        try reader.feed(encoded)
        #expect(try reader.next() == .array([
            .bulkString(ByteBuffer(string: "SET")), .bulkString(ByteBuffer(string: "k")), .bulkString(ByteBuffer()),
        ]))
    }

    @Test func manyArguments() throws {
        let channels = (0..<2000).map { "herald:ch:c\($0)" }
        let encoded = RESPCommand.encode(["SUBSCRIBE"] + channels)
        let reader = HiredisReader()
        try reader.feed(encoded)
        #expect(try reader.next()?.array?.count == 2001)
    }
}

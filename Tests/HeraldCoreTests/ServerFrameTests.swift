import HeraldCore
import NIOCore
import NIOWebSocket
import Testing

@Suite struct ServerFrameTests {
    @Test func headerLengthsFollowRFC6455() {
        #expect(Array(ServerFrame.text(Array("hi".utf8)).readableBytesView) == [0x81, 2, 0x68, 0x69])
        let medium = ServerFrame.text([UInt8](repeating: 65, count: 300))
        #expect(Array(medium.readableBytesView.prefix(4)) == [0x81, 126, 0x01, 0x2C])
        #expect(medium.readableBytes == 304)
        let large = ServerFrame.binary([UInt8](repeating: 0, count: 70_000))
        #expect(Array(large.readableBytesView.prefix(2)) == [0x82, 127])
        #expect(large.readableBytes == 70_010)
    }

    @Test func closeFrameCarriesCodeAndCutsLongReasons() {
        let frame = ServerFrame.close(code: 1001, reason: "bye")
        #expect(Array(frame.readableBytesView) == [0x88, 5, 0x03, 0xE9, 0x62, 0x79, 0x65])
        let long = ServerFrame.close(code: 1000, reason: String(repeating: "é", count: 100))
        #expect(long.readableBytes <= 2 + 125)
        var payload = long
        payload.moveReaderIndex(forwardBy: 4)
        #expect(FrameAssembler.isValidUTF8(payload))
    }
}

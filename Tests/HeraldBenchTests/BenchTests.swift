import NIOCore
import Testing

@testable import HeraldBench

@Suite struct BenchTests {
    @Test func spreadsLargeRunsOverSourceAddresses() {
        #expect(BenchRunner.sourceAddress(for: 5, of: 10_000) == nil)
        #expect(BenchRunner.sourceAddress(for: 0, of: 50_000)?.ipAddress == "127.0.0.2")
        #expect(BenchRunner.sourceAddress(for: 19_999, of: 50_000)?.ipAddress == "127.0.0.2")
        #expect(BenchRunner.sourceAddress(for: 20_000, of: 50_000)?.ipAddress == "127.0.0.3")
        #expect(BenchRunner.sourceAddress(for: 49_999, of: 50_000)?.ipAddress == "127.0.0.4")
    }

    @Test func readsStampAndSequenceWithoutDecodingJSON() {
        let frame = ByteBuffer(string: #"{"body":"","channel":"bench0","data":{"pad":"","seq":41,"t":1795310554269000000},"type":"notification"}"#)
        let bytes = frame.readableBytesView
        #expect(SubscriberHandler.number(after: SubscriberHandler.sequenceKey, in: bytes) == 41)
        #expect(SubscriberHandler.number(after: SubscriberHandler.stampKey, in: bytes) == 1_795_310_554_269_000_000)
        #expect(SubscriberHandler.number(after: SubscriberHandler.stampKey, in: ByteBuffer(string: #"{"timestamp":"x"}"#).readableBytesView) == nil)
    }
}

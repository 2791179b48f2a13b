import Foundation
import HeraldTesting
import NIOCore
import Synchronization
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

    /// Every `max` step counts only its own deliveries: the steps number their publications
    /// apart, so one step's deliveries are neither the next one's duplicates nor its losses.
    @Test func everyMaxStepCountsItsOwnDeliveriesExactly() async throws {
        try await withNode { node in
            var configuration = BenchConfiguration()
            configuration.mode = .max
            configuration.urls = [node.baseURL]
            configuration.subscribers = 5
            configuration.channels = 1
            configuration.rate = 20
            configuration.seconds = 0.5
            configuration.publishers = 2
            configuration.maxP99Millis = 60_000
            configuration.maxSteps = 3
            let steps = Mutex<[String]>([])
            let result = try await BenchRunner(configuration: configuration) { line in
                if line.hasPrefix("max:") { steps.withLock { $0.append(line) } }
            }.run()
            let lines = steps.withLock { $0 }
            #expect(lines.count == 3, "\(lines)")
            #expect(lines.allSatisfy { $0.contains("lost 0,") }, "\(lines)")
            #expect(result.lost == 0 && result.duplicates == 0)
            #expect(result.published == 40 && result.deliveries == 200 && result.expectedDeliveries == 200)
        }
    }

    /// `--mode storm`: every client on the first node, which the generator kills; all come back
    /// to the other node with `since` and end with every notification published meanwhile.
    @Test func aStormBringsEveryClientBackWithEverythingItMissed() async throws {
        try await withRedis { redis in
            try await withProcessCluster(2, redis: redis) { cluster in
                var configuration = BenchConfiguration()
                configuration.mode = .storm
                configuration.urls = [cluster.baseURL(0), cluster.baseURL(1)]
                configuration.subscribers = 100
                configuration.channels = 10
                configuration.rate = 50
                configuration.seconds = 1
                configuration.killPid = try #require(cluster.pid(0))
                configuration.pids = [try #require(cluster.pid(1))]
                let result = try await BenchRunner(configuration: configuration).run()
                #expect(result.reconnected == 100 && result.recovered == 100)
                #expect(result.published == 50 && result.publishErrors == 0)
                #expect(result.expectedDeliveries == 500 && result.deliveries == 500 && result.lost == 0)
                #expect(result.stormSeconds != nil && (result.serverCPUMicrosPerReconnect ?? 0) > 0)
                // The first node was killed: it answers no more.
                await #expect(throws: (any Error).self) { _ = try await HTTPResult.send(.GET, cluster.baseURL(0) + "/health") }
            }
        }
    }
}

import HeraldCore
import HeraldProtocol
@testable import HeraldRedis
import HeraldTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// When a Redis Cluster slot changes hands, the channel's subscription moves from one
/// master's broker to another's (``ClusterBroker``). What the new one must deliver is
/// everything after the last position the old one delivered — even what was published while
/// neither listened. Two brokers on one real redis-server stand for the two masters.
@Suite struct ChannelHandoverTests {
    final class Recorder: PublicationSink {
        let offsets = Mutex<[Int64]>([])
        func deliver(_ publication: Publication) {
            if let offset = publication.position?.offset { offsets.withLock { $0.append(offset) } }
        }
        func deliver(_ signal: ConnectionSignal, to channel: String) {}
    }

    @Test func theNewOwnerReadsWhatWasPublishedAfterTheOldOwnersLastDelivery() async throws {
        try await withRedis { redis in
            let topology = RedisTopology(
                url: redis.url, prefix: "handover", group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "test"))
            let (old, new) = (RedisBroker(topology: topology), RedisBroker(topology: topology))
            let (before, after) = (Recorder(), Recorder())
            old.attach(before)
            new.attach(after)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await old.run() }
                group.addTask { try await new.run() }
                defer { group.cancelAll() }
                try await waitUntil("both brokers to reach Redis") { old.status.isUp && new.status.isUp }
                let loop = MultiThreadedEventLoopGroup.singleton.next()
                func publish(_ number: Int) async throws {
                    let payload = ByteBuffer(string: #"{"type":"notification","channel":"moving","title":"\#(number)"}"#)
                    _ = try await old.publish(Publication(channel: "moving", payload: payload, id: "\(number)"), on: loop).get()
                }
                old.setInterest(in: "moving", true)
                try await old.whenSubscribed("moving", on: loop).get()
                _ = try await old.history(of: "moving", after: nil, limit: 0)
                for number in 1...3 { try await publish(number) }
                try await waitUntil("the old owner to deliver 1-3") { before.offsets.withLock { $0 } == [1, 2, 3] }

                let last = old.abandon("moving")
                #expect(last?.offset == 3)
                // Published while the new owner is not subscribed yet.
                for number in 4...5 { try await publish(number) }
                new.adopt("moving", after: last)
                try await waitUntil("the new owner to read back 4 and 5") { after.offsets.withLock { $0 } == [4, 5] }
                try await new.whenSubscribed("moving", on: loop).get()
                try await publish(6)
                try await waitUntil("the new owner to deliver 6 live") { after.offsets.withLock { $0 } == [4, 5, 6] }
            }
        }
    }
}

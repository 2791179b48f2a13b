import HeraldCore
import HeraldProtocol
import HeraldTesting
import NIOCore
import Synchronization
import Testing

/// In a cluster the history page and the live publications reach a node on two different
/// Redis connections, so a publication the page already held can arrive *after* the merge.
/// The in-memory broker below makes that happen on demand: it can hand the Hub a second copy
/// of a channel's last publication whenever the test says.
@Suite struct LateCopyTests {
    final class LateCopyBroker: Broker {
        private let inner = InMemoryBroker()
        private let sink = Mutex<(any PublicationSink)?>(nil)
        private let last = Mutex<[String: Publication]>([:])

        /// Forwards to the Hub and remembers each channel's last publication.
        final class Recorder: PublicationSink {
            let broker: LateCopyBroker
            init(_ broker: LateCopyBroker) { self.broker = broker }
            func deliver(_ publication: Publication) {
                broker.last.withLock { $0[publication.channel] = publication }
                broker.sink.withLock { $0 }?.deliver(publication)
            }
            func deliver(_ signal: ConnectionSignal, to channel: String) {
                broker.sink.withLock { $0 }?.deliver(signal, to: channel)
            }
        }

        /// Delivers `channel`'s last publication again, as a late pub/sub copy would arrive.
        func deliverLastAgain(_ channel: String) {
            guard let publication = last.withLock({ $0[channel] }) else { return }
            sink.withLock { $0 }?.deliver(publication)
        }

        var kind: String { inner.kind }
        var status: BrokerStatus { inner.status }
        func attach(_ sink: any PublicationSink) {
            self.sink.withLock { $0 = sink }
            inner.attach(Recorder(self))
        }
        func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
            inner.publish(publication, on: loop)
        }
        func publishTransient(_ publication: Publication) async throws(BrokerError) { try await inner.publishTransient(publication) }
        func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) { try await inner.send(signal, to: channel) }
        func setInterest(in channel: String, _ interested: Bool) { inner.setInterest(in: channel, interested) }
        func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> { inner.whenSubscribed(channel, on: loop) }
        func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
            try await inner.history(of: channel, after: offset, limit: limit)
        }
        func run() async throws { try await inner.run() }
    }

    @Test func aLateCopyOfAPublicationTheSubscribeAlreadyCoveredIsNotSentAgain() async throws {
        let broker = LateCopyBroker()
        try await withNode(broker: broker) { node in
            let first = try await node.subscriber("news")
            _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"seen"}"#)
            let seen = try await first.nextNotification()
            await first.close()
            for title in ["missed-1", "missed-2"] {
                _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"\#(title)"}"#)
            }

            // One client recovers what it missed, another subscribes plainly at the latest.
            let back = try await node.connect()
            try await back.send(.subscribe(channel: "news", since: seen.position))
            let resumed = try await back.next { if case .subscribed = $0 { true } else { false } }
            guard case .subscribed(_, _, _, let recovery) = resumed else { throw TestWebSocket.UnexpectedMessage(message: resumed) }
            #expect(recovery == .init(recovered: true, replayed: 2))
            #expect(try await back.nextNotification().title == "missed-1")
            #expect(try await back.nextNotification().title == "missed-2")
            let plain = try await node.subscriber("news")

            // The late copy of missed-2, then a new publication: only the new one goes out.
            broker.deliverLastAgain("news")
            _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"live"}"#)
            #expect(try await back.nextNotification().title == "live")
            #expect(try await plain.nextNotification().title == "live")
        }
    }
}

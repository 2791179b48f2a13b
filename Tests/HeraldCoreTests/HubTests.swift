import Dispatch
import HeraldCore
import HeraldProtocol
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

/// The Hub and its loop shards with fake connections on embedded event loops: memberships,
/// interest, fan-out and batching, without sockets.
@Suite struct HubTests {
    /// A connection that records what the Hub writes to it.
    final class FakeConnection: HubConnection {
        let clientID: String
        let sequence: UInt64
        var written: [String] = []
        var flushes = 0
        var unflushed = false
        var shutdownFrames = 0
        var signals: [ConnectionSignal] = []

        /// Counts the payloads this fake transport framed, shared by the connections of a test.
        let framings: FramingCount

        init(_ id: String, sequence: UInt64, framings: FramingCount = FramingCount()) {
            self.clientID = id
            self.sequence = sequence
            self.framings = framings
        }

        func write(_ delivery: Delivery) -> WriteResult {
            let frame = delivery.framed(by: FakeConnection.self) { payload in
                framings.count.add(1, ordering: .relaxed)
                return payload
            }
            written.append(String(buffer: frame))
            defer { unflushed = true }
            return .written(firstSinceFlush: !unflushed)
        }

        func flush() {
            unflushed = false
            flushes += 1
        }

        func send(_ delivery: Delivery) -> Bool {
            _ = write(delivery)
            flush()
            return true
        }

        func heartbeat(now: NIODeadline) {}
        func shutdown(with message: ServerMessage) { shutdownFrames += 1 }

        func info() -> ClientInfo {
            ClientInfo(id: clientID, name: nil, connectedAt: "", subscriptions: [], node: "test")
        }

        var member: PresenceMember { PresenceMember(clientId: clientID, user: nil, name: nil, node: "test", connectedAt: "") }

        func handle(_ signal: ConnectionSignal) { signals.append(signal) }

    }

    final class FramingCount: Sendable {
        let count = Atomic<Int>(0)
    }

    /// Records interest changes; confirms every subscription at once.
    final class RecordingBroker: Broker, @unchecked Sendable {
        let changes = Mutex<[String]>([])
        var kind: String { "recording" }
        var status: BrokerStatus { .up }
        func attach(_ sink: any PublicationSink) {}
        func publish(_ publication: Publication, on loop: any EventLoop) -> EventLoopFuture<PublishReceipt> {
            loop.makeSucceededFuture(PublishReceipt(id: publication.id, position: nil))
        }
        func publishTransient(_ publication: Publication) async throws(BrokerError) {}
        func send(_ signal: ConnectionSignal, to channel: String) async throws(BrokerError) {}
        func history(of channel: String, after offset: Int64?, limit: Int) async throws(BrokerError) -> HistoryPage {
            HistoryPage(latest: nil, publications: [], oldest: 0)
        }
        func setInterest(in channel: String, _ interested: Bool) {
            changes.withLock { $0.append("\(interested ? "+" : "-")\(channel)") }
        }
        func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
            loop.makeSucceededVoidFuture()
        }
        func run() async throws {}
    }

    /// Two embedded loops as one group: two shards, driven by hand.
    final class TwoLoops: EventLoopGroup, @unchecked Sendable {
        let loops = [EmbeddedEventLoop(), EmbeddedEventLoop()]
        func next() -> any EventLoop { loops[0] }
        func makeIterator() -> EventLoopIterator { EventLoopIterator(loops) }
        func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
            callback(nil)
        }
        func run() { for loop in loops { loop.run() } }
    }

    func publication(_ channel: String, _ text: String, excluding: String? = nil) -> Publication {
        Publication(channel: channel, payload: ByteBuffer(string: text), excludedClient: excluding)
    }

    @Test func theBrokerHearsOfAChannelsFirstSubscriberAndItsLast() {
        let loops = TwoLoops()
        let broker = RecordingBroker()
        let hub = Hub(nodeID: "n", broker: broker, eventLoopGroup: loops)
        let (a, b) = (FakeConnection("a", sequence: 1), FakeConnection("b", sequence: 2))
        hub.register(a, on: loops.loops[0])
        hub.register(b, on: loops.loops[1])
        #expect(hub.subscribe(a, to: "news", on: loops.loops[0]).localCount == 1)
        #expect(hub.subscribe(b, to: "news", on: loops.loops[1]).localCount == 2)
        #expect(hub.subscriberCount("news") == 2)
        hub.unsubscribe(a, from: "news", on: loops.loops[0])
        #expect(broker.changes.withLock { $0 } == ["+news"])
        hub.unregister(b, channels: ["news"], on: loops.loops[1])
        #expect(broker.changes.withLock { $0 } == ["+news", "-news"])
        #expect(hub.channelCounts().isEmpty)
        #expect(hub.channelCount == 0)
    }

    @Test func aPublicationReachesEverySubscriberOnEveryLoopButTheExcludedOne() {
        let loops = TwoLoops()
        let hub = Hub(nodeID: "n", broker: RecordingBroker(), eventLoopGroup: loops)
        let framings = FramingCount()
        let connections = (1...4).map { FakeConnection("c\($0)", sequence: UInt64($0), framings: framings) }
        for (index, connection) in connections.enumerated() {
            let loop = loops.loops[index % 2]
            hub.register(connection, on: loop)
            _ = hub.subscribe(connection, to: "chat", on: loop)
        }
        let other = FakeConnection("elsewhere", sequence: 9)
        hub.register(other, on: loops.loops[1])
        _ = hub.subscribe(other, to: "other", on: loops.loops[1])

        hub.deliver(publication("chat", "hello", excluding: "c3"))
        loops.run()
        #expect(connections.map(\.written) == [["hello"], ["hello"], [], ["hello"]])
        #expect(other.written.isEmpty)
        #expect(hub.messagesDelivered == 3)
        // The Hub hands out the payload; the transport framed it once per loop, not once per
        // subscriber.
        #expect(framings.count.load(ordering: .relaxed) == 2)
    }

    @Test func queuedPublicationsAreWrittenInOrderAndFlushedOncePerConnection() {
        let loops = TwoLoops()
        let hub = Hub(nodeID: "n", broker: RecordingBroker(), eventLoopGroup: loops)
        let connection = FakeConnection("a", sequence: 1)
        hub.register(connection, on: loops.loops[0])
        _ = hub.subscribe(connection, to: "x", on: loops.loops[0])
        _ = hub.subscribe(connection, to: "y", on: loops.loops[0])
        for text in ["1", "2", "3"] { hub.deliver(publication(text == "2" ? "y" : "x", text)) }
        loops.run()
        #expect(connection.written == ["1", "2", "3"])
        #expect(connection.flushes == 1)
        // One publication alone is written and flushed at once.
        hub.deliver(publication("x", "4"))
        loops.run()
        #expect(connection.written.last == "4")
        #expect(connection.flushes == 2)
    }

    @Test func aChannelWithoutLocalSubscribersQueuesNothing() {
        let loops = TwoLoops()
        let hub = Hub(nodeID: "n", broker: RecordingBroker(), eventLoopGroup: loops)
        let connection = FakeConnection("a", sequence: 1)
        hub.register(connection, on: loops.loops[0])
        _ = hub.subscribe(connection, to: "x", on: loops.loops[0])
        hub.unsubscribe(connection, from: "x", on: loops.loops[0])
        hub.deliver(publication("x", "late"))
        loops.run()
        #expect(connection.written.isEmpty)
        #expect(hub.messagesDelivered == 0)
    }

    @Test func shutdownReachesEveryConnection() {
        let loops = TwoLoops()
        let hub = Hub(nodeID: "n", broker: RecordingBroker(), eventLoopGroup: loops)
        let connections = (1...3).map { FakeConnection("c\($0)", sequence: UInt64($0)) }
        for (index, connection) in connections.enumerated() { hub.register(connection, on: loops.loops[index % 2]) }
        hub.shutdownConnections { .serverShutdown(message: "bye") }
        loops.run()
        #expect(connections.map(\.shutdownFrames) == [1, 1, 1])
    }

    /// Records membership changes as "+channel:client" and "-channel:client".
    final class MembershipLog: MembershipObserver, @unchecked Sendable {
        let events = Mutex<[String]>([])
        func joined(_ channel: String, _ member: PresenceMember) { events.withLock { $0.append("+\(channel):\(member.clientId)") } }
        func left(_ channel: String, _ member: PresenceMember) { events.withLock { $0.append("-\(channel):\(member.clientId)") } }
        func updated(_ member: PresenceMember, channels: [String]) {}
    }

    @Test func aUsersConnectionsShareItsPrivateChannelWhichFiguresAndObserversLeaveOut() {
        let loops = TwoLoops()
        let broker = RecordingBroker()
        let hub = Hub(nodeID: "n", broker: broker, eventLoopGroup: loops)
        let log = MembershipLog()
        hub.addMembershipObserver(log)
        let (phone, laptop, other) = (FakeConnection("p", sequence: 1), FakeConnection("l", sequence: 2), FakeConnection("o", sequence: 3))
        hub.register(phone, on: loops.loops[0])
        hub.register(laptop, on: loops.loops[1])
        hub.register(other, on: loops.loops[0])
        hub.identify(phone, as: "ada", on: loops.loops[0])
        hub.identify(laptop, as: "ada", on: loops.loops[1])
        hub.identify(laptop, as: "ada", on: loops.loops[1])  // once per connection
        hub.identify(other, as: "bob", on: loops.loops[0])
        _ = hub.subscribe(phone, to: "news", on: loops.loops[0])

        let ada = UserChannel.name(of: "ada")
        #expect(hub.subscriberCount(ada) == 2)
        #expect(broker.changes.withLock { $0 }.contains("+\(ada)"))
        // Figures count public channels only; observers hear of public memberships only.
        #expect(hub.channelCount == 1)
        #expect(log.events.withLock { $0 } == ["+news:p"])

        hub.deliver(.disconnect, to: ada)
        hub.deliver(Publication(channel: ada, payload: ByteBuffer(string: "for ada")))
        loops.run()
        #expect(phone.signals == [.disconnect])
        #expect(laptop.signals == [.disconnect])
        #expect(other.signals.isEmpty)
        #expect(phone.written == ["for ada"] && laptop.written == ["for ada"] && other.written.isEmpty)

        // Leaving the Hub leaves the user channel and every public one.
        hub.unregister(phone, channels: ["news"], on: loops.loops[0])
        hub.unregister(laptop, channels: [], on: loops.loops[1])
        #expect(hub.subscriberCount(ada) == 0)
        #expect(broker.changes.withLock { $0 }.contains("-\(ada)"))
        #expect(log.events.withLock { $0 } == ["+news:p", "-news:p"])
    }

    @Test func membersOfAChannelArePagedInClientIDOrderAcrossShards() async throws {
        // Real loops: the query hops to each shard's loop and waits for it.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        do {
            try await checkMembers(on: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    private func checkMembers(on group: MultiThreadedEventLoopGroup) async throws {
        let hub = Hub(nodeID: "n", broker: RecordingBroker(), eventLoopGroup: group)
        let loops = Array(group.makeIterator())
        let connections = ["d", "a", "c", "b"].enumerated().map { FakeConnection($1, sequence: UInt64($0 + 1)) }
        for (index, connection) in connections.enumerated() {
            let loop = loops[index % 2]
            // The fake is not Sendable; it is only touched on `loop` from here on.
            nonisolated(unsafe) let connection = connection
            try await loop.submit {
                hub.register(connection, on: loop)
                _ = hub.subscribe(connection, to: "room", on: loop)
            }.get()
        }
        let first = await hub.members(of: "room", after: nil, limit: 3)
        #expect(first.members.map(\.clientId) == ["a", "b", "c"])
        #expect(first.total == 4)
        let rest = await hub.members(of: "room", after: "c", limit: 3)
        #expect(rest.members.map(\.clientId) == ["d"])
        #expect(await hub.members(of: "empty", after: nil, limit: 3).total == 0)
    }
}

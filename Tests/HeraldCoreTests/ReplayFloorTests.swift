import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// A live publication that the subscribe's history page already held must not go out twice,
/// however late it arrives; everything after it must.
@Suite struct ReplayFloorTests {
    private func delivery(_ channel: String, _ offset: Int64?, epoch: String = "e1") -> Delivery {
        Delivery(channel: channel, position: offset.map { StreamPosition(offset: $0, epoch: epoch) }, payload: ByteBuffer())
    }

    private func admits(_ floor: inout ReplayFloor, _ delivery: Delivery) -> Bool { floor.admits(delivery) }

    @Test func aLatePublicationTheReplayCoveredIsDroppedAndTheNextOnesPass() {
        var floor = ReplayFloor()
        floor.set("news", to: StreamPosition(offset: 103, epoch: "e1"))
        #expect(!admits(&floor, delivery("news", 102)))
        #expect(!admits(&floor, delivery("news", 103)))
        #expect(admits(&floor, delivery("news", 104)))
        // Lifted: from here on the channel's publications are not compared at all.
        #expect(admits(&floor, delivery("news", 50)))
    }

    @Test func otherChannelsEventsWithoutAPositionAndNewEpochsPass() {
        var floor = ReplayFloor()
        floor.set("news", to: StreamPosition(offset: 10, epoch: "e1"))
        #expect(admits(&floor, delivery("sport", 3)))
        // A join or leave event carries no position and leaves the floor in place.
        #expect(admits(&floor, delivery("news", nil)))
        #expect(!admits(&floor, delivery("news", 9)))
        // Another epoch is newer than the page: it goes out and lifts the floor.
        #expect(admits(&floor, delivery("news", 1, epoch: "e2")))
        #expect(admits(&floor, delivery("news", 9)))
    }

    @Test func leavingTheChannelOrASubscribeWithoutPositionClearsTheFloor() {
        var floor = ReplayFloor()
        floor.set("news", to: StreamPosition(offset: 10, epoch: "e1"))
        floor.remove("news")
        #expect(admits(&floor, delivery("news", 5)))
        floor.set("news", to: StreamPosition(offset: 10, epoch: "e1"))
        floor.set("news", to: nil)
        #expect(admits(&floor, delivery("news", 5)))
    }
}

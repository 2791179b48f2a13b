import HeraldCore
import HeraldProtocol
import Testing

/// The rule that keeps a node's restart from becoming a storm of join/leave events.
@Suite struct JoinLeaveBatcherTests {
    func member(_ id: String) -> PresenceMember {
        PresenceMember(clientId: id, user: nil, name: nil, node: "n", connectedAt: "")
    }

    @Test func aWindowsEventsGoOutInOrderPerChannel() {
        var batcher = JoinLeaveBatcher(maxEventsPerChannel: 4)
        let first = batcher.joined("a", member("1"))
        let second = batcher.joined("b", member("2"))
        let third = batcher.left("a", member("1"))
        // Only the first event of a window asks for a flush.
        #expect(first && !second && !third)
        let announcements = batcher.flush()
        #expect(announcements == [
            .events(channel: "a", [.join(channel: "a", member: member("1")), .leave(channel: "a", member: member("1"))]),
            .events(channel: "b", [.join(channel: "b", member: member("2"))]),
        ])
        #expect(batcher.isEmpty)
        let nothing = batcher.flush()
        #expect(nothing.isEmpty)
        // The next event starts a new window.
        let next = batcher.left("b", member("2"))
        #expect(next)
    }

    @Test func pastTheLimitAChannelGetsOneSummaryAndKeepsOnlyCounts() {
        var batcher = JoinLeaveBatcher(maxEventsPerChannel: 3)
        for index in 0..<10 { _ = batcher.left("crowd", member("\(index)")) }
        _ = batcher.joined("crowd", member("x"))
        _ = batcher.joined("quiet", member("y"))
        let announcements = batcher.flush()
        #expect(announcements == [
            .changed(channel: "crowd", joined: 1, left: 10),
            .events(channel: "quiet", [.join(channel: "quiet", member: member("y"))]),
        ])
    }

    @Test func channelPatternsMatchNamesAndPrefixes() {
        let pattern = ChannelPattern(" rooms:*, lobby ,,")
        #expect(pattern.matches("lobby") && pattern.matches("rooms:1") && pattern.matches("rooms:"))
        #expect(!pattern.matches("lobby2") && !pattern.matches("room"))
        #expect(ChannelPattern("*").matches("anything"))
        #expect(ChannelPattern("").isEmpty && !ChannelPattern("").matches("x"))
    }
}

@testable import HeraldCore
import Testing

/// The dense member list fan-out walks: swap-removal must keep every other member reachable
/// exactly once, whatever the order of joins and leaves.
@Suite struct ChannelMembersTests {
    typealias Fake = HubTests.FakeConnection

    private func ids(_ members: ChannelMembers) -> [String] { members.connections.map(\.clientID).sorted() }

    @Test func removingFromTheMiddleKeepsEveryOtherMember() {
        let connections = (1...5).map { Fake("c\($0)", sequence: UInt64($0)) }
        var members = ChannelMembers()
        for connection in connections { members.insert(connection) }
        members.remove(connections[1])
        #expect(ids(members) == ["c1", "c3", "c4", "c5"])
        // The member moved into the hole can still be removed by its own slot.
        members.remove(connections[4])
        members.remove(connections[0])
        #expect(ids(members) == ["c3", "c4"])
        members.remove(connections[3])
        members.remove(connections[2])
        #expect(members.isEmpty)
    }

    @Test func insertTwiceAndRemoveAStrangerChangeNothing() {
        let a = Fake("a", sequence: 1), b = Fake("b", sequence: 2), stranger = Fake("x", sequence: 9)
        var members = ChannelMembers()
        members.insert(a)
        members.insert(a)
        members.insert(b)
        members.remove(stranger)
        #expect(ids(members) == ["a", "b"])
        members.remove(a)
        members.remove(a)
        #expect(ids(members) == ["b"])
    }

    @Test func churnMatchesASet() {
        var generator = SystemRandomNumberGenerator()
        let pool = (0..<64).map { Fake("c\($0)", sequence: UInt64($0)) }
        var members = ChannelMembers()
        var expected = Set<String>()
        for _ in 0..<2000 {
            let connection = pool.randomElement(using: &generator)!
            if Bool.random(using: &generator) {
                members.insert(connection)
                expected.insert(connection.clientID)
            } else {
                members.remove(connection)
                expected.remove(connection.clientID)
            }
            #expect(members.connections.count == expected.count)
        }
        #expect(ids(members) == expected.sorted())
    }
}

import HeraldRedis
import RedisBridge
import Testing

/// The slot function and the slot map, against values a real Redis gives
/// (`CLUSTER KEYSLOT "{name}"` on redis-server 7.0).
@Suite struct ClusterSlotTests {
    @Test func slotsAreRedisOwn() {
        #expect(ClusterSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        let expected = ["foo": 12182, "bar": 5061, "news": 5161, "chat:42": 8175, "ü": 9552, "123456789": 12739]
        for (tag, slot) in expected { #expect(ClusterSlot.slot(ofTag: tag) == slot, "\(tag)") }
    }

    @Test func theMapSaysWhichMasterServesEachSlot() throws {
        let reply = RESPValue.array([
            .array([.integer(0), .integer(5460), .array([.bulkString(.init(string: "10.0.0.1")), .integer(7000), .bulkString(.init(string: "a"))])]),
            // An empty host is the node that was asked.
            .array([.integer(5461), .integer(10922), .array([.bulkString(.init(string: "")), .integer(7001)])]),
            .array([.integer(12000), .integer(16383), .array([.bulkString(.init(string: "10.0.0.3")), .integer(7002)])]),
        ])
        let map = try #require(ClusterSlotMap.parse(clusterSlots: reply, askedHost: "10.0.0.9"))
        #expect(map.owner(of: 0)?.description == "10.0.0.1:7000")
        #expect(map.owner(of: 5461)?.description == "10.0.0.9:7001")
        #expect(map.owner(ofChannel: "news")?.description == "10.0.0.1:7000")
        #expect(map.owner(of: 11000) == nil)
        #expect(map.uncovered == 12000 - 10923)
        #expect(map.masters.count == 3)
        #expect(ClusterSlotMap.parse(clusterSlots: .array([.integer(1)]), askedHost: "") == nil)
        #expect(ClusterSlotMap.parse(clusterSlots: .simpleString("OK"), askedHost: "") == nil)
    }
}

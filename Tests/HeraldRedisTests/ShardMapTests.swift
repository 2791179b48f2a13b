import HeraldRedis
import Testing

@Suite struct ShardMapTests {
    /// The documented vectors (docs/redis.md): FNV-1a 64 of the name, then the shard for
    /// 1, 2, 3, 4, 5 and 10 shards. Computed independently (a Python transcription of the
    /// paper's algorithm); the FNV values for "", "a" and "foobar" are the published ones.
    static let vectors: [(String, UInt64, [Int])] = [
        ("", 0xcbf2_9ce4_8422_2325, [0, 1, 1, 1, 1, 1]),
        ("a", 0xaf63_dc4c_8601_ec8c, [0, 1, 2, 2, 2, 2]),
        ("foobar", 0x8594_4171_f739_67e8, [0, 1, 1, 1, 1, 5]),
        ("news", 0xe549_5bba_a03a_6526, [0, 1, 2, 3, 3, 3]),
        ("chat:42", 0x7f9e_ba46_6480_a665, [0, 1, 1, 1, 1, 1]),
        ("user:ada", 0xbf38_9e22_3df7_0b84, [0, 0, 0, 3, 3, 7]),
        ("ticker:AAPL", 0x3e10_11f3_8262_9ed1, [0, 1, 2, 3, 3, 3]),
        ("ÜTF-8", 0x54af_9434_7d14_3a59, [0, 0, 0, 0, 0, 8]),
    ]

    @Test func matchesTheDocumentedVectors() {
        for (name, hash, shards) in Self.vectors {
            #expect(ShardMap.fnv1a64(name) == hash, "FNV-1a of \(name)")
            #expect([1, 2, 3, 4, 5, 10].map { ShardMap(count: $0).shard(of: name) } == shards, "shards of \(name)")
        }
    }

    @Test func channelsSpreadEvenlyAndAnAppendedShardTakesOnlyItsShare() {
        let names = (0..<10_000).map { "ch\($0)" }
        let three = ShardMap(count: 3), four = ShardMap(count: 4)
        var perShard = [0, 0, 0]
        var moved = 0
        for name in names {
            let before = three.shard(of: name), after = four.shard(of: name)
            perShard[before] += 1
            if before != after {
                moved += 1
                #expect(after == 3, "\(name) moved between old shards")
            }
        }
        // 10,000 / 3 each, within 5 %; about a quarter moves, all of it to the new shard.
        #expect(perShard.allSatisfy { abs($0 - 3333) < 170 }, "\(perShard)")
        #expect((2300...2700).contains(moved), "\(moved) of 10000 moved")
    }
}

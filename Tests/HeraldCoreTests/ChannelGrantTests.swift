import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@Suite struct ChannelGrantTests {
    @Test func exactNamesAndPrefixes() throws {
        let grant = try ChannelGrant(["news", "orders:*", "private:team-a:*"])
        #expect(grant.allows("news"))
        #expect(!grant.allows("news2"))
        #expect(grant.allows("orders:1"))
        #expect(!grant.allows("orders"))
        #expect(grant.allows("private:team-a:alerts"))
        #expect(!grant.allows("private:team-b:alerts"))
        #expect(try ChannelGrant(["*"]).allows("private:anything"))
        #expect(!ChannelGrant.none.allows("news"))
    }

    @Test func invalidClaimsAreRefused() {
        #expect(throws: ProtocolError.self) { try ChannelGrant(["bad name"]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant(["a*b*"]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant([""]) }
        #expect(throws: ProtocolError.self) { try ChannelGrant(Array(repeating: "x", count: ChannelGrant.maxEntries + 1)) }
    }
}

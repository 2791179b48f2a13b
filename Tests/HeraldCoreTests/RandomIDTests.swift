import Foundation
import HeraldCore
import HeraldSupport
import Testing

@Suite struct RandomIDTests {
    @Test func isAVersion4UUIDInLowercase() throws {
        for _ in 0..<200 {
            let id = RandomID.make()
            let parsed = try #require(UUID(uuidString: id), "\(id)")
            #expect(parsed.uuidString.lowercased() == id)
            let bytes = Array(id.utf8)
            #expect(bytes[14] == UInt8(ascii: "4"))
            #expect([UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[19]))
        }
    }

    @Test func doesNotRepeat() {
        let ids = (0..<10_000).map { _ in RandomID.make() }
        #expect(Set(ids).count == ids.count)
    }
}

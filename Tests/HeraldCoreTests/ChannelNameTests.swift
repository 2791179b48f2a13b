import HeraldCore
import HeraldProtocol
import Testing

@Suite struct ChannelNameTests {
    @Test(arguments: ["news", "a", "orders:eu-west.1", "private:ops", "A_B-C:D.E", String(repeating: "x", count: 128)])
    func acceptsNames(_ name: String) {
        #expect(ChannelName.isValid(name))
    }

    @Test(arguments: ["", " ", "news feed", "a/b", "ünï", "emoji🔔", "tab\t", "nul\u{0}", String(repeating: "x", count: 129)])
    func rejectsNames(_ name: String) {
        #expect(!ChannelName.isValid(name))
        #expect(ChannelName.problem(with: name) != nil)
    }
}

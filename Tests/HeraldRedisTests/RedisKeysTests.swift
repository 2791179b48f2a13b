import NIOCore
import Testing

@testable import HeraldRedis

/// One key space: a channel's keys share its hash tag (one Redis Cluster slot), the
/// registry's share the prefix's, and a pub/sub channel reads back to its channel.
@Suite struct RedisKeysTests {
    let keys = RedisKeys(prefix: "herald")

    /// The hash tag Redis Cluster hashes: the text between the first `{` and the next `}`.
    func hashTag(_ key: ByteBuffer) -> String {
        let text = String(buffer: key)
        guard let open = text.firstIndex(of: "{"), let close = text[open...].firstIndex(of: "}"),
            text.index(after: open) < close
        else { return text }
        return String(text[text.index(after: open)..<close])
    }

    @Test func everyKeyOfAChannelCarriesTheChannelAsItsHashTag() {
        for channel in ["news", "chat:42", "#user:ada", "a.b-c_d"] {
            let all = [keys.pubsub(channel), keys.stream(channel), keys.meta(channel), keys.idempotency(channel, key: "k-1")]
                + keys.presence(channel)
            #expect(all.allSatisfy { hashTag($0) == channel }, "\(all.map { String(buffer: $0) })")
            #expect(Set(all.map { String(buffer: $0) }).count == all.count)
        }
        #expect(String(buffer: keys.stream("news")) == "herald:hist:{news}")
    }

    @Test func theRegistrysKeysShareOneSlotPerDeployment() {
        let registry = [keys.nodes, keys.node("n1"), keys.nodeChannels("n1"), keys.nodeClients("n2"), keys.nodeClientInfo("n3")]
        #expect(registry.allSatisfy { hashTag(ByteBuffer(string: $0)) == "herald" })
        #expect(keys.nodeChannels("n1").hasPrefix(keys.nodePrefix))
    }

    @Test func aPubSubChannelReadsBackToItsChannelAndNoOneElsesDoes() {
        for channel in ["news", "chat:42", "#user:ada"] {
            #expect(keys.channel(ofPubSub: keys.pubsub(channel)) == channel)
        }
        #expect(keys.channel(ofPubSub: ByteBuffer(string: "herald:ch:news")) == nil)
        #expect(keys.channel(ofPubSub: ByteBuffer(string: "other:ch:{news}")) == nil)
        #expect(keys.channel(ofPubSub: ByteBuffer(string: "herald:ch:{}")) == nil)
        #expect(RedisKeys(prefix: "h2").channel(ofPubSub: keys.pubsub("news")) == nil)
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@testable import HeraldRedis

/// How publications travel through Redis pub/sub, and what a reader accepts.
@Suite struct PublicationEnvelopeTests {
    let keys = RedisKeys(prefix: "h")

    func message(_ payload: String, channel: String = "news") -> PublicationEnvelope.Message? {
        PublicationEnvelope.decode(key: keys.pubsub(channel), payload: ByteBuffer(string: payload), keys: keys)
    }

    func decode(_ payload: String, channel: String = "news") -> Publication? {
        if case .publication(let publication) = message(payload, channel: channel) { publication } else { nil }
    }

    @Test func whatIsEncodedDecodesToTheSamePublication() {
        let plain = Publication(channel: "news", payload: ByteBuffer(string: #"{"a":1}"#), acceptedAtMicros: 1_700_000_000_000_123)
        let excluded = Publication(channel: "news", payload: ByteBuffer(string: "{}"), excludedClient: "c1", acceptedAtMicros: 5)
        // A join travels typed: no node has to look into its JSON to know what it is.
        let join = Publication(channel: "news", payload: ByteBuffer(string: #"{"type":"join"}"#), kind: .message(type: "join"))
        for publication in [plain, excluded, join] {
            let encoded = PublicationEnvelope.encode(publication)
            #expect(PublicationEnvelope.decode(key: keys.pubsub("news"), payload: encoded, keys: keys) == .publication(publication))
        }
        for signal in [ConnectionSignal.disconnect, .unsubscribe(channel: "rooms:1")] {
            let encoded = PublicationEnvelope.encode(signal)
            #expect(
                PublicationEnvelope.decode(key: keys.pubsub("#user:ada"), payload: encoded, keys: keys)
                    == .signal(signal, channel: "#user:ada"))
        }
    }

    @Test func positionedMessagesFromTheScriptAndOlderFormsAreRead() {
        let positioned = decode("#7 ep1 c9 123\n{\"x\":1}")
        #expect(positioned?.position == StreamPosition(offset: 7, epoch: "ep1"))
        #expect(positioned?.excludedClient == "c9")
        #expect(positioned?.acceptedAtMicros == 123)
        #expect(positioned.map { String(buffer: $0.payload) } == "{\"x\":1}")
        // Three fields (before the time was added) and fields a later version appends.
        #expect(decode("#7 ep1 \n{}")?.position?.offset == 7)
        #expect(decode("#7 ep1  99 future\n{}")?.acceptedAtMicros == 99)
        // A message of an earlier version without a type is a notification.
        #expect(decode("!c1 5\n{}")?.kind == .notification)
        #expect(decode("{\"bare\":true}")?.excludedClient == nil)
    }

    @Test func malformedMessagesAndForeignChannelsAreDropped() {
        #expect(message("#x ep 1\n{}") == nil)
        #expect(message("#7\n{}") == nil)
        #expect(message("!no newline") == nil)
        #expect(message("%reboot") == nil)
        #expect(message("%unsubscribe") == nil)
        #expect(PublicationEnvelope.decode(key: ByteBuffer(string: "other:news"), payload: ByteBuffer(string: "{}"), keys: keys) == nil)
        #expect(PublicationEnvelope.decode(key: ByteBuffer(string: "h:ch:news"), payload: ByteBuffer(string: "{}"), keys: keys) == nil)
    }
}

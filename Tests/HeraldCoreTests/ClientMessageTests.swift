import HeraldCore
import HeraldProtocol
import Testing

@Suite struct ClientMessageTests {
    func decode(_ text: String) throws(ProtocolError) -> ClientMessage {
        try ClientMessage.decode(Array(text.utf8))
    }

    func code(_ text: String) -> ErrorCode? {
        do {
            _ = try decode(text)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func decodesEveryMessageType() throws {
        #expect(try decode(#"{"type":"subscribe","channel":"news"}"#) == .subscribe(channel: "news"))
        #expect(try decode(#"{"type":"unsubscribe","channel":"news"}"#) == .unsubscribe(channel: "news"))
        #expect(try decode(#"{"type":"set_name","name":"Alice"}"#) == .setName("Alice"))
        #expect(try decode(#"{"type":"list_subscriptions"}"#) == .listSubscriptions)
        #expect(try decode(#"{"type":"ping"}"#) == .ping)
        #expect(try decode(#"{"type":"pong"}"#) == .pong)
        #expect(try decode(#"{"type":"message","channel":"chat","text":"hi"}"#) == .message(channel: "chat", text: "hi"))
    }

    @Test func ignoresUnknownFields() throws {
        #expect(try decode(#"{"type":"ping","extra":[1,2,3]}"#) == .ping)
    }

    @Test func mapsEveryMalformedInputToItsCode() {
        #expect(code("not json") == .invalidJSON)
        #expect(code(#"{"type":"subscribe""#) == .invalidJSON)
        #expect(code("") == .invalidJSON)
        #expect(code("[1,2]") == .invalidMessage)
        #expect(code("{}") == .missingField)
        #expect(code(#"{"type":42}"#) == .invalidField)
        #expect(code(#"{"type":"dance"}"#) == .unknownType)
        #expect(code(#"{"type":"subscribe"}"#) == .missingField)
        #expect(code(#"{"type":"subscribe","channel":null}"#) == .missingField)
        #expect(code(#"{"type":"subscribe","channel":7}"#) == .invalidField)
        #expect(code(#"{"type":"message","channel":"a"}"#) == .missingField)
        #expect(code(#"{"type":"set_name","name":{"first":"A"}}"#) == .invalidField)
    }

    @Test func roundTripsThroughItsOwnEncoding() throws {
        let messages: [ClientMessage] = [
            .subscribe(channel: "a"), .unsubscribe(channel: "b"), .setName("n"), .listSubscriptions, .ping, .pong,
            .message(channel: "c", text: "t"),
        ]
        for message in messages {
            let bytes = try JSONEncoderForTests.encode(message)
            #expect(try ClientMessage.decode(bytes) == message)
        }
    }
}

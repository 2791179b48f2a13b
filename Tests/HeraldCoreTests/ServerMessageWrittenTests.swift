import HeraldProtocol
import NIOCore
import Testing

@testable import HeraldCore

/// `welcome` and `subscribed` are written without `JSONEncoder`; the bytes must be the ones it
/// writes (sorted keys, same escapes), so no client can tell.
@Suite struct ServerMessageWrittenTests {
    static let awkward = ["", "plain", "quote\"back\\slash/", "tab\tline\nfeed\r\u{8}\u{C}", "\u{1}\u{1F}\u{7F}", "héllo ✓ 🎉"]

    static func same(_ message: ServerMessage) -> Bool {
        guard let written = message.writtenJSON() else { return false }
        return Array(written.readableBytesView) == message.jsonBytes()
    }

    @Test func welcomeIsWrittenAsJSONEncoderWritesIt() {
        for text in Self.awkward {
            #expect(Self.same(.welcome(clientId: "c-\(text)", node: text, message: "Connected \(text)")), "\(text)")
        }
    }

    @Test func subscribedIsWrittenAsJSONEncoderWritesItWithEveryOptionalField() {
        let positions: [StreamPosition?] = [nil, StreamPosition(offset: 0, epoch: "e"), StreamPosition(offset: 9_007_199_254_740_993, epoch: "ep\"och")]
        let recoveries: [ServerMessage.Recovery?] = [
            nil, .init(recovered: true, replayed: 3), .init(recovered: false, replayed: 0, unread: 12), .init(recovered: true, replayed: 1, unread: 0),
        ]
        for channel in ["news", "chat:room-1", "a\\b"] {
            for count in [0, 1, 123_456] {
                for position in positions {
                    for recovery in recoveries {
                        let message = ServerMessage.subscribed(channel: channel, subscriberCount: count, position: position, recovery: recovery)
                        #expect(Self.same(message), "\(message)")
                    }
                }
            }
        }
    }

    @Test func otherMessagesGoThroughTheEncoder() {
        #expect(ServerMessage.unsubscribed(channel: "x").writtenJSON() == nil)
        #expect(Array(ServerFrame.message(.unsubscribed(channel: "x")).readableBytesView.dropFirst(2)) == ServerMessage.unsubscribed(channel: "x").jsonBytes())
    }
}

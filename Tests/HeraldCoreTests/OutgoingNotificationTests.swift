import Foundation
import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// ``OutgoingNotification`` is written by hand; clients decode it as ``HeraldNotification``.
@Suite struct OutgoingNotificationTests {
    static let awkward: [String] = [
        "", "plain", "quote \" backslash \\ slash /", "line\nbreak\r\ttab", "nul \u{0} bell \u{7} esc \u{1B} del \u{7F}",
        String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }), "é中😀", "\u{2028}\u{2029}", "\u{FEFF}bom",
    ]

    @Test(arguments: awkward) func decodesToTheSameNotification(_ text: String) throws {
        let data = try #require(RawJSON(validating: Array(#"{"k":[1,2.5,"x"],"n":null}"#.utf8)))
        let outgoing = OutgoingNotification(
            HeraldNotification(
                channel: "news", title: text, body: text, timestamp: "2026-11-22T00:00:00.000Z", id: "id-1",
                from: text, fromName: text, fromUser: text),
            data: data)
        let buffer = outgoing.encoded()
        let message = try ServerMessage.decode(buffer.readableBytesView)
        let expected = HeraldNotification(
            channel: "news", title: text, body: text,
            data: .object(["k": .array([.integer(1), .double(2.5), .string("x")]), "n": .null]),
            timestamp: "2026-11-22T00:00:00.000Z", id: "id-1", from: text, fromName: text, fromUser: text)
        #expect(message == .notification(expected))
        // The same members as the Codable form, in the documented order.
        let codable = ServerMessage.notification(expected).jsonBytes()
        #expect(try Set(keys(Array(buffer.readableBytesView))) == Set(keys(codable)))
        #expect(try keys(Array(buffer.readableBytesView)) == [
            "type", "channel", "title", "body", "data", "timestamp", "id", "from", "fromName", "fromUser",
        ])
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self).hasPrefix(#"{"type":"notification","channel":"news","#))
    }

    @Test func omitsAbsentFields() throws {
        let outgoing = OutgoingNotification(HeraldNotification(channel: "c", timestamp: "t", id: "i"))
        #expect(String(buffer: outgoing.encoded()) == #"{"type":"notification","channel":"c","timestamp":"t","id":"i"}"#)
    }

    /// Top-level keys in the order they appear.
    func keys(_ bytes: [UInt8]) throws -> [String] {
        let fields = try #require(try JSONReader.objectFields(bytes))
        return fields.sorted { $0.value.range.lowerBound < $1.value.range.lowerBound }.map(\.key)
    }
}

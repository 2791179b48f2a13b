import HeraldCore
import HeraldProtocol
import NIOCore

/// How a ``Publication`` travels through Redis pub/sub. The first byte tells the forms apart
/// (JSON always starts with `{`):
/// - `!<clientId> <µs>\n{…}` — without a position: the client that must not receive it (its
///   own `message`; empty for none) and when it was accepted (µs of Unix time);
/// - `#<offset> <epoch> <clientId> <µs>\n{…}` — with its position (history on); the JSON
///   carries the position too, spliced in by the publish script;
/// - `%disconnect` or `%unsubscribe <channel>` — a ``ConnectionSignal``, no JSON;
/// - `{…}` — the bare JSON (what earlier versions sent without history).
///
/// Header fields are separated by spaces and readers ignore fields they do not know, so a
/// later version may append one without breaking a rolling upgrade. With history the Lua
/// script in ``RedisScripts`` builds the message; every other form is encoded here.
enum PublicationEnvelope {
    static func encode(_ publication: Publication) -> ByteBuffer {
        switch publication.signal {
        case .disconnect?:
            return ByteBuffer(string: "%disconnect")
        case .unsubscribe(let channel)?:
            return ByteBuffer(string: "%unsubscribe \(channel)")
        case nil:
            var buffer = ByteBuffer(string: "!\(publication.excludedClient ?? "") \(publication.acceptedAtMicros)\n")
            var payload = publication.payload
            buffer.writeBuffer(&payload)
            return buffer
        }
    }

    /// Decodes a pub/sub message; `nil` when the Redis channel is not one of ours or the
    /// message is malformed.
    static func decode(key: ByteBuffer, payload: ByteBuffer, prefix: [UInt8]) -> Publication? {
        let keyBytes = key.readableBytesView
        guard keyBytes.count > prefix.count, keyBytes.starts(with: prefix) else { return nil }
        let channel = String(decoding: keyBytes.dropFirst(prefix.count), as: UTF8.self)
        var payload = payload
        switch payload.readableBytesView.first {
        case UInt8(ascii: "!"):
            guard let fields = readHeader(&payload) else { return nil }
            return Publication(
                channel: channel, payload: payload, excludedClient: fields[0].isEmpty ? nil : String(fields[0]),
                acceptedAtMicros: fields.count > 1 ? Int64(fields[1]) ?? 0 : 0)
        case UInt8(ascii: "#"):
            guard let fields = readHeader(&payload), fields.count >= 3, let offset = Int64(fields[0]), !fields[1].isEmpty
            else { return nil }
            return Publication(
                channel: channel, payload: payload, excludedClient: fields[2].isEmpty ? nil : String(fields[2]),
                position: StreamPosition(offset: offset, epoch: String(fields[1])),
                acceptedAtMicros: fields.count > 3 ? Int64(fields[3]) ?? 0 : 0)
        case UInt8(ascii: "%"):
            let words = String(buffer: payload).dropFirst().split(separator: " ", maxSplits: 1)
            switch (words.first, words.count) {
            case ("disconnect", 1): return Publication(channel: channel, payload: ByteBuffer(), signal: .disconnect)
            case ("unsubscribe", 2):
                return Publication(channel: channel, payload: ByteBuffer(), signal: .unsubscribe(channel: String(words[1])))
            default: return nil
            }
        default:
            return Publication(channel: channel, payload: payload)
        }
    }

    /// Reads the header line (without its first byte) and the newline; its space-separated
    /// fields, empty ones kept.
    private static func readHeader(_ payload: inout ByteBuffer) -> [Substring]? {
        guard let newline = payload.readableBytesView.firstIndex(of: UInt8(ascii: "\n")),
            let header = payload.readString(length: newline - payload.readerIndex)
        else { return nil }
        payload.moveReaderIndex(forwardBy: 1)
        return header.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
    }
}

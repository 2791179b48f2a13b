import HeraldCore
import HeraldProtocol
import NIOCore

/// How a ``Publication`` or a ``ConnectionSignal`` travels through Redis pub/sub. The first
/// byte tells the forms apart (JSON always starts with `{`):
/// - `!<clientId> <µs> [<type>] [<receipt>]\n{…}` — without a position: the client that must
///   not receive it (its own `message`; empty for none), when it was accepted (µs of Unix
///   time), for a message that is not a notification (``Publication/Kind/message(type:)``) its
///   type (else empty), and the receipt its publisher waits for (``ReceiptRequest/token``);
/// - `#<offset> <epoch> <clientId> <µs> [<receipt>]\n{…}` — with its position (history on); the
///   JSON carries the position too, spliced in by the publish script;
/// - `%disconnect` or `%unsubscribe <channel>` — a ``ConnectionSignal``, no JSON;
/// - `{…}` — the bare JSON of a notification (what earlier versions sent without history).
///
/// Header fields are separated by spaces and readers ignore fields they do not know, so a
/// later version may append one without breaking a rolling upgrade. With history the Lua
/// script in ``RedisScripts`` builds the message; every other form is encoded here.
enum PublicationEnvelope {
    /// What one pub/sub message carries.
    enum Message: Equatable {
        case publication(Publication)
        case signal(ConnectionSignal, channel: String)
    }

    static func encode(_ publication: Publication) -> ByteBuffer {
        var header = "!\(publication.excludedClient ?? "") \(publication.acceptedAtMicros)"
        if case .message(let type) = publication.kind { header += " \(type)" }
        if let receipt = publication.receipt {
            if case .notification = publication.kind { header += " " }
            header += " \(receipt.token)"
        }
        var buffer = ByteBuffer(string: header + "\n")
        var payload = publication.payload
        buffer.writeBuffer(&payload)
        return buffer
    }

    static func encode(_ signal: ConnectionSignal) -> ByteBuffer {
        switch signal {
        case .disconnect: ByteBuffer(string: "%disconnect")
        case .unsubscribe(let channel): ByteBuffer(string: "%unsubscribe \(channel)")
        }
    }

    /// Decodes a pub/sub message; `nil` when the Redis channel is not one of ours or the
    /// message is malformed.
    static func decode(key: ByteBuffer, payload: ByteBuffer, keys: RedisKeys) -> Message? {
        guard let channel = keys.channel(ofPubSub: key) else { return nil }
        var payload = payload
        switch payload.readableBytesView.first {
        case UInt8(ascii: "!"):
            guard let fields = readHeader(&payload) else { return nil }
            let kind: Publication.Kind = fields.count > 2 && !fields[2].isEmpty ? .message(type: String(fields[2])) : .notification
            return .publication(Publication(
                channel: channel, payload: payload, excludedClient: fields[0].isEmpty ? nil : String(fields[0]),
                acceptedAtMicros: fields.count > 1 ? Int64(fields[1]) ?? 0 : 0, kind: kind,
                receipt: fields.count > 3 ? ReceiptRequest(token: fields[3]) : nil))
        case UInt8(ascii: "#"):
            guard let fields = readHeader(&payload), fields.count >= 3, let offset = Int64(fields[0]), !fields[1].isEmpty
            else { return nil }
            return .publication(Publication(
                channel: channel, payload: payload, excludedClient: fields[2].isEmpty ? nil : String(fields[2]),
                position: StreamPosition(offset: offset, epoch: String(fields[1])),
                acceptedAtMicros: fields.count > 3 ? Int64(fields[3]) ?? 0 : 0,
                receipt: fields.count > 4 ? ReceiptRequest(token: fields[4]) : nil))
        case UInt8(ascii: "%"):
            let words = String(buffer: payload).dropFirst().split(separator: " ", maxSplits: 1)
            switch (words.first, words.count) {
            case ("disconnect", 1): return .signal(.disconnect, channel: channel)
            case ("unsubscribe", 2): return .signal(.unsubscribe(channel: String(words[1])), channel: channel)
            default: return nil
            }
        default:
            return .publication(Publication(channel: channel, payload: payload))
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

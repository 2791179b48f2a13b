import HeraldCore
import HeraldProtocol
import NIOCore

/// How a ``Publication`` travels through Redis pub/sub. The first byte tells the forms apart
/// (JSON always starts with `{`):
/// - `{…}` — the notification JSON as is (history off, nobody excluded);
/// - `!<clientId>\n{…}` — the same, to everyone but that client (its own `message`);
/// - `#<offset> <epoch> <clientId or nothing>\n{…}` — with its position (history on); the JSON
///   carries the position too, spliced in by the publish script.
///
/// Only the publish path without history encodes here; with history the Lua script in
/// ``RedisScripts`` builds the message.
enum PublicationEnvelope {
    static func encode(_ publication: Publication) -> ByteBuffer {
        guard let excluded = publication.excludedClient else { return publication.payload }
        var buffer = ByteBuffer(string: "!\(excluded)\n")
        var payload = publication.payload
        buffer.writeBuffer(&payload)
        return buffer
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
            guard let header = readHeader(&payload) else { return nil }
            return Publication(channel: channel, payload: payload, excludedClient: String(header.dropFirst()))
        case UInt8(ascii: "#"):
            guard let header = readHeader(&payload) else { return nil }
            let parts = header.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 3, let offset = Int64(parts[0]), !parts[1].isEmpty else { return nil }
            return Publication(
                channel: channel, payload: payload, excludedClient: parts[2].isEmpty ? nil : String(parts[2]),
                position: StreamPosition(offset: offset, epoch: String(parts[1])))
        default:
            return Publication(channel: channel, payload: payload)
        }
    }

    /// Reads the line before the JSON (and the newline).
    private static func readHeader(_ payload: inout ByteBuffer) -> String? {
        guard let newline = payload.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let header = payload.readString(length: newline - payload.readerIndex)
        payload.moveReaderIndex(forwardBy: 1)
        return header
    }
}

import HeraldCore
import NIOCore

/// How a ``Publication`` travels through Redis: the notification JSON as is, or — when a
/// client must be left out (its own `message`) — `!<clientId>\n` followed by the JSON.
/// JSON always starts with `{`, so the first byte tells the two apart.
enum PublicationEnvelope {
    static func encode(_ publication: Publication) -> ByteBuffer {
        guard let excluded = publication.excludedClient else { return publication.payload }
        var buffer = ByteBuffer(string: "!\(excluded)\n")
        var payload = publication.payload
        buffer.writeBuffer(&payload)
        return buffer
    }

    /// Decodes a pub/sub message; `nil` when the Redis channel is not one of ours.
    static func decode(key: ByteBuffer, payload: ByteBuffer, prefix: [UInt8]) -> Publication? {
        let keyBytes = key.readableBytesView
        guard keyBytes.count > prefix.count, keyBytes.starts(with: prefix) else { return nil }
        let channel = String(decoding: keyBytes.dropFirst(prefix.count), as: UTF8.self)
        var payload = payload
        guard payload.readableBytesView.first == UInt8(ascii: "!") else {
            return Publication(channel: channel, payload: payload)
        }
        guard let newline = payload.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let headerLength = newline - payload.readerIndex
        let header = payload.readString(length: headerLength) ?? "!"
        payload.moveReaderIndex(forwardBy: 1)
        return Publication(channel: channel, payload: payload, excludedClient: String(header.dropFirst()))
    }
}

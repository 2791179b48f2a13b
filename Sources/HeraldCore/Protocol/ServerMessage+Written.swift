import HeraldProtocol
import NIOCore

extension ServerMessage {
    /// The JSON of the two messages every connection gets (`welcome`, `subscribed`), written by
    /// ``JSONWriter`` byte for byte as `JSONEncoder` with sorted keys writes them; `nil` for
    /// every other message, which `jsonBytes()` encodes.
    ///
    /// A reconnect storm is connects and subscribes and little else: `JSONEncoder` for these
    /// two was 6 % of a connect's CPU after the handshake and the listener got cheaper.
    func writtenJSON() -> ByteBuffer? {
        switch self {
        case .welcome(let clientId, let node, let message):
            var writer = JSONWriter(capacity: 96 + clientId.utf8.count + node.utf8.count + message.utf8.count)
            writer.beginObject()
            writer.field("clientId", clientId)
            writer.field("message", message)
            writer.field("node", node)
            writer.field("type", "welcome")
            writer.endObject()
            return writer.buffer
        case .subscribed(let channel, let count, let position, let recovery):
            var writer = JSONWriter(capacity: 160 + channel.utf8.count)
            writer.beginObject()
            writer.field("channel", channel)
            writer.field("epoch", position?.epoch)
            if let position { writer.field("offset", Int(position.offset)) }
            if let recovery {
                writer.field("recovered", recovery.recovered)
                writer.field("replayed", recovery.replayed)
            }
            writer.field("subscriberCount", count)
            writer.field("type", "subscribed")
            if let unread = recovery?.unread { writer.field("unread", unread) }
            writer.endObject()
            return writer.buffer
        default:
            return nil
        }
    }
}

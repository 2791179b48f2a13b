import HeraldProtocol
import NIOCore

/// One message on its way from a publisher to the subscribers of a channel, on any node.
public struct Publication: Sendable {
    /// The channel (already validated by ``ChannelName``).
    public var channel: String
    /// The complete JSON text of the server message subscribers receive (a `notification`),
    /// encoded once by the publishing node.
    public var payload: ByteBuffer
    /// Client id that must not receive it: the WebSocket client that posted it with `message`.
    public var excludedClient: String?

    public init(channel: String, payload: ByteBuffer, excludedClient: String? = nil) {
        self.channel = channel
        self.payload = payload
        self.excludedClient = excludedClient
    }
}

/// Whoever takes delivered publications from a broker: the Hub.
public protocol PublicationSink: AnyObject, Sendable {
    /// Called for every publication of a channel this node has interest in. Must not block:
    /// brokers call it from their I/O threads.
    func deliver(_ publication: Publication)
}

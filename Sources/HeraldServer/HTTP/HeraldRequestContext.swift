import Hummingbird
import NIOCore

/// Request context of the REST API: Hummingbird's core storage plus the caller's address,
/// which the API-key middleware needs to tell loopback callers apart.
public struct HeraldRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection's event loop: an SSE stream lives on it like a WebSocket does.
    public let eventLoop: any EventLoop
    /// Completes when the client's connection closes (an SSE stream then ends at once).
    public let closeFuture: EventLoopFuture<Void>

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.eventLoop = source.channel.eventLoop
        self.closeFuture = source.channel.closeFuture
    }
}

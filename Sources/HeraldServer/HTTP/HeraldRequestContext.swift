import Hummingbird
import NIOCore

/// Request context of the REST API: Hummingbird's core storage plus the caller's address,
/// which the API-key middleware needs to tell loopback callers apart.
public struct HeraldRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}

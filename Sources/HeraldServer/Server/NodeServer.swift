import HummingbirdCore
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The node's listening socket: every accepted connection is set up synchronously on its own
/// event loop, and only an HTTP connection gets a Swift task.
///
/// Hummingbird's `Server` passes each accepted connection through an async sequence to a task
/// of its own, even a WebSocket that never needs one: a hop to the global executor and back,
/// and a task created and destroyed, per connection (the profile put Swift tasks at
/// 13.5 % of a connect's CPU, and a reconnect storm is nothing but connects). Here the child
/// channel initializer installs ``FirstRequestHandler`` and returns; a WebSocket is served by
/// plain handlers from then on, and an HTTP connection starts Hummingbird's request loop
/// (`handleHTTP`) in a task that runs on the connection's own loop.
///
/// Graceful shutdown follows Hummingbird's: NIO's `ServerQuiescingHelper` closes the listening
/// socket, tells every connection to finish (HTTP keep-alive connections close once idle;
/// WebSockets were already closed by ``ConnectionDrain``) and waits for them.
struct NodeServer: Service {
    let child: HeraldChildChannel
    let tls: NIOSSLContext?
    let host: String
    let port: Int
    let backlog: Int32
    let eventLoopGroup: any EventLoopGroup
    let onServerRunning: @Sendable (Int) async -> Void

    func run() async throws {
        let quiesce = ServerQuiescingHelper(group: eventLoopGroup)
        let child = self.child
        let tls = self.tls
        let listener = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(ChannelOptions.backlog, value: backlog)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            // As Hummingbird's: a peer's half-close is seen (a WebSocket then closes).
            // Reading is on: FirstRequestHandler pauses it while a handshake waits for its
            // token, and NIOAsyncChannel holds reads back while its request loop is behind.
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try child.setupNow(channel: channel).upgradeResult.whenSuccess(child.serve)
                }
            }
            .bind(host: host, port: port).get()
        await onServerRunning(listener.localAddress?.port ?? port)
        do {
            try await gracefulShutdown()
        } catch {
            // Cancelled rather than shut down gracefully: stop at once.
            try? await listener.close()
            throw error
        }
        let drained = listener.eventLoop.makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        try await drained.futureResult.get()
    }
}

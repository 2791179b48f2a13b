import HeraldSupport
import Logging
import NIOCore
import Synchronization

/// Keeps one Redis connection up: connects, runs `onConnect`, waits for the connection to
/// drop, and reconnects with ``Backoff`` — until its task is cancelled.
///
/// The current connection is readable from any thread; it is `nil` while disconnected, which
/// is how callers fail fast (a 503) instead of queueing work for a Redis that is not there.
public final class RedisSupervisor: Sendable {
    public let locator: any RedisLocator
    public let name: String
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)?
    private let onDropped: (@Sendable (ByteBuffer) -> Void)?
    private let onReconnect: @Sendable () -> Void
    private let commandTimeout: TimeAmount?
    private let current = Mutex<RedisConnection?>(nil)

    /// - Parameter onReconnect: called each time the connection is back after it was lost
    ///   (not for the first connection) — the reconnect metric.
    public convenience init(
        url: RedisURL, name: String, group: any EventLoopGroup, logger: Logger,
        onReconnect: @escaping @Sendable () -> Void = {},
        onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)? = nil
    ) {
        self.init(
            locator: FixedRedisLocator(url), name: name, group: group, logger: logger, onReconnect: onReconnect,
            onMessage: onMessage)
    }

    /// - Parameter commandTimeout: commands left without any reply this long close the
    ///   connection (and so fail), which the link then re-establishes.
    public init(
        locator: any RedisLocator, name: String, group: any EventLoopGroup, logger: Logger,
        commandTimeout: TimeAmount? = nil, onReconnect: @escaping @Sendable () -> Void = {},
        onMessage: (@Sendable (ByteBuffer, ByteBuffer) -> Void)? = nil,
        onDropped: (@Sendable (ByteBuffer) -> Void)? = nil
    ) {
        self.locator = locator
        self.onDropped = onDropped
        self.commandTimeout = commandTimeout
        self.name = name
        self.group = group
        self.logger = logger
        self.onReconnect = onReconnect
        self.onMessage = onMessage
    }

    /// The live connection, if any.
    public var connection: RedisConnection? {
        current.withLock { connection in
            guard let connection, connection.isActive else { return nil }
            return connection
        }
    }

    /// Runs until cancelled. `onConnect` runs on every (re)connection before the connection is
    /// published to callers, so that state can be restored first (re-subscribe, re-register).
    public func run(onConnect: @escaping @Sendable (RedisConnection) async throws -> Void = { _ in }) async {
        var backoff = Backoff()
        var everConnected = false
        while !Task.isCancelled {
            var url: RedisURL?
            do {
                let located = try await locator.locate()
                url = located
                let connection = try await RedisConnection.connect(
                    to: located, group: group, commandTimeout: commandTimeout, onMessage: onMessage, onDropped: onDropped)
                do {
                    try await locator.admit(connection, at: located)
                    // Replies never come from a Redis that is frozen or mid-shutdown (the
                    // kernel still accepts connections); closing fails the waiting replies.
                    try await withTaskCancellationHandler {
                        try await onConnect(connection)
                    } onCancel: {
                        connection.close()
                    }
                } catch {
                    connection.close()
                    throw error
                }
                current.withLock { $0 = connection }
                backoff.reset()
                logger.log(level: everConnected ? .notice : .info, "connected to Redis", metadata: ["redis": "\(located)", "link": "\(name)"])
                if everConnected { onReconnect() }
                everConnected = true
                await withTaskCancellationHandler {
                    try? await connection.closeFuture.get()
                } onCancel: {
                    connection.close()
                }
                current.withLock { $0 = nil }
                if Task.isCancelled { break }
                logger.warning("lost the connection to Redis; reconnecting", metadata: ["redis": "\(located)", "link": "\(name)"])
            } catch {
                if Task.isCancelled { break }
                logger.debug("cannot reach Redis", metadata: [
                    "redis": "\(url.map(\.description) ?? locator.description)", "link": "\(name)", "error": "\(error)",
                ])
            }
            await sleep(backoff.next())
        }
        current.withLock { connection in
            connection?.close()
            connection = nil
        }
    }

    /// Sleeps out a backoff delay, in slices, ending early when the locator's answer may have
    /// changed (a failover): the link goes to the new master at once.
    private func sleep(_ delay: Duration) async {
        let generation = locator.generation
        var left = delay
        while left > .zero, !Task.isCancelled, locator.generation == generation {
            let slice = min(left, Self.slice)
            try? await Task.sleep(for: slice)
            left -= slice
        }
    }

    private static let slice = Duration.milliseconds(50)
}

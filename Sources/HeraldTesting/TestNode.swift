import AsyncHTTPClient
import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOHTTP1
import ServiceLifecycle

/// The two ways a publish can come into a node: ``FastPublishHandler`` ahead of the router
/// (the default), or Hummingbird's router (`HERALD_FAST_PUBLISH=false`).
public enum PublishPath: String, Sendable, CaseIterable {
    case fast, router

    /// The way nodes started by ``withNode(_:broker:_:)`` in this task take publishes; `nil`:
    /// the default, the fast path.
    @TaskLocal public static var current: PublishPath?
}

/// A node running in this process on a free port, for the duration of a test.
public struct RunningNode: Sendable {
    public let port: Int
    public let node: HeraldNode
    let services: ServiceGroup
    /// Completes when the node's run has ended.
    let stopped: EventLoopFuture<Void>
    public var hub: Hub { node.hub }
    public var broker: any Broker { node.broker }
    public var configuration: HeraldConfiguration { node.configuration }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// WebSocket connections holding a slot on this node.
    public var connectionCount: Int { node.slots.count }

    /// Shuts the node down gracefully now (as SIGTERM would) and waits until it has stopped.
    public func stop() async throws {
        await services.triggerGracefulShutdown()
        try await withTimeout(.seconds(20), "node \(node.configuration.nodeID) to stop") { [stopped] in
            try await stopped.get()
        }
    }

    /// Subscribers of `channel` in the whole cluster, as this node sees them.
    public func clusterSubscriberCount(_ channel: String) async -> Int {
        await node.counts.clusterWide(channel)
    }

    /// Opens a WebSocket to this node and reads its `welcome`.
    public func connect(
        path: String = "/ws", headers: [(String, String)] = [], readWelcome: Bool? = nil
    ) async throws -> TestWebSocket {
        try await TestWebSocket.connect(port: port, path: path, headers: headers, readWelcome: readWelcome)
    }

    /// Connects and subscribes to `channels`, waiting for each `subscribed`.
    public func subscriber(_ channels: String...) async throws -> TestWebSocket {
        try await subscriber(channels)
    }

    public func subscriber(_ channels: [String]) async throws -> TestWebSocket {
        let client = try await connect()
        for channel in channels {
            try await client.send(.subscribe(channel: channel))
            _ = try await client.next { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
        }
        return client
    }

    public func request(
        _ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []
    ) async throws -> HTTPResult {
        try await HTTPResult.send(method, baseURL + path, body: body, headers: headers)
    }
}

/// Status and body of one REST call.
public struct HTTPResult: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var headers: HTTPHeaders

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body decoded as `T`.
    public func json<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body))
    }

    /// The body as a loose JSON object, for asserting exact field names and types.
    public func object() throws -> [String: JSONValue] {
        guard case .object(let object) = try json(JSONValue.self) else {
            throw TestWebSocket.UnexpectedFrame(description: "body is not a JSON object: \(text)")
        }
        return object
    }

    public static func send(
        _ method: HTTPMethod, _ url: String, body: String? = nil, headers: [(String, String)] = [],
        client: HTTPClient = .shared
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(ByteBuffer(string: body))
            if !request.headers.contains(name: "Content-Type") {
                request.headers.add(name: "Content-Type", value: "application/json")
            }
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        return HTTPResult(status: Int(response.status.code), body: Array(bytes.readableBytesView), headers: response.headers)
    }
}

/// Runs `count` nodes clustered through `redis` for the duration of `body`.
public func withCluster<T: Sendable>(
    _ count: Int, redis: RedisServer, prefix: String = "t" + String(UInt32.random(in: 0...UInt32.max), radix: 36),
    _ configure: @escaping @Sendable (inout HeraldConfiguration) -> Void = { _ in },
    _ body: ([RunningNode]) async throws -> T
) async throws -> T {
    try await withCluster(count, shards: [redis], prefix: prefix, configure, body)
}

/// Runs `count` nodes clustered through the Redis `shards` (in that order) for the duration
/// of `body`.
public func withCluster<T: Sendable>(
    _ count: Int, shards: [RedisServer], prefix: String = "t" + String(UInt32.random(in: 0...UInt32.max), radix: 36),
    _ configure: @escaping @Sendable (inout HeraldConfiguration) -> Void = { _ in },
    _ body: ([RunningNode]) async throws -> T
) async throws -> T {
    let urls = shards.map(\.url)
    func start(_ index: Int, _ nodes: [RunningNode]) async throws -> T {
        if index == count { return try await body(nodes) }
        return try await withNode({ configuration in
            configuration.redisShards = urls
            configuration.redisPrefix = prefix
            configuration.nodeID = "node\(index + 1)"
            configuration.registryInterval = .milliseconds(200)
            configure(&configuration)
        }) { node in
            try await waitUntil("node\(index + 1) to reach Redis") { node.broker.status.isUp }
            return try await start(index + 1, nodes + [node])
        }
    }
    return try await start(0, [])
}

/// Runs a node for the duration of `body`, then shuts it down gracefully; its event-loop
/// group is shut down too, however `body` ends.
///
/// - Parameter configure: adjusts the defaults (port 0 and a quiet log level are preset).
public func withNode<T: Sendable>(
    _ configure: (inout HeraldConfiguration) -> Void = { _ in },
    broker: (any Broker)? = nil,
    _ body: (RunningNode) async throws -> T
) async throws -> T {
    var configuration = HeraldConfiguration()
    configuration.port = 0
    configuration.threads = 2
    configuration.logLevel = ProcessInfo.processInfo.environment["HERALD_TEST_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    // Suites marked `.bothPublishPaths` run each test through the fast path and the router.
    configuration.fastPublish = PublishPath.current != .router
    configure(&configuration)
    let settings = configuration
    return try await HeraldNode.withEventLoopGroup(threads: settings.threads) { eventLoopGroup in
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let node = HeraldNode(configuration: settings, eventLoopGroup: eventLoopGroup, broker: broker) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        let group = ServiceGroup(services: [node], logger: node.logger)
        let stopped = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Void.self)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer {
                    portContinuation.finish()
                    stopped.succeed()
                }
                try await group.run()
            }
            do {
                // A node that cannot bind, or hangs starting, must fail the test, not hold it.
                let port = try await withTimeout(.seconds(20), "node \(settings.nodeID) to start listening") {
                    var iterator = ports.makeAsyncIterator()
                    guard let port = await iterator.next() else { throw TimeoutError(what: "node start (it stopped)") }
                    return port
                }
                let result = try await body(RunningNode(port: port, node: node, services: group, stopped: stopped.futureResult))
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

/// Runs `client` (its connect-and-reconnect loop) for the duration of `body`, which reads the
/// client's events with timeouts; the client is closed and its loop awaited afterwards,
/// however `body` ends.
public func withRunning<T: Sendable>(_ client: HeraldClient, _ body: (ClientEvents) async throws -> T) async throws -> T {
    let events = ClientEvents()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        group.addTask {
            for await event in client.events { events.inbox.push(event) }
            events.inbox.finish()
        }
        defer { client.close() }
        let result = try await body(events)
        client.close()
        try await group.waitForAll()
        return result
    }
}

/// A ``HeraldClient``'s events as a test reads them: each wait bounded.
public final class ClientEvents: Sendable {
    let inbox = Inbox<HeraldClient.Event>()

    /// The next event for which `predicate` holds, skipping the others.
    @discardableResult
    public func next(
        _ what: String, timeout: Duration = .seconds(10), where predicate: (HeraldClient.Event) -> Bool
    ) async throws -> HeraldClient.Event {
        let deadline = NIODeadline.now() + .nanoseconds(timeout.nanoseconds)
        while true {
            switch await inbox.next(timeout: deadline - .now()) {
            case .element(let event) where predicate(event): return event
            case .element: continue
            case .finished: throw TimeoutError(what: "\(what) (the client stopped)")
            case .timedOut: throw TimeoutError(what: what)
            }
        }
    }

    /// Every event until the client stops (``HeraldClient/close()``, or attempts used up).
    public func untilClosed(timeout: Duration = .seconds(20)) async throws -> [HeraldClient.Event] {
        let deadline = NIODeadline.now() + .nanoseconds(timeout.nanoseconds)
        var events: [HeraldClient.Event] = []
        while true {
            switch await inbox.next(timeout: deadline - .now()) {
            case .element(let event): events.append(event)
            case .finished: return events
            case .timedOut: throw TimeoutError(what: "the client to stop")
            }
        }
    }
}

/// Runs `body` with an HTTP client of its own (trusting `tls`), shut down afterwards however
/// `body` ends. Plain-HTTP tests use `HTTPClient.shared`, which lives as long as the process.
public func withHTTPClient<T: Sendable>(tls: TLSConfiguration, _ body: (HTTPClient) async throws -> T) async throws -> T {
    let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: .init(tlsConfiguration: tls))
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

import Foundation

/// Several `herald serve` processes clustered through one Redis — what `scripts/cluster`
/// runs — for tests that kill or restart nodes: a node in a child process can be SIGKILLed,
/// and restarted on the same port behind the same nginx.
public final class ProcessCluster: @unchecked Sendable {
    public let redis: RedisServer
    public let prefix: String
    /// Each node's port; a restarted node comes back on the same one.
    public let ports: [Int]
    private let arguments: [String]
    private let lock = NSLock()
    private var nodes: [ChildProcess?]

    init(redis: RedisServer, prefix: String, ports: [Int], arguments: [String], nodes: [ChildProcess]) {
        self.redis = redis
        self.prefix = prefix
        self.ports = ports
        self.arguments = arguments
        self.nodes = nodes
    }

    public var count: Int { ports.count }

    public func baseURL(_ index: Int) -> String { "http://127.0.0.1:\(ports[index])" }

    /// The process of node `index`, while it runs (a load generator may kill it itself).
    public func pid(_ index: Int) -> pid_t? {
        lock.withLock { nodes[index]?.pid }
    }

    /// Kills node `index` at once (SIGKILL): no goodbye to its clients, nothing deregistered.
    public func kill(_ index: Int) async {
        let node = lock.withLock { () -> ChildProcess? in
            defer { nodes[index] = nil }
            return nodes[index]
        }
        await node?.terminate()
    }

    /// Stops node `index` gracefully (SIGTERM) and waits for it to exit.
    public func stop(_ index: Int) async throws -> Int32 {
        guard let node = lock.withLock({ () -> ChildProcess? in defer { nodes[index] = nil }; return nodes[index] }) else { return 0 }
        node.signal(SIGTERM)
        return try await node.waitForExit(timeout: .seconds(15))
    }

    /// Starts node `index` again on its port and waits until it is ready.
    public func start(_ index: Int) async throws {
        let node = try await Self.launch(index: index, port: ports[index], redis: redis, prefix: prefix, arguments: arguments)
        lock.withLock { nodes[index] = node }
    }

    /// SIGTERM, then start again: one step of a rolling restart.
    public func restart(_ index: Int) async throws {
        let status = try await stop(index)
        guard status == 0 else { throw TimeoutError(what: "node\(index + 1) to exit cleanly (status \(status))") }
        try await start(index)
    }

    fileprivate func terminateAll() async {
        for node in lock.withLock({ nodes }) { await node?.terminate() }
    }

    static func launch(index: Int, port: Int, redis: RedisServer, prefix: String, arguments: [String]) async throws -> ChildProcess {
        let node = try NodeProcess.launch(
            [
                "serve", "--port", String(port), "--node-id", "node\(index + 1)", "--redis-url", "redis://127.0.0.1:\(redis.port)",
                "--redis-prefix", prefix, "--registry-interval", "0.3", "--trusted-proxies", "127.0.0.1",
            ] + arguments,
            environment: [:])
        do {
            try await waitUntil("node\(index + 1) on port \(port) to be ready", timeout: .seconds(20)) {
                guard node.isRunning else { throw TimeoutError(what: "node\(index + 1) (it exited: \(node.outputText))") }
                // Its own answer: a free port picked for it may have been taken meanwhile by a
                // node of a test running beside this one (which then answers, not this node).
                guard let ready = try? await HTTPResult.send(.GET, "http://127.0.0.1:\(port)/ready"), ready.status == 200 else { return false }
                return (try? ready.object()["node"]) == .string("node\(index + 1)")
            }
        } catch {
            await node.terminate()
            throw error
        }
        return node
    }
}

/// Runs `body` with `count` node processes clustered through `redis`, each on a port of its
/// own that it keeps across restarts; every node still running is killed afterwards, however
/// `body` ends.
public func withProcessCluster<T>(
    _ count: Int, redis: RedisServer, arguments: [String] = [],
    prefix: String = "p" + String(UInt32.random(in: 0...UInt32.max), radix: 36),
    _ body: (ProcessCluster) async throws -> T
) async throws -> T {
    var started: [ChildProcess] = []
    var ports: [Int] = []
    do {
        for index in 0..<count {
            let (port, node) = try await startOnFreePort { port in
                (port, try await ProcessCluster.launch(index: index, port: port, redis: redis, prefix: prefix, arguments: arguments))
            }
            ports.append(port)
            started.append(node)
        }
    } catch {
        for node in started { await node.terminate() }
        throw error
    }
    let cluster = ProcessCluster(redis: redis, prefix: prefix, ports: ports, arguments: arguments, nodes: started)
    do {
        let result = try await body(cluster)
        await cluster.terminateAll()
        return result
    } catch {
        await cluster.terminateAll()
        throw error
    }
}

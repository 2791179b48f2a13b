import Foundation
import NIOCore
import NIOPosix
import RedisBridge

/// A real `redis-server` on a free loopback port, owned by one test.
///
/// Start it with ``withRedis(_:)``, which stops it and removes its directory whatever the
/// test does. ``kill()`` and ``launch()`` restart it on the same port, for outage tests.
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    /// Extra `redis-server` arguments (`--replicaof 127.0.0.1 6379`).
    private let arguments: [String]
    private let directory: URL
    private var child: ChildProcess?
    private let lock = NSLock()

    public var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    init(port: Int, arguments: [String] = []) throws {
        self.port = port
        self.arguments = arguments
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-redis-\(port)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// (Re)starts the server on the same port and waits until it answers PING.
    public func launch() async throws {
        let child = try ChildProcess(
            try Self.executable(),
            [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", directory.path, "--protected-mode", "no",
            ] + arguments)
        lock.withLock { self.child = child }
        try await waitUntil("redis-server on port \(port)", timeout: .seconds(10)) {
            guard child.isRunning else {
                throw TimeoutError(what: "redis-server on port \(port) (it exited: \(child.outputText))")
            }
            return (try? await self.command("PING"))?.string == "PONG"
        }
    }

    /// Kills the server at once (SIGKILL): connections drop without goodbye.
    public func kill() async throws {
        guard let child = lock.withLock({ self.child }) else { return }
        await child.terminate()
        lock.withLock { self.child = nil }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: while frozen the kernel still accepts
    /// connections, but nothing is ever answered — the worst case for a client.
    public func freeze(_ frozen: Bool) {
        lock.withLock { self.child }?.signal(frozen ? SIGSTOP : SIGCONT)
    }

    /// Runs one command on a fresh connection (bounded: a frozen server fails it).
    public func command(_ arguments: String...) async throws -> RESPValue {
        try await command(arguments)
    }

    public func command(_ arguments: [String]) async throws -> RESPValue {
        try await Self.command(port: port, arguments)
    }

    /// Runs one command on a fresh connection to whatever listens on `port` (a sentinel).
    public static func command(port: Int, _ arguments: [String]) async throws -> RESPValue {
        let url = RedisURL(host: "127.0.0.1", port: port)
        return try await withTimeout(.seconds(5), "redis \(arguments.first ?? "")") {
            let connection = try await RedisConnection.connect(
                to: url, group: MultiThreadedEventLoopGroup.singleton, connectTimeout: .seconds(2))
            defer { connection.close() }
            return try await connection.send(arguments)
        }
    }

    func stop() async {
        try? await kill()
        try? FileManager.default.removeItem(at: directory)
    }

    static func executable() throws -> String {
        for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TimeoutError(what: "redis-server (install the redis-server package)")
    }
}

/// Runs `body` with a fresh redis-server, stopped afterwards however `body` ends.
/// - Parameter clusterBus: the server joins a Redis Cluster, whose bus listens 10000 above its
///   port: pick a port where that one is valid and free too.
public func withRedis<T>(arguments: [String] = [], clusterBus: Bool = false, _ body: (RedisServer) async throws -> T) async throws -> T {
    let server = try await startOnFreePort(pick: clusterBus ? freeClusterPort : freePort) { port in
        let server = try RedisServer(port: port, arguments: arguments)
        do {
            try await server.launch()
        } catch {
            await server.stop()
            throw error
        }
        return server
    }
    return try await using(server, stop: { await $0.stop() }, body)
}

/// Runs `body` with `count` fresh redis-servers (independent shards), all stopped afterwards
/// however `body` ends.
public func withRedisShards<T>(_ count: Int, _ body: ([RedisServer]) async throws -> T) async throws -> T {
    func start(_ servers: [RedisServer]) async throws -> T {
        if servers.count == count { return try await body(servers) }
        return try await withRedis { try await start(servers + [$0]) }
    }
    return try await start([])
}

/// Starts something that must be told its port up front (redis-server, nginx), retrying on
/// another free port if the one picked was taken meanwhile by someone else's bind.
func startOnFreePort<T>(attempts: Int = 5, pick: () throws -> Int = freePort, _ start: (Int) async throws -> T) async throws -> T {
    var lastError: (any Error)?
    for _ in 0..<attempts {
        do {
            return try await start(try pick())
        } catch {
            lastError = error
        }
    }
    throw lastError ?? TimeoutError(what: "a free port")
}

/// A TCP port that was free a moment ago on 127.0.0.1. The probe socket is close-on-exec, so
/// no child process started meanwhile keeps the port bound.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TimeoutError(what: "a socket for a free port") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw TimeoutError(what: "a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A free port whose Redis Cluster bus port (10000 above it) is valid and was free too.
func freeClusterPort() throws -> Int {
    for _ in 0..<100 {
        let port = try freePort()
        guard port + 10000 <= 65535 else { continue }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { continue }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port + 10000).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    throw TimeoutError(what: "a free port with a free cluster bus port")
}

/// Runs `body` with a loopback port that nothing listens on and nothing else can take: a
/// socket is bound to it (without listening) for the duration, so connections to it are
/// refused — unlike a port that was merely free a moment ago.
public func withClosedPort<T>(_ body: (Int) async throws -> T) async throws -> T {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TimeoutError(what: "a socket for a closed port") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw TimeoutError(what: "a closed port") }
    return try await body(Int(UInt16(bigEndian: address.sin_port)))
}

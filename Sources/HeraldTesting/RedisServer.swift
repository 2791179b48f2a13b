import Foundation
import NIOCore
import NIOPosix
import RedisBridge

/// A real `redis-server` on a free loopback port, owned by one test suite.
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    private let directory: URL
    private var process: Process?
    private let lock = NSLock()

    public var url: RedisURL { RedisURL(host: "127.0.0.1", port: port) }

    /// Starts a server and waits until it answers PING.
    public static func start() async throws -> RedisServer {
        let server = try RedisServer(port: freePort())
        try await server.launch()
        return server
    }

    init(port: Int) throws {
        self.port = port
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-redis-\(port)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// (Re)starts the server on the same port.
    public func launch() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.executable())
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory.path, "--protected-mode", "no",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }
        try await waitUntil("redis-server on port \(port)", timeout: .seconds(10)) {
            guard let connection = try? await RedisConnection.connect(to: self.url, group: MultiThreadedEventLoopGroup.singleton)
            else { return false }
            defer { connection.close() }
            return (try? await connection.send(["PING"]))?.string == "PONG"
        }
    }

    /// Kills the server at once (SIGKILL): connections drop without goodbye.
    public func kill() async throws {
        guard let process = lock.withLock({ self.process }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        try await waitUntil("redis-server to die") { !process.isRunning }
        lock.withLock { self.process = nil }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: while frozen the kernel still accepts
    /// connections, but nothing is ever answered — the worst case for a client.
    public func freeze(_ frozen: Bool) {
        guard let process = lock.withLock({ self.process }) else { return }
        Foundation.kill(process.processIdentifier, frozen ? SIGSTOP : SIGCONT)
    }

    /// Runs one command on a fresh connection.
    public func command(_ arguments: String...) async throws -> RESPValue {
        let connection = try await RedisConnection.connect(to: url, group: MultiThreadedEventLoopGroup.singleton)
        defer { connection.close() }
        return try await connection.send(arguments)
    }

    public func stop() async {
        try? await kill()
        try? FileManager.default.removeItem(at: directory)
    }

    deinit {
        if let process, process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    static func executable() throws -> String {
        for path in ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TimeoutError(what: "redis-server (install the redis-server package)")
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
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

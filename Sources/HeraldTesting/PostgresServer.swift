import Foundation
import Logging
import NIOPosix
import PostgresNIO

/// A real PostgreSQL (Debian's `postgresql` package) on a free loopback port, owned by one test:
/// `initdb` into a temporary directory, `postgres` started on it, everything removed afterwards.
///
/// PostgreSQL refuses to run as root: as root both run as the `postgres` user (`setpriv`,
/// which execs in place, so the child's pid is the server's and stopping it stops the server).
public final class PostgresServer: Sendable {
    public let port: Int
    private let directory: URL
    private let child: ChildProcess
    /// One pool for every helper call: a client per call left connections behind faster than
    /// they closed, until the server refused new ones and a query waited forever.
    private let client: PostgresClient
    private let clientTask: Task<Void, Never>
    public static let user = "herald"

    /// `postgres://herald@127.0.0.1:<port>/postgres?sslmode=disable`.
    public var url: String { "postgres://\(Self.user)@127.0.0.1:\(port)/postgres?sslmode=disable" }

    private init(port: Int, directory: URL, child: ChildProcess) {
        self.port = port
        self.directory = directory
        self.child = child
        var logger = Logger(label: "test-postgres")
        logger.logLevel = .critical
        var configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: port, username: Self.user, password: nil, database: "postgres", tls: .disable)
        configuration.options.maximumConnections = 16
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.clientTask = Task { await client.run() }
    }

    static func binary(_ name: String) throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/\(name)") {
            return "\(root)/\(version)/bin/\(name)"
        }
        throw TimeoutError(what: "\(name) (install the postgresql package)")
    }

    /// As root, the command runs as `postgres`.
    private static func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
        guard geteuid() == 0 else { return (executable, arguments) }
        return ("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", executable] + arguments)
    }

    static func start(port: Int) async throws -> PostgresServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-pg-\(port)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let data = directory.appendingPathComponent("data").path
        do {
            if geteuid() == 0 {
                let chown = try ChildProcess("/bin/chown", ["-R", "postgres:postgres", directory.path])
                _ = try await chown.waitForExit()
            }
            let (initdb, initArguments) = command(
                try binary("initdb"), ["-D", data, "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"])
            let setup = try ChildProcess(initdb, initArguments)
            guard try await setup.waitForExit(timeout: .seconds(60)) == 0 else {
                throw TimeoutError(what: "initdb (it failed: \(setup.outputText))")
            }
            let (postgres, arguments) = command(
                try binary("postgres"),
                ["-D", data, "-p", String(port), "-k", directory.path, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300"])
            let child = try ChildProcess(postgres, arguments)
            let server = PostgresServer(port: port, directory: directory, child: child)
            do {
                try await waitUntil("postgres on port \(port)", timeout: .seconds(30)) {
                    guard child.isRunning else { throw TimeoutError(what: "postgres on port \(port) (it exited: \(child.outputText))") }
                    return child.outputText.contains("database system is ready to accept connections")
                }
            } catch {
                await server.stop()
                throw error
            }
            return server
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// Fast shutdown (SIGINT), then whatever is left is killed; the directory is removed.
    func stop() async {
        clientTask.cancel()
        child.signal(SIGINT)
        _ = try? await child.waitForExit(timeout: .seconds(10))
        // Whatever is left of the group (backends of a server that did not stop in time).
        await child.terminate()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs `body` with the server's client (a pool), each call bounded in time.
    public func withClient<T: Sendable>(
        timeout: Duration = .seconds(60), _ body: @escaping @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = self.client
        return try await withTimeout(timeout, "PostgreSQL on port \(port)") { try await body(client) }
    }

    /// Runs SQL statements (no results), each on its own.
    public func execute(_ statements: String...) async throws {
        try await withClient(timeout: .seconds(20)) { client in
            for statement in statements { try await client.query(PostgresQuery(unsafeSQL: statement)) }
        }
    }

    /// The first column of every row of `sql`, as text.
    public func column(_ sql: String) async throws -> [String?] {
        try await withClient(timeout: .seconds(20)) { client in
            var values: [String?] = []
            for try await value in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(String?.self) { values.append(value) }
            return values
        }
    }
}

/// Runs `body` with a fresh PostgreSQL, stopped and removed afterwards however `body` ends.
public func withPostgres<T: Sendable>(_ body: (PostgresServer) async throws -> T) async throws -> T {
    let server = try await startOnFreePort { port in try await PostgresServer.start(port: port) }
    return try await using(server, stop: { await $0.stop() }, body)
}

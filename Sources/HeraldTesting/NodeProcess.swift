import Foundation

/// A `herald serve` process started from the built binary, for tests of process-level
/// behaviour (signals, exit codes, configuration errors).
public final class NodeProcess: Sendable {
    public let child: ChildProcess
    public let port: Int

    /// The `herald` executable next to the test bundle (`swift build` puts both in one folder).
    public static var executable: URL {
        get throws {
            let candidates = [
                Bundle.main.bundleURL.appendingPathComponent("herald"),
                Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("herald"),
                URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/herald")
                    .standardizedFileURL,
            ]
            guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
                throw TimeoutError(what: "the herald executable (run `swift build` first); looked in \(candidates.map(\.path))")
            }
            return found
        }
    }

    init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    /// Runs `herald` with `arguments` to completion; returns its exit status and output.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let child = try launch(arguments, environment: environment)
        let status = try await child.waitForExit(timeout: .seconds(20))
        try await waitUntil("the output of herald \(arguments.first ?? "") to end", timeout: .seconds(5)) { child.outputEnded }
        return (status, child.outputText)
    }

    static func launch(_ arguments: [String], environment: [String: String]) throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") && $0.key != "PORT" }
        env.merge(environment) { $1 }
        return try ChildProcess(try executable.path, arguments, environment: env)
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var outputText: String { child.outputText }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(15)) async throws -> Int32 {
        child.signal(signal)
        return try await child.waitForExit(timeout: timeout)
    }

    /// The port the node reports in its "listening" log line (text or JSON format).
    static func reportedPort(_ text: String) -> Int? {
        guard let range = text.range(of: #"address"?[=:]"?[0-9.]+:(\d+)"#, options: .regularExpression) else { return nil }
        return text[range].split(separator: ":").last.flatMap { Int($0) }
    }
}

/// Runs `body` with `herald serve --port 0 …` started and listening; the process is killed
/// afterwards if it still runs, however `body` ends.
public func withNodeProcess<T>(
    arguments: [String] = [], environment: [String: String] = [:], _ body: (NodeProcess) async throws -> T
) async throws -> T {
    let child = try NodeProcess.launch(["serve", "--port", "0"] + arguments, environment: environment)
    do {
        try await waitUntil("the node to report its port", timeout: .seconds(20)) {
            NodeProcess.reportedPort(child.outputText) != nil || !child.isRunning
        }
        guard let port = NodeProcess.reportedPort(child.outputText) else {
            throw TimeoutError(what: "a listening node; output was: \(child.outputText)")
        }
        let result = try await body(NodeProcess(child: child, port: port))
        await child.terminate()
        return result
    } catch {
        await child.terminate()
        throw error
    }
}

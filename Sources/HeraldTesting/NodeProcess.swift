import Foundation
import Synchronization

/// A `herald serve` process started from the built binary, for tests of process-level
/// behaviour (signals, exit codes, configuration errors).
public final class NodeProcess: Sendable {
    public let process: Process
    public let port: Int
    private let output: OutputCollector

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

    init(process: Process, port: Int, output: OutputCollector) {
        self.process = process
        self.port = port
        self.output = output
    }

    /// Starts `herald serve --port 0 …` and waits until it reports its port.
    public static func start(arguments: [String] = [], environment: [String: String] = [:]) async throws -> NodeProcess {
        let (process, output) = try launch(["serve", "--port", "0"] + arguments, environment: environment)
        try await waitUntil("the node to report its port", timeout: .seconds(20)) {
            output.port != nil || !process.isRunning
        }
        guard let port = output.port else {
            throw TimeoutError(what: "a listening node; output was: \(output.text)")
        }
        return NodeProcess(process: process, port: port, output: output)
    }

    /// Runs `herald` with `arguments` to completion; returns its exit status and output.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let (process, output) = try launch(arguments, environment: environment)
        try await waitUntil("herald to exit", timeout: .seconds(20)) { !process.isRunning }
        // Foundation on Linux does not always report end-of-file to the readability handler;
        // what the process wrote is read by then, so a short grace for the EOF is enough.
        try? await waitUntil("the output to end", timeout: .seconds(2)) { output.isComplete }
        return (process.terminationStatus, output.text)
    }

    static func launch(_ arguments: [String], environment: [String: String]) throws -> (Process, OutputCollector) {
        let process = Process()
        process.executableURL = try executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HERALD_") && $0.key != "PORT" }
        env.merge(environment) { $1 }
        process.environment = env
        let output = OutputCollector.capture(process)
        try process.run()
        return (process, output)
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var outputText: String { output.text }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(15)) async throws -> Int32 {
        kill(process.processIdentifier, signal)
        try await waitUntil("herald to exit after signal \(signal)", timeout: timeout) { !process.isRunning }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Accumulates a child's output and spots the port it reports.
final class OutputCollector: Sendable {
    private let state = Mutex<(text: String, port: Int?, complete: Bool)>(("", nil, false))

    /// Collects everything `process` writes to stdout and stderr (set up before `run()`).
    static func capture(_ process: Process) -> OutputCollector {
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = OutputCollector()
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                output.complete()
            } else {
                output.append(data)
            }
        }
        return output
    }

    func complete() { state.withLock { $0.complete = true } }
    var isComplete: Bool { state.withLock { $0.complete } }

    func append(_ data: Data) {
        let chunk = String(decoding: data, as: UTF8.self)
        state.withLock { state in
            state.text += chunk
            if state.port == nil, let range = state.text.range(of: #"address=[0-9.]+:(\d+)"#, options: .regularExpression) {
                let match = state.text[range]
                state.port = match.split(separator: ":").last.flatMap { Int($0) }
            }
        }
    }

    var text: String { state.withLock { $0.text } }
    var port: Int? { state.withLock { $0.port } }
}

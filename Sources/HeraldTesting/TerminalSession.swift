import Foundation

/// A command-line program driven as a person would: in a pseudo-terminal (through
/// util-linux `script`), typing lines and reading the screen's text.
public final class TerminalSession: Sendable {
    private let process: Process
    private let input: FileHandle
    private let output: OutputCollector

    /// Starts `executable arguments…` in a pty.
    public init(_ executable: URL, _ arguments: [String], terminal: Bool = true) throws {
        let process = Process()
        let quoted = ([executable.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        if terminal {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
            process.arguments = ["-qfec", quoted.joined(separator: " "), "/dev/null"]
        } else {
            process.executableURL = executable
            process.arguments = arguments
        }
        let stdin = Pipe()
        process.standardInput = stdin
        let output = OutputCollector.capture(process)
        try process.run()
        self.process = process
        self.input = stdin.fileHandleForWriting
        self.output = output
    }

    /// Types one line.
    public func type(_ line: String) {
        input.write(Data((line + "\n").utf8))
    }

    public var text: String { output.text }

    /// Waits until the output contains `fragment`.
    public func waitFor(_ fragment: String, timeout: Duration = .seconds(10)) async throws {
        try await waitUntil("\"\(fragment)\" on screen; screen was:\n\(text)", timeout: timeout) {
            self.text.contains(fragment)
        }
    }

    /// Waits for the program to exit; returns its status.
    public func waitForExit(timeout: Duration = .seconds(10)) async throws -> Int32 {
        try await waitUntil("the program to exit", timeout: timeout) { !self.process.isRunning }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

import Foundation

/// A command-line program driven as a person would: in a pseudo-terminal (through
/// util-linux `script`), typing lines and reading the screen's text.
public final class TerminalSession: Sendable {
    private let child: ChildProcess

    init(_ executable: URL, _ arguments: [String], terminal: Bool) throws {
        let quoted = ([executable.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        if terminal {
            child = try ChildProcess("/usr/bin/script", ["-qfec", quoted.joined(separator: " "), "/dev/null"], input: true)
        } else {
            child = try ChildProcess(executable.path, arguments, input: true)
        }
    }

    /// Types one line.
    public func type(_ line: String) {
        child.write(line + "\n")
    }

    public var text: String { child.outputText }

    /// Waits until the output contains `fragment`.
    public func waitFor(_ fragment: String, timeout: Duration = .seconds(10)) async throws {
        try await waitUntil("\"\(fragment)\" on screen; screen was:\n\(text)", timeout: timeout) {
            self.text.contains(fragment)
        }
    }

    /// Waits for the program to exit; returns its status.
    public func waitForExit(timeout: Duration = .seconds(10)) async throws -> Int32 {
        try await child.waitForExit(timeout: timeout)
    }

    fileprivate func stop() async {
        await child.terminate()
    }
}

/// Runs `body` with `executable arguments…` started (in a pseudo-terminal unless `terminal`
/// is false); the program is killed afterwards if it still runs, however `body` ends.
public func withTerminal<T>(
    _ executable: URL, _ arguments: [String], terminal: Bool = true, _ body: (TerminalSession) async throws -> T
) async throws -> T {
    let session = try TerminalSession(executable, arguments, terminal: terminal)
    do {
        let result = try await body(session)
        await session.stop()
        return result
    } catch {
        await session.stop()
        throw error
    }
}

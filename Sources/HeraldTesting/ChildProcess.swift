import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process of a test: redis-server, nginx, `herald serve`, openssl, a terminal.
///
/// Spawned with `posix_spawn` so that the child gets stdin, stdout and stderr and **nothing
/// else** from the test process: every other descriptor is closed in the child. (Foundation's
/// `Process` leaves them open, so a long-lived child such as redis-server inherited the pipes
/// and sockets other tests were opening at that moment — a pipe then never reported its end,
/// and a probe socket kept a port bound.) Output is collected by a thread of its own, never
/// by a Swift task, and waiting for the exit polls `waitpid` without blocking any thread.
///
/// Use it through ``withChildProcess(_:_:environment:input:_:)`` so that it is killed and
/// reaped when the test is done, whatever happened.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let command: String
    private let output: OutputCollector
    private let stdinFD: Int32?
    private let status = Mutex<Int32?>(nil)

    public struct SpawnFailed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `executable` (a path, or a name looked up in `PATH`) with `arguments`.
    /// - Parameters:
    ///   - environment: the child's whole environment (default: the test process's).
    ///   - input: give the child a pipe on stdin (``write(_:)``); otherwise /dev/null.
    ///   - captureOutput: collect stdout and stderr (``outputText``); otherwise /dev/null.
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        input: Bool = false, captureOutput: Bool = true
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var outputPipe: [Int32] = [-1, -1]
        var inputPipe: [Int32] = [-1, -1]
        if captureOutput {
            try Self.makePipe(&outputPipe)
            posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, outputPipe[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        if input {
            try Self.makePipe(&inputPipe)
            posix_spawn_file_actions_adddup2(&actions, inputPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        Self.closeEverythingElse(&actions)

        // Its own process group, so that whatever it starts (nginx's workers, the program
        // `script` runs) goes with it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let environment = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let result = Self.withCStrings([executable] + arguments) { argv in
            Self.withCStrings(environment) { envp in
                posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
            }
        }
        if captureOutput { close(outputPipe[1]) }
        if input { close(inputPipe[0]) }
        guard result == 0 else {
            if captureOutput { close(outputPipe[0]) }
            if input { close(inputPipe[1]) }
            throw SpawnFailed(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        self.command = ([executable] + arguments).joined(separator: " ")
        self.stdinFD = input ? inputPipe[1] : nil
        self.output = OutputCollector()
        if captureOutput { output.collect(from: outputPipe[0]) } else { output.finish() }
    }

    // MARK: Running

    /// The exit status (as the shell reports it: the code, or 128 + signal), or `nil` while
    /// the child runs. Reaps the child when it has exited.
    public var exitStatus: Int32? {
        status.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            let code = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
            status = code
            return code
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// Waits for the child to exit; returns its status.
    public func waitForExit(timeout: Duration = .seconds(10)) async throws -> Int32 {
        try await waitUntil("\(command) to exit", timeout: timeout, every: .milliseconds(10)) { !self.isRunning }
        return exitStatus!
    }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, SIGCONT…) if the child still runs.
    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// Kills the child and every process of its group (SIGKILL, after a SIGCONT in case they
    /// are stopped) and reaps it.
    public func terminate() async {
        // The group outlives its leader when the leader exited first (nginx's workers).
        kill(-pid, SIGCONT)
        kill(-pid, SIGKILL)
        guard isRunning else { return }
        _ = try? await waitForExit(timeout: .seconds(10))
    }

    // MARK: Input and output

    /// Writes to the child's stdin (``init(_:_:environment:input:captureOutput:)`` with `input`).
    public func write(_ text: String) {
        guard let stdinFD else { return }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(stdinFD, $0.baseAddress, $0.count) }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }

    /// Everything the child wrote to stdout and stderr so far.
    public var outputText: String { output.text }

    /// Whether the child's output ended (it and every process it started closed it).
    public var outputEnded: Bool { output.isComplete }

    deinit {
        if let stdinFD { close(stdinFD) }
        kill(-pid, SIGKILL)
        if status.withLock({ $0 }) == nil {
            var raw: Int32 = 0
            waitpid(pid, &raw, 0)
        }
    }

    // MARK: Helpers

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), which Swift's Glibc module
    /// does not import, looked up at run time.
    private static func closeEverythingElse(_ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else {
            preconditionFailure("glibc 2.34 or later is needed for posix_spawn_file_actions_addclosefrom_np")
        }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
    }

    /// A pipe whose ends do not survive an exec (children get only what the file actions give).
    private static func makePipe(_ fds: inout [Int32]) throws {
        guard pipe(&fds) == 0 else { throw SpawnFailed(description: "pipe: \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    private static func withCStrings<T>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> T) -> T {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return body(pointers)
    }
}

/// Runs `body` with a child process that is killed and reaped afterwards, however `body` ends.
public func withChildProcess<T>(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, input: Bool = false,
    _ body: (ChildProcess) async throws -> T
) async throws -> T {
    let child = try ChildProcess(executable, arguments, environment: environment, input: input)
    do {
        let result = try await body(child)
        await child.terminate()
        return result
    } catch {
        await child.terminate()
        throw error
    }
}

/// A child's output, read by a dedicated thread until end of file.
final class OutputCollector: Sendable {
    private let state = Mutex<(bytes: [UInt8], complete: Bool)>(([], false))

    func collect(from fd: Int32) {
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                state.withLock { $0.bytes += buffer[0..<count] }
            }
            close(fd)
            finish()
        }
        thread.name = "test-output-\(fd)"
        thread.start()
    }

    func finish() { state.withLock { $0.complete = true } }
    var isComplete: Bool { state.withLock { $0.complete } }
    var text: String { String(decoding: state.withLock { $0.bytes }, as: UTF8.self) }
}

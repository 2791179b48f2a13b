import Foundation

/// nginx in front of some nodes, configured from deploy/nginx/herald.conf.template through
/// scripts/render-nginx — the same configuration docker-compose runs.
public final class NginxBalancer: Sendable {
    public let port: Int
    private let process: Process
    private let directory: URL

    public static func start(upstreamPorts: [Int]) async throws -> NginxBalancer {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
        let port = try freePort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-nginx-\(UUID().uuidString)")
        let render = Process()
        render.executableURL = root.appendingPathComponent("scripts/render-nginx")
        render.arguments = [directory.path, "127.0.0.1:\(port)"] + upstreamPorts.map { "127.0.0.1:\($0)" }
        render.standardOutput = FileHandle.nullDevice
        try render.run()
        try await waitUntil("scripts/render-nginx") { !render.isRunning }
        guard render.terminationStatus == 0 else { throw TimeoutError(what: "scripts/render-nginx to succeed") }

        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-p", directory.path, "-c", directory.appendingPathComponent("nginx.conf").path]
        nginx.standardOutput = FileHandle.nullDevice
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        let balancer = NginxBalancer(port: port, process: nginx, directory: directory)
        try await waitUntil("nginx on port \(port)") {
            (try? await HTTPResult.send(.GET, "http://127.0.0.1:\(port)/health").status) == 200
        }
        return balancer
    }

    init(port: Int, process: Process, directory: URL) {
        self.port = port
        self.process = process
        self.directory = directory
    }

    /// Stops nginx at once (SIGTERM: fast shutdown).
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        try? FileManager.default.removeItem(at: directory)
    }
}

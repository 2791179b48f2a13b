import Foundation

/// nginx in front of some nodes, configured from deploy/nginx/herald.conf.template through
/// scripts/render-nginx — the same configuration docker-compose runs.
public final class NginxBalancer: Sendable {
    public let port: Int
    fileprivate let child: ChildProcess
    fileprivate let directory: URL

    init(port: Int, child: ChildProcess, directory: URL) {
        self.port = port
        self.child = child
        self.directory = directory
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL
    }

    fileprivate static func start(upstreamPorts: [Int], port: Int) async throws -> NginxBalancer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-nginx-\(UUID().uuidString)")
        let render = try ChildProcess(
            repositoryRoot.appendingPathComponent("scripts/render-nginx").path,
            [directory.path, "127.0.0.1:\(port)"] + upstreamPorts.map { "127.0.0.1:\($0)" })
        guard try await render.waitForExit() == 0 else {
            throw TimeoutError(what: "scripts/render-nginx to succeed: \(render.outputText)")
        }
        let nginx = try ChildProcess("/usr/sbin/nginx", ["-p", directory.path, "-c", directory.appendingPathComponent("nginx.conf").path])
        let balancer = NginxBalancer(port: port, child: nginx, directory: directory)
        do {
            try await waitUntil("nginx on port \(port)") {
                guard nginx.isRunning else { throw TimeoutError(what: "nginx on port \(port) (it exited: \(nginx.outputText))") }
                return (try? await HTTPResult.send(.GET, "http://127.0.0.1:\(port)/health").status) == 200
            }
        } catch {
            await balancer.stop()
            throw error
        }
        return balancer
    }

    fileprivate func stop() async {
        await child.terminate()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` with nginx balancing over `upstreamPorts`, stopped afterwards however `body` ends.
public func withNginx<T>(upstreamPorts: [Int], _ body: (NginxBalancer) async throws -> T) async throws -> T {
    let balancer = try await startOnFreePort { port in try await NginxBalancer.start(upstreamPorts: upstreamPorts, port: port) }
    do {
        let result = try await body(balancer)
        await balancer.stop()
        return result
    } catch {
        await balancer.stop()
        throw error
    }
}

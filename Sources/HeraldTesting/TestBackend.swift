import Foundation
import HeraldProtocol
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A real HTTP backend for the hook tests: Hummingbird on a loopback port, `POST /<hook>`
/// answered by a handler the test sets, every call recorded. It can be stopped (connections
/// refused) and started again on the same port, as a backend that goes down and comes back.
public final class TestBackend: Sendable {
    public struct Call: Sendable {
        public var hook: String
        public var body: [String: JSONValue]
        public var rawBody: [UInt8]
        public var headers: [String: String]

        /// A request header, whatever the case of its name.
        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    /// The answer to a call: status and JSON text.
    public typealias Handler = @Sendable (Call) async -> (status: Int, body: String)

    private let handler: Mutex<Handler>
    private let recorded = Mutex<[Call]>([])
    private let running = Mutex<(task: Task<Void, any Error>, port: Int)?>(nil)

    init() {
        handler = Mutex({ _ in (200, #"{"result":{}}"#) })
    }

    public var port: Int { running.withLock { $0?.port } ?? 0 }

    public func url(_ hook: String) -> String { "http://127.0.0.1:\(port)/\(hook)" }

    /// How the backend answers from now on.
    public func answer(_ handler: @escaping Handler) {
        self.handler.withLock { $0 = handler }
    }

    public func calls(_ hook: String) -> [Call] {
        recorded.withLock { $0.filter { $0.hook == hook } }
    }

    /// Listens (on `port`, 0: a free one) until ``stop()``.
    public func start(port: Int = 0) async throws {
        let router = Router()
        router.post("/:hook") { request, context -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let raw = Array(bytes.readableBytesView)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.rawName] = field.value }
            let call = Call(
                hook: context.parameters.get("hook") ?? "",
                body: (try? JSONDecoder().decode([String: JSONValue].self, from: Data(raw))) ?? [:], rawBody: raw, headers: headers)
            self.recorded.withLock { $0.append(call) }
            let (status, body) = await self.handler.withLock { $0 }(call)
            return Response(
                status: .init(code: status), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test-backend")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? port)
                continuation.finish()
            }, logger: logger)
        let task = Task { defer { continuation.finish() }; try await app.runService(gracefulShutdownSignals: []) }
        let bound = try await withTimeout(.seconds(10), "the test backend to listen") {
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TimeoutError(what: "the test backend (it stopped)") }
            return port
        }
        running.withLock { $0 = (task, bound) }
    }

    /// Stops listening; the port is kept for ``restart()``.
    public func stop() async {
        guard let current = running.withLock({ $0 }) else { return }
        current.task.cancel()
        _ = await current.task.result
    }

    /// Listens again on the port it had.
    public func restart() async throws {
        try await start(port: port)
    }
}

/// Runs a ``TestBackend`` for the duration of `body`; it is stopped however `body` ends.
public func withTestBackend<T: Sendable>(_ body: (TestBackend) async throws -> T) async throws -> T {
    let backend = TestBackend()
    try await backend.start()
    return try await using(backend, stop: { await $0.stop() }, body)
}

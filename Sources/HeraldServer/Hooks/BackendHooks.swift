import AsyncHTTPClient
import CoreMetrics
import Crypto
import Foundation
import HeraldCore
import HeraldProtocol
import Logging
import NIOCore
import NIOHTTP1

/// The application's say in who connects, subscribes and publishes: signed JSON POSTs to the
/// backend's hook URLs (docs/hooks.md), through one pooled HTTP client.
///
/// Every call is bounded by `HERALD_HOOK_TIMEOUT` and never throws: a backend that is down,
/// slow, answers with a non-2xx status or with JSON that is not the documented shape comes
/// back as ``HookOutcome/unavailable(_:)`` (the reason logged), which the transports turn into
/// retryable answers. Calls run in tasks, never on an event loop.
public final class BackendHooks: Sendable {
    public enum Hook: String, Sendable, CaseIterable {
        case connect, subscribe, publish, refresh
    }

    let configuration: HookConfiguration
    private let client: HTTPClient
    private let logger: Logger
    private let key: SymmetricKey?
    private let calls: [Hook: [String: Counter]]
    private let durations: [Hook: CoreMetrics.Timer]
    /// Keys in a stable order, so the same call has the same body (and signature); webhooks
    /// encode with it too.
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    /// Most bytes of an answer read; a bigger one is not the documented JSON.
    static let maxAnswerBytes = 64 * 1024

    public init(_ configuration: HookConfiguration, eventLoopGroup: any EventLoopGroup, metrics: NodeMetrics, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.key = configuration.secret.map { SymmetricKey(data: Data($0.utf8)) }
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: configuration.timeout, read: configuration.timeout)
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60))
        self.client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: httpConfiguration)
        var calls: [Hook: [String: Counter]] = [:]
        var durations: [Hook: CoreMetrics.Timer] = [:]
        for hook in Hook.allCases {
            calls[hook] = Dictionary(uniqueKeysWithValues: ["allowed", "refused", "unavailable"].map {
                ($0, Counter(label: "herald_hook_calls_total", dimensions: [("hook", hook.rawValue), ("outcome", $0)], factory: metrics.factory))
            })
            durations[hook] = CoreMetrics.Timer(label: "herald_hook_duration_seconds", dimensions: [("hook", hook.rawValue)], factory: metrics.factory)
        }
        self.calls = calls
        self.durations = durations
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    func url(of hook: Hook) -> String? {
        switch hook {
        case .connect: configuration.connectURL
        case .subscribe: configuration.subscribeURL
        case .publish: configuration.publishURL
        case .refresh: configuration.refreshURL
        }
    }

    /// The signature header a call with `body` carries: what a backend computes to check it.
    public static func signature(of body: [UInt8], secret: String) -> String {
        signature(of: body, key: SymmetricKey(data: Data(secret.utf8)))
    }

    /// The HMAC-SHA256 of `body` with the hook secret, as the signature header carries it.
    static func signature(of body: [UInt8], key: SymmetricKey) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// POSTs `request` to `hook`'s URL and reads the answer; never throws.
    func call<Request: Encodable, Result: Decodable & Sendable>(
        _ hook: Hook, _ request: Request, expecting: Result.Type
    ) async -> HookOutcome<Result> {
        guard let url = url(of: hook) else { return .unavailable("no \(hook.rawValue) hook configured") }
        let start = ContinuousClock.now
        let outcome = await send(hook, url: url, request, expecting: Result.self)
        durations[hook]?.recordNanoseconds(Int64((ContinuousClock.now - start) / .nanoseconds(1)))
        calls[hook]?[outcome.label]?.increment()
        switch outcome {
        case .unavailable(let reason):
            logger.warning("backend hook failed", metadata: ["hook": "\(hook.rawValue)", "reason": "\(reason)"])
        case .refused(let code, let message):
            logger.info("backend hook refused", metadata: ["hook": "\(hook.rawValue)", "code": "\(code.map(String.init) ?? "-")", "message": "\(message)"])
        case .result:
            break
        }
        return outcome
    }

    private func send<Request: Encodable, Result: Decodable & Sendable>(
        _ hook: Hook, url: String, _ request: Request, expecting: Result.Type
    ) async -> HookOutcome<Result> {
        let body: [UInt8]
        do {
            body = Array(try Self.encoder.encode(request))
        } catch {
            return .unavailable("could not encode the request: \(error)")
        }
        var post = HTTPClientRequest(url: url)
        post.method = .POST
        post.headers.add(name: "Content-Type", value: "application/json")
        post.headers.add(name: "User-Agent", value: "Herald")
        if let key { post.headers.add(name: "X-Herald-Signature", value: Self.signature(of: body, key: key)) }
        post.body = .bytes(body)
        let bytes: ByteBuffer
        do {
            let response = try await client.execute(post, timeout: configuration.timeout)
            guard (200..<300).contains(response.status.code) else {
                return .unavailable("the backend answered HTTP \(response.status.code)")
            }
            bytes = try await response.body.collect(upTo: Self.maxAnswerBytes)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .unavailable("no answer within \(configuration.timeout)")
        } catch {
            return .unavailable("\(error)")
        }
        let answer: HookMessages.Answer<Result>
        do {
            answer = try JSONDecoder().decode(HookMessages.Answer<Result>.self, from: Data(bytes.readableBytesView))
        } catch {
            return .unavailable("the answer is not the documented JSON: \(error)")
        }
        switch (answer.result, answer.error) {
        case (let result?, nil): return .result(result)
        case (nil, let refusal?): return .refused(code: refusal.code, message: refusal.message ?? "refused by the backend")
        default: return .unavailable("the answer must hold exactly one of \"result\" and \"error\"")
        }
    }
}

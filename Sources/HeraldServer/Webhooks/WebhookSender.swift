import AsyncHTTPClient
import CoreMetrics
import Foundation
import HeraldCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Delivers the cluster's webhook events: on the node that currently sends (``WebhookLog``),
/// batches of up to ``maxBatch`` events gathered for up to ``gatherDelay``, POSTed signed, in
/// order; a failed batch is sent again, as it was, until it succeeds or its oldest event is
/// older than `HERALD_WEBHOOK_RETRY_FOR` (``WebhookRetryPolicy``). Nothing later is sent while a
/// batch is retried, so events reach the receiver in order per channel and user.
final class WebhookSender: Service {
    static let maxBatch = 100
    static let gatherDelay = TimeAmount.milliseconds(50)

    /// The request body.
    struct Body: Encodable {
        var timeMs: Int64
        var events: [WebhookEvent]

        enum CodingKeys: String, CodingKey {
            case timeMs = "time_ms"
            case events
        }
    }

    private let configuration: WebhookConfiguration
    private let url: String
    let log: any WebhookLog
    private let client: HTTPClient
    private let logger: Logger
    private let policy: WebhookRetryPolicy
    private let events: [WebhookEvent.Name: [String: Counter]]
    private let requests: [Bool: Counter]
    private let queueDepth: Gauge
    private let oldestAge: Gauge

    init?(_ configuration: WebhookConfiguration, log: any WebhookLog, eventLoopGroup: any EventLoopGroup, metrics: NodeMetrics, logger: Logger) {
        guard let url = configuration.url else { return nil }
        self.configuration = configuration
        self.url = url
        self.log = log
        self.logger = logger
        self.policy = WebhookRetryPolicy(retryFor: configuration.retryFor)
        var http = HTTPClient.Configuration()
        http.timeout = .init(connect: configuration.timeout, read: configuration.timeout)
        self.client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: http)
        let factory = metrics.factory
        self.events = Dictionary(uniqueKeysWithValues: WebhookEvent.Name.allCases.map { name in
            (name, Dictionary(uniqueKeysWithValues: ["sent", "dropped"].map {
                ($0, Counter(label: "herald_webhook_events_total", dimensions: [("name", name.rawValue), ("outcome", $0)], factory: factory))
            }))
        })
        self.requests = [
            true: Counter(label: "herald_webhook_requests_total", dimensions: [("outcome", "ok")], factory: factory),
            false: Counter(label: "herald_webhook_requests_total", dimensions: [("outcome", "failed")], factory: factory),
        ]
        self.queueDepth = Gauge(label: "herald_webhook_queue_depth", factory: factory)
        self.oldestAge = Gauge(label: "herald_webhook_oldest_pending_seconds", factory: factory)
        queueDepth.record(0)
        oldestAge.record(0)
    }

    func run() async throws {
        if configuration.secret == nil {
            logger.warning("HERALD_WEBHOOK_SECRET is not set: webhook requests are not signed")
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.sendLoop() }
                group.addTask { await self.gaugeLoop() }
            }
        }
        try? await client.shutdown()
    }

    private func sendLoop() async {
        while !Task.isCancelled {
            do {
                var batch = try await log.next(max: Self.maxBatch, wait: .seconds(1))
                guard let first = batch.first else { continue }
                // Gather what follows within the first event's 50 ms, for fewer, fuller requests.
                let age = Self.now() - first.queuedAtMillis
                if batch.count < Self.maxBatch, age < Self.gatherDelay.nanoseconds / 1_000_000 {
                    try await Task.sleep(nanoseconds: UInt64(Self.gatherDelay.nanoseconds - age * 1_000_000))
                    batch = try await log.next(max: Self.maxBatch, wait: .zero)
                }
                guard !batch.isEmpty else { continue }
                try await deliver(batch)
            } catch is CancellationError {
                return
            } catch {
                logger.debug("webhook log unavailable", metadata: ["error": "\(error)"])
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    /// Sends `batch` until it is accepted or given up; then removes it from the log.
    private func deliver(_ batch: [WebhookEvent]) async throws {
        var failures = 0
        while true {
            try Task.checkCancellation()
            if let failure = await post(batch) {
                failures += 1
                let age = TimeAmount.milliseconds(Self.now() - (batch.first?.queuedAtMillis ?? Self.now()))
                switch policy.decide(failures: failures, age: age) {
                case .retry(let delay):
                    if failures == 1 || failures % 10 == 0 {
                        logger.warning("webhook not accepted; retrying", metadata: ["error": "\(failure)", "attempts": "\(failures)", "events": "\(batch.count)"])
                    }
                    try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
                case .drop:
                    logger.error(
                        "webhook events dropped: not accepted within HERALD_WEBHOOK_RETRY_FOR",
                        metadata: ["error": "\(failure)", "attempts": "\(failures)", "events": "\(batch.count)",
                                   "first": "\(batch.first?.id ?? "")", "last": "\(batch.last?.id ?? "")"])
                    try await log.remove(batch.map(\.id))
                    for event in batch { events[event.name]?["dropped"]?.increment() }
                    return
                }
            } else {
                try await log.remove(batch.map(\.id))
                for event in batch { events[event.name]?["sent"]?.increment() }
                return
            }
        }
    }

    /// One request; `nil` when the receiver answered 2xx, else why not.
    private func post(_ batch: [WebhookEvent]) async -> String? {
        let body = Array((try? BackendHooks.encoder.encode(Body(timeMs: Self.now(), events: batch))) ?? Data())
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Herald-Webhooks")
        if let secret = configuration.secret {
            request.headers.add(name: "X-Herald-Signature", value: BackendHooks.signature(of: body, secret: secret))
        }
        request.body = .bytes(body)
        do {
            let response = try await client.execute(request, timeout: configuration.timeout)
            // The answer's body is not used; read a little of it so the connection is reusable.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let ok = (200..<300).contains(response.status.code)
            requests[ok]?.increment()
            return ok ? nil : "HTTP \(response.status.code)"
        } catch {
            requests[false]?.increment()
            return "\(error)"
        }
    }

    /// Queue depth and oldest age, once a second, for `/metrics`.
    private func gaugeLoop() async {
        while !Task.isCancelled {
            if let (count, oldest) = try? await log.depth() {
                queueDepth.record(count)
                oldestAge.record(oldest.map { Double(Swift.max(Self.now() - $0, 0)) / 1000 } ?? 0)
            }
            try? await Task.sleep(nanoseconds: 1_000_000_000)
        }
    }

    private static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

import AsyncHTTPClient
import Foundation
import HeraldClient
import HeraldCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization

/// Runs one benchmark: connects the subscribers, publishes at the target rate over REST,
/// waits for the deliveries to drain, and measures.
public final class BenchRunner: Sendable {
    public let configuration: BenchConfiguration
    let progress: @Sendable (String) -> Void
    let group = MultiThreadedEventLoopGroup.singleton

    public init(configuration: BenchConfiguration, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.progress = progress
    }

    struct Node {
        var host: String
        var port: Int
        var base: String
    }

    var nodes: [Node] {
        configuration.urls.compactMap { url in
            guard let components = URLComponents(string: url), let host = components.host else { return nil }
            return Node(host: host, port: components.port ?? 80, base: url.hasSuffix("/") ? String(url.dropLast()) : url)
        }
    }

    public func run() async throws -> BenchResult {
        if configuration.mode == .storm {
            return try await runStorm(base: BenchResult(
                mode: configuration.mode.rawValue, target: configuration.target.rawValue, subscribers: configuration.subscribers,
                channels: configuration.channels, targetRate: configuration.rate, seconds: 0, connectSeconds: 0, connectsPerSecond: 0,
                published: 0, publishErrors: 0, expectedDeliveries: 0, deliveries: 0, lost: 0, duplicates: 0, deliveriesPerSecond: 0,
                latencyMillis: DeliveryRecorder().latency(), servers: []))
        }
        let recorder = DeliveryRecorder()
        let before = configuration.pids.map { ($0, ProcessStats.read($0)) }
        let connectStart = ContinuousClock.now
        let connections = try await connectSubscribers(recorder: recorder)
        let connectSeconds = Self.seconds(ContinuousClock.now - connectStart)
        defer { for channel in connections { channel.close(promise: nil) } }
        progress("connected \(connections.count) subscribers in \(String(format: "%.2f", connectSeconds)) s")
        let afterConnect = configuration.pids.map { ($0, ProcessStats.read($0)) }

        var result = BenchResult(
            mode: configuration.mode.rawValue, target: configuration.target.rawValue,
            subscribers: configuration.subscribers, channels: configuration.channels, targetRate: configuration.rate,
            seconds: 0, connectSeconds: connectSeconds,
            connectsPerSecond: Double(connections.count) / max(connectSeconds, 0.001), published: 0, publishErrors: 0,
            expectedDeliveries: 0, deliveries: 0, lost: 0, duplicates: 0, deliveriesPerSecond: 0,
            latencyMillis: recorder.latency(), servers: [])

        if configuration.mode == .connect {
            result.servers = BenchResult.Server.deltas(before, afterConnect)
            let added = result.servers.reduce(0) { $0 + $1.rssBytes - $1.rssBytesBefore }
            result.rssKiBPerConnection = Double(added) / 1024 / Double(max(connections.count, 1))
            return result
        }

        if configuration.mode == .max {
            return try await findMaximum(base: result, recorder: recorder)
        }
        return try await publishPhase(rate: configuration.rate, first: 0, recorder: recorder, base: result, statsBefore: afterConnect).result
    }

    // MARK: Subscribers

    /// Subscriber `index` listens to channel `index % channels`.
    func channelName(_ index: Int) -> String { "bench\(index % max(configuration.channels, 1))" }

    private func connectSubscribers(recorder: DeliveryRecorder) async throws -> [any Channel] {
        let nodes = self.nodes
        let herald = configuration.target == .herald
        let total = configuration.subscribers
        let channelsBox = NIOLockedValueBox<[any Channel]>([])
        let concurrency = 64
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            var next = 0
            func add() {
                let index = next
                next += 1
                tasks.addTask {
                    let node = nodes[index % nodes.count]
                    let channelName = self.channelName(index)
                    let path = herald ? "/ws" : "/sub/\(channelName)"
                    let ready = self.group.next().makePromise(of: Void.self)
                    let channel = try await WebSocketDialer.connect(
                        host: node.host, port: node.port, path: path, group: self.group,
                        localAddress: Self.sourceAddress(for: index, of: total)
                    ) { pipeline in
                        try pipeline.addHandler(SubscriberHandler(recorder: recorder, herald: herald, ready: ready))
                    }
                    if herald {
                        let message = ByteBuffer(string: #"{"type":"subscribe","channel":"\#(channelName)"}"#)
                        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: message))
                    }
                    try await ready.futureResult.get()
                    channelsBox.withLockedValue { $0.append(channel) }
                }
            }
            for _ in 0..<min(concurrency, total) { add() }
            while try await tasks.next() != nil {
                if next < total { add() }
            }
        }
        return channelsBox.withLockedValue { $0 }
    }

    /// Connections per source address: well inside one address's ephemeral port range.
    static let connectionsPerSourceAddress = 20_000

    /// Beyond one address's worth of connections, connection *i* comes from
    /// 127.0.0.(2 + i / 20000), so the generator never runs out of source ports.
    static func sourceAddress(for index: Int, of total: Int) -> SocketAddress? {
        guard total > connectionsPerSourceAddress else { return nil }
        let host = 2 + index / connectionsPerSourceAddress
        return try? SocketAddress(ipAddress: "127.0.0.\(min(host, 254))", port: 0)
    }

    // MARK: Publishing

    /// Publishes at `rate` for the configured time, numbering publications from `first`.
    /// - Returns: the step's result and how many numbers it used.
    private func publishPhase(
        rate: Double, first: Int, recorder: DeliveryRecorder, base: BenchResult, statsBefore: [(Int32, ProcessStats?)]
    ) async throws -> (result: BenchResult, used: Int) {
        let client = HTTPClient(eventLoopGroupProvider: .shared(group))
        do {
            let result = try await publish(rate: rate, first: first, recorder: recorder, base: base, statsBefore: statsBefore, client: client)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func publish(
        rate: Double, first sequenceBase: Int, recorder: DeliveryRecorder, base: BenchResult, statsBefore: [(Int32, ProcessStats?)],
        client: HTTPClient
    ) async throws -> (result: BenchResult, used: Int) {
        let total = max(1, Int(rate * configuration.seconds))
        recorder.begin(sequenceBase..<(sequenceBase + total))
        let subscribersPerChannel = subscriberCounts()
        let published = NIOLockedValueBox((ok: 0, errors: 0, expected: 0))
        let padding = String(repeating: "x", count: configuration.payloadBytes)
        let nodes = self.nodes
        let start = ContinuousClock.now
        let cpuBefore = statsBefore
        let deliveredBefore = 0

        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let sent = published.withLockedValue { $0.ok }
                self.progress("t=\(String(format: "%.0f", Self.seconds(ContinuousClock.now - start)))s published=\(sent)/\(total) delivered=\(recorder.deliveries - deliveredBefore)")
            }
        }
        // Herald publishes `perRequest` notifications per request (`POST /api/batch` above 1).
        let perRequest = configuration.target == .herald ? max(1, configuration.batch) : 1
        let requests = (total + perRequest - 1) / perRequest
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for worker in 0..<configuration.publishers {
                tasks.addTask {
                    var number = worker
                    while number < requests {
                        let first = number * perRequest
                        let indices = first..<min(first + perRequest, total)
                        if rate > 0 {
                            try await Task.sleep(until: start + .seconds(Double(first) / rate), clock: .continuous)
                        }
                        let node = nodes[number % nodes.count]
                        let stamp = WallClock.nanos()
                        func payload(_ index: Int) -> String { #"{"seq":\#(sequenceBase + index),"t":\#(stamp),"pad":"\#(padding)"}"# }
                        var request: HTTPClientRequest
                        if self.configuration.target == .nchan {
                            request = HTTPClientRequest(url: "\(node.base)/pub/\(self.channelName(first))")
                            request.body = .bytes(ByteBuffer(string: payload(first)))
                        } else {
                            if perRequest == 1 {
                                request = HTTPClientRequest(url: "\(node.base)/api/notify/\(self.channelName(first))")
                                request.body = .bytes(ByteBuffer(string: #"{"title":"bench","data":\#(payload(first))}"#))
                            } else {
                                request = HTTPClientRequest(url: "\(node.base)/api/batch")
                                let items = indices.map { #"{"channel":"\#(self.channelName($0))","title":"bench","data":\#(payload($0))}"# }
                                request.body = .bytes(ByteBuffer(string: #"{"items":[\#(items.joined(separator: ","))]}"#))
                            }
                            request.headers.add(name: "Content-Type", value: "application/json")
                            if let key = self.configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
                        }
                        request.method = .POST
                        let expected = indices.reduce(0) { $0 + (subscribersPerChannel[self.channelName($1)] ?? 0) }
                        do {
                            let response = try await client.execute(request, timeout: .seconds(10))
                            _ = try await response.body.collect(upTo: 16 << 20)
                            let ok = (200..<300).contains(Int(response.status.code))
                            published.withLockedValue {
                                if ok { $0.ok += indices.count; $0.expected += expected } else { $0.errors += indices.count }
                            }
                        } catch {
                            published.withLockedValue { $0.errors += indices.count }
                        }
                        number += self.configuration.publishers
                    }
                }
            }
            try await tasks.waitForAll()
        }
        let publishSeconds = Self.seconds(ContinuousClock.now - start)
        let expected = published.withLockedValue { $0.expected }
        // Drain: wait until every expected delivery arrived, or nothing arrived for 2 s.
        var last = recorder.deliveries
        var idleSince = ContinuousClock.now
        while recorder.deliveries - deliveredBefore < expected, ContinuousClock.now - idleSince < .seconds(2) {
            try await Task.sleep(for: .milliseconds(20))
            if recorder.deliveries != last {
                last = recorder.deliveries
                idleSince = ContinuousClock.now
            }
        }
        reporter.cancel()
        let elapsed = Self.seconds(ContinuousClock.now - start)
        let after = configuration.pids.map { ($0, ProcessStats.read($0)) }

        var result = base
        let counts = published.withLockedValue { $0 }
        let deliveries = recorder.deliveries - deliveredBefore
        result.seconds = publishSeconds
        result.targetRate = rate
        result.published = counts.ok
        result.publishErrors = counts.errors
        if configuration.target == .herald, configuration.batch > 1 { result.batch = configuration.batch }
        result.expectedDeliveries = expected
        result.deliveries = deliveries
        result.duplicates = recorder.duplicates
        result.lost = max(0, expected - (deliveries - recorder.duplicates))
        result.deliveriesPerSecond = Double(deliveries) / max(elapsed, 0.001)
        result.latencyMillis = recorder.latency()
        result.servers = BenchResult.Server.deltas(cpuBefore, after)
        if !result.servers.isEmpty {
            let cpu = result.servers.reduce(0) { $0 + $1.cpuSeconds }
            result.serverCPUMicrosPerDelivery = deliveries > 0 ? cpu * 1e6 / Double(deliveries) : nil
            result.serverCPUMicrosPerPublish = counts.ok > 0 ? cpu * 1e6 / Double(counts.ok) : nil
        }
        return (result, total)
    }

    /// Doubles the rate from the configured one until loss appears or p99 passes the bound.
    private func findMaximum(base: BenchResult, recorder: DeliveryRecorder) async throws -> BenchResult {
        var rate = max(configuration.rate, 1)
        var best: BenchResult?
        // Each step numbers its publications after the previous one's: a late delivery of a
        // step is never counted as the next step's (nor as a duplicate of it).
        var next = 0
        for _ in 0..<configuration.maxSteps {
            let (step, used) = try await publishPhase(
                rate: rate, first: next, recorder: recorder, base: base, statsBefore: configuration.pids.map { ($0, ProcessStats.read($0)) })
            next += used
            progress("max: rate \(rate)/s → \(Int(step.deliveriesPerSecond)) deliveries/s, lost \(step.lost), p99 \(step.latencyMillis.p99) ms")
            guard step.lost == 0, step.publishErrors == 0, step.latencyMillis.p99 <= configuration.maxP99Millis else { break }
            best = step
            rate *= 2
        }
        var result = best ?? base
        result.mode = BenchConfiguration.Mode.max.rawValue
        result.maxSustainedDeliveriesPerSecond = best?.deliveriesPerSecond ?? 0
        return result
    }

    private func subscriberCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for index in 0..<configuration.subscribers { counts[channelName(index), default: 0] += 1 }
        return counts
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

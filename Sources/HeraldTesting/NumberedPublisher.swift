import Foundation
import HeraldClient
import HeraldProtocol
import NIOCore

/// Publishes notifications titled "0", "1", … at a steady rate, each with an
/// `Idempotency-Key` of its own and retried until a node accepts it: what a careful backend
/// does while nodes come and go. Every subscriber must then see every number exactly once,
/// in order.
public struct NumberedPublisher: Sendable {
    public var urls: [String]
    public var channel: String
    public var interval: Duration
    /// A key prefix unique to this run, so that runs never collide.
    public var run = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    public init(urls: [String], channel: String, interval: Duration = .milliseconds(10)) {
        self.urls = urls
        self.channel = channel
        self.interval = interval
    }

    /// How long one publication may be refused before the run fails: a failover or a node
    /// restart takes a few seconds.
    public static let acceptWithin = Duration.seconds(20)

    /// Publishes `count` numbers, `onPublished` after each accepted one; returns how many
    /// requests had to be retried.
    @discardableResult
    public func publish(_ count: Int, onPublished: @Sendable (Int) async throws -> Void = { _ in }) async throws -> Int {
        var retries = 0
        for number in 0..<count {
            let started = ContinuousClock.now
            var attempt = 0
            while true {
                let url = urls[(number + attempt) % urls.count] + "/api/notify/\(channel)"
                let result = try? await HTTPResult.send(
                    .POST, url, body: #"{"title":"\#(number)"}"#, headers: [("Idempotency-Key", "\(run)-\(number)")])
                if result?.status == 200 { break }
                attempt += 1
                retries += 1
                // A time budget, not a count: a loaded machine answers each refusal slower.
                guard ContinuousClock.now - started < Self.acceptWithin else {
                    throw TimeoutError(what: "a node to accept publication \(number) within \(Self.acceptWithin)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await onPublished(number)
            let elapsed = ContinuousClock.now - started
            if elapsed < interval { try await Task.sleep(for: interval - elapsed) }
        }
        return retries
    }
}

extension ClientEvents {
    /// The titles of the notifications on `channel` this client receives, until it has seen
    /// `last` (or `timeout` passes).
    public func titles(on channel: String, through last: String, timeout: Duration = .seconds(30)) async throws -> [String] {
        var titles: [String] = []
        while titles.last != last {
            let event = try await next("notification \(last) on \(channel) (got \(titles.count))", timeout: timeout) {
                if case .message(.notification(let notification)) = $0 { notification.channel == channel } else { false }
            }
            if case .message(.notification(let notification)) = event { titles.append(notification.title ?? "") }
        }
        return titles
    }

    /// The next `subscribed` for `channel`.
    @discardableResult
    public func subscribed(_ channel: String, timeout: Duration = .seconds(10)) async throws -> ServerMessage {
        let event = try await next("subscribed to \(channel)", timeout: timeout) {
            if case .message(.subscribed(channel, _, _, _)) = $0 { true } else { false }
        }
        guard case .message(let message) = event else { throw TimeoutError(what: "subscribed to \(channel)") }
        return message
    }
}

/// Runs every client of `clients` for the duration of `body` (see ``withRunning(_:_:)``).
public func withRunning<T: Sendable>(_ clients: [HeraldClient], _ body: ([ClientEvents]) async throws -> T) async throws -> T {
    func run(_ index: Int, _ events: [ClientEvents]) async throws -> T {
        guard index < clients.count else { return try await body(events) }
        return try await withRunning(clients[index]) { client in try await run(index + 1, events + [client]) }
    }
    return try await run(0, [])
}

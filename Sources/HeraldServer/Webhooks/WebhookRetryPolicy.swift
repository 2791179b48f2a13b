import NIOCore

/// What the sender does after a request failed (non-2xx, timeout, refused): try the same batch
/// again after a backoff, or give up on it once its oldest event has waited ``retryFor``.
/// Pure, so the schedule is tested without a clock.
struct WebhookRetryPolicy: Sendable, Equatable {
    enum Decision: Equatable {
        case retry(after: TimeAmount)
        case drop
    }

    var retryFor: TimeAmount
    var firstDelay = TimeAmount.milliseconds(250)
    var maxDelay = TimeAmount.seconds(5)

    /// - Parameters:
    ///   - failures: failed attempts so far (1 after the first).
    ///   - age: how long the batch's oldest event has been queued.
    func decide(failures: Int, age: TimeAmount) -> Decision {
        guard age < retryFor else { return .drop }
        let doubled = firstDelay.nanoseconds << Swift.min(Swift.max(failures - 1, 0), 20)
        let delay = TimeAmount.nanoseconds(Swift.min(doubled, maxDelay.nanoseconds))
        // Never sleep past the moment the batch is due to be dropped by much.
        return .retry(after: Swift.min(delay, Swift.max(retryFor - age, .milliseconds(10))))
    }
}

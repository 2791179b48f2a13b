import NIOCore

/// Where webhook events go and how hard Herald tries (`HERALD_WEBHOOK_*`, docs/integration.md).
public struct WebhookConfiguration: Sendable, Equatable {
    /// `nil`: no webhooks (occupancy is not tracked at all).
    public var url: String?
    /// Signs every request's body (`X-Herald-Signature: sha256=<hex>`); unsigned when unset.
    public var secret: String?
    /// How long a channel (user) must stay without subscribers (connections) in the whole cluster
    /// before it is reported vacated (offline): a client that reconnects within it makes no event.
    public var vacateDelay = TimeAmount.seconds(2)
    /// How long a batch is retried after its oldest event was queued; then it is dropped.
    public var retryFor = TimeAmount.minutes(10)
    /// Longest a receiver may take to answer one request.
    public var timeout = TimeAmount.seconds(5)

    public init() {}
}

import NIOCore

/// How durable a publish must be before it is acknowledged (`HERALD_REDIS_MIN_REPLICAS`,
/// `HERALD_REDIS_WAIT_TIMEOUT`).
///
/// With `minReplicas` above 0 every publish is followed, in the same write, by
/// `WAIT minReplicas timeout`; fewer acknowledgements than that fail the publish with
/// ``HeraldCore/BrokerError/replicationTimeout(_:)`` (REST 503 `replication_timeout`). The
/// notification was stored and published all the same — a retry with its `Idempotency-Key`
/// is answered from the first attempt, and a failover before the replicas caught up may lose
/// it, which is what the publisher is told.
public struct ReplicationPolicy: Sendable, Equatable {
    public var minReplicas = 0
    public var timeout = TimeAmount.milliseconds(1000)

    public init(minReplicas: Int = 0, timeout: TimeAmount = .milliseconds(1000)) {
        self.minReplicas = minReplicas
        self.timeout = timeout
    }

    public var isOn: Bool { minReplicas > 0 }
}

import NIOCore
import ServiceLifecycle

/// What follows where a node's Redis is (the sentinels' master, a cluster's slot map): runs as
/// a service beside the node, and says how old its knowledge is, for
/// `herald_redis_topology_age_seconds`.
public protocol RedisTopologyMonitor: Service, Sendable {
    /// Time since the topology was last confirmed by Redis; `nil` before the first answer.
    var topologyAge: TimeAmount? { get }
}

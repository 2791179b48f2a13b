import HeraldCore
import HeraldRedis
import Hummingbird
import NIOCore
import Prometheus

/// `GET /metrics`: the node's metrics in the Prometheus text format, from its own registry.
///
/// Counters and histograms are kept as things happen (``NodeMetrics``); the gauges that are
/// cheaper to read than to track — channels, broker health — are set here, per scrape.
/// Access follows ``APIKeyMiddleware``: the API key when one is configured, unless
/// `HERALD_METRICS_PUBLIC`.
struct MetricsEndpoint {
    let registry: PrometheusCollectorRegistry
    let metrics: NodeMetrics
    let hub: Hub
    let broker: any Broker
    /// What follows a Sentinel master or a cluster's slot map, for the topology's age.
    var monitors: [any RedisTopologyMonitor] = []

    func register(on router: Router<HeraldRequestContext>) {
        router.get("/metrics") { _, _ in scrape() }
    }

    func scrape() -> Response {
        metrics.channels.record(hub.channelCount)
        metrics.brokerUp.record(broker.status.isUp ? 1 : 0)
        metrics.recordShards(broker.parts)
        if let age = monitors.compactMap(\.topologyAge).max() { metrics.recordTopologyAge(age) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 * 1024)
        registry.emit(into: &bytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

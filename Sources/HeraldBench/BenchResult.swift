
/// The one JSON object `herald bench` prints at the end (schema in docs/benchmarks.md).
public struct BenchResult: Sendable, Codable {
    public struct Latency: Sendable, Codable {
        public var count: UInt64
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        public var mean: Double
        /// Counts per bucket, for plots: upper bound (ms) → count.
        public var histogram: [[Double]]
    }

    public struct Server: Sendable, Codable {
        public var pid: Int32
        public var cpuSeconds: Double
        public var rssBytes: Int
        public var rssBytesBefore: Int

        /// What each process used between two readings of the same processes.
        static func deltas(_ before: [(Int32, ProcessStats?)], _ after: [(Int32, ProcessStats?)]) -> [Server] {
            zip(before, after).map { first, second in
                Server(
                    pid: first.0, cpuSeconds: (second.1?.cpuSeconds ?? 0) - (first.1?.cpuSeconds ?? 0),
                    rssBytes: second.1?.rssBytes ?? 0, rssBytesBefore: first.1?.rssBytes ?? 0)
            }
        }
    }

    public var mode: String
    public var target: String
    public var subscribers: Int
    public var channels: Int
    public var targetRate: Double
    public var seconds: Double
    public var connectSeconds: Double
    public var connectsPerSecond: Double
    public var published: Int
    public var publishErrors: Int
    public var expectedDeliveries: Int
    public var deliveries: Int
    public var lost: Int
    public var duplicates: Int
    public var deliveriesPerSecond: Double
    /// Milliseconds from the REST publish being sent to the subscriber reading it.
    public var latencyMillis: Latency
    public var servers: [Server]
    /// Server CPU (sum over `servers`) per delivery, in microseconds.
    public var serverCPUMicrosPerDelivery: Double?
    /// Server CPU per publish, in microseconds.
    public var serverCPUMicrosPerPublish: Double?
    /// Resident memory added per connection (connect mode), in KiB.
    public var rssKiBPerConnection: Double?
    /// `max` mode: the highest rate that kept loss at zero and p99 under the bound.
    public var maxSustainedDeliveriesPerSecond: Double?
    /// Publications per request (`POST /api/batch` above 1); absent for single publishes.
    public var batch: Int?
    /// `storm` mode: seconds from the kill until every client was subscribed again and had every
    /// notification of its channel; clients that came back, and those told `recovered:true`.
    public var stormSeconds: Double?
    public var reconnected: Int?
    public var recovered: Int?
    /// `storm` mode: CPU of the surviving servers (and Redis) during the storm, per client that
    /// came back (its reconnect, resubscribe, recovery read and replay, and the storm's publishes).
    public var serverCPUMicrosPerReconnect: Double?
}

import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// Collects deliveries from every subscriber connection: latency, count, duplicates.
///
/// Each measurement covers a window of sequence numbers (``begin(_:)``): the `max` mode's steps
/// publish fresh numbers each, and a delivery of an earlier step that arrives late is counted
/// apart (``stragglers``), never as this step's — so every step's loss is exact.
///
/// Sharded by the receiving event loop (``shard(for:)``): each loop records into its own
/// histogram behind its own lock, so receivers on different loops never wait for each other
/// (one shared lock capped the generator near 140,000 deliveries a second); the shards are
/// merged when read.
final class DeliveryRecorder: Sendable {
    fileprivate struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var deliveries = 0
        var duplicates = 0
        var stragglers = 0
        var window = 0..<Int.max
    }

    /// One loop's share.
    final class Shard: Sendable {
        fileprivate let state = Mutex(State())

        /// Records delivery `sequence`, sent at `sentNanos` (wall clock); `duplicate` when this
        /// connection saw it already.
        func record(sequence: Int, sentNanos: Int64, duplicate: Bool) {
            let micros = UInt64(max(0, (WallClock.nanos() - sentNanos) / 1000))
            state.withLock { state in
                guard state.window.contains(sequence) else {
                    state.stragglers += 1
                    return
                }
                state.deliveries += 1
                if duplicate { state.duplicates += 1 }
                _ = state.histogram.record(min(micros, 60_000_000))
            }
        }
    }

    private let shards: [Shard]

    init(shards count: Int = System.coreCount) {
        shards = (0..<max(count, 1)).map { _ in Shard() }
    }

    /// The shard a connection on `loop` records into.
    func shard(for loop: any EventLoop) -> Shard {
        shards[Int(UInt(bitPattern: ObjectIdentifier(loop).hashValue) % UInt(shards.count))]
    }

    /// Starts a new measurement of the publications numbered `window`.
    func begin(_ window: Range<Int>) {
        for shard in shards { shard.state.withLock { $0 = State(window: window) } }
    }

    private func sum(_ field: (State) -> Int) -> Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { field($0) } }
    }

    var deliveries: Int { sum(\.deliveries) }
    var duplicates: Int { sum(\.duplicates) }
    /// Deliveries of an earlier measurement that arrived during this one.
    var stragglers: Int { sum(\.stragglers) }

    func latency() -> BenchResult.Latency {
        var merged = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for shard in shards { shard.state.withLock { merged.add($0.histogram) } }
        return Self.latency(of: merged)
    }

    private static func latency(of h: Histogram<UInt64>) -> BenchResult.Latency {
        func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
        var buckets: [[Double]] = []
        var previous: UInt64 = 0
        for percentile in stride(from: 1.0, through: 100.0, by: 1.0) {
            let value = h.valueAtPercentile(percentile)
            if value != previous {
                buckets.append([ms(value), percentile])
                previous = value
            }
        }
        return BenchResult.Latency(
            count: h.totalCount, p50: ms(h.valueAtPercentile(50)), p90: ms(h.valueAtPercentile(90)),
            p99: ms(h.valueAtPercentile(99)), p999: ms(h.valueAtPercentile(99.9)), max: ms(h.max),
            mean: h.mean / 1000, histogram: buckets)
    }
}

/// Wall-clock nanoseconds: publisher and subscribers compare stamps across processes.
enum WallClock {
    static func nanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

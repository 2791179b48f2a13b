import Foundation
import Histogram
import Synchronization

/// Collects deliveries from every subscriber connection: latency, count, duplicates.
///
/// Each measurement covers a window of sequence numbers (``begin(_:)``): the `max` mode's steps
/// publish fresh numbers each, and a delivery of an earlier step that arrives late is counted
/// apart (``stragglers``), never as this step's — so every step's loss is exact.
final class DeliveryRecorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var deliveries = 0
        var duplicates = 0
        var stragglers = 0
        var window = 0..<Int.max
    }

    private let state = Mutex(State())

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

    /// Starts a new measurement of the publications numbered `window`.
    func begin(_ window: Range<Int>) {
        state.withLock { $0 = State(window: window) }
    }

    /// Deliveries of an earlier measurement that arrived during this one.
    var stragglers: Int { state.withLock { $0.stragglers } }

    var deliveries: Int { state.withLock { $0.deliveries } }
    var duplicates: Int { state.withLock { $0.duplicates } }

    func latency() -> BenchResult.Latency {
        state.withLock { state in
            let h = state.histogram
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
}

/// Wall-clock nanoseconds: publisher and subscribers compare stamps across processes.
enum WallClock {
    static func nanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

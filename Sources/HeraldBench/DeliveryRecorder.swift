import Foundation
import Histogram
import Synchronization

/// Collects deliveries from every subscriber connection: latency, count, duplicates.
final class DeliveryRecorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var deliveries = 0
        var duplicates = 0
    }

    private let state = Mutex(State())

    /// Records a delivery sent at `sentNanos` (wall clock); `duplicate` when already seen.
    func record(sentNanos: Int64, duplicate: Bool) {
        let micros = UInt64(max(0, (WallClock.nanos() - sentNanos) / 1000))
        state.withLock { state in
            state.deliveries += 1
            if duplicate { state.duplicates += 1 }
            _ = state.histogram.record(min(micros, 60_000_000))
        }
    }

    /// Starts a new measurement (the `max` mode's steps).
    func reset() {
        state.withLock { $0 = State() }
    }

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

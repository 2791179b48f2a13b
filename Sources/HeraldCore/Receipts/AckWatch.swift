import HeraldProtocol
import NIOCore
import Synchronization

/// The delivering node's side of `wait=acked`: which connections were written a publication
/// whose publisher waits for acknowledgements, until they acknowledge it (an `ack` at or past
/// its offset) or the wait is over. Bounded in entries and in time.
public final class AckWatch: Sendable {
    private struct Entry {
        var request: ReceiptRequest
        var position: StreamPosition
        var sequences: Set<UInt64>
        var deadline: NIODeadline
    }

    public let maxEntries: Int
    private let entries = Mutex<[String: [Entry]]>([:])

    public init(maxEntries: Int = 10_000) {
        self.maxEntries = maxEntries
    }

    /// Connections `sequences` were written `request`'s publication at `position` of `channel`.
    func watch(_ request: ReceiptRequest, channel: String, position: StreamPosition, sequences: [UInt64], until deadline: NIODeadline) {
        guard !sequences.isEmpty else { return }
        let limit = maxEntries
        entries.withLock { entries in
            let now = NIODeadline.now()
            var count = 0
            for key in Array(entries.keys) {
                entries[key]!.removeAll { $0.deadline <= now }
                if entries[key]!.isEmpty { entries[key] = nil } else { count += entries[key]!.count }
            }
            guard count < limit else { return }
            entries[channel, default: []].append(Entry(request: request, position: position, sequences: Set(sequences), deadline: deadline))
        }
    }

    /// Connection `sequence` acknowledged `channel` up to `position`.
    /// - Returns: per receipt, how many copies this acknowledged (at most one each).
    func acknowledged(_ sequence: UInt64, channel: String, position: StreamPosition) -> [ReceiptRequest] {
        entries.withLock { entries in
            guard var list = entries[channel] else { return [] }
            let now = NIODeadline.now()
            var acknowledged: [ReceiptRequest] = []
            list.removeAll { $0.deadline <= now }
            for index in list.indices
            where list[index].position.epoch == position.epoch && list[index].position.offset <= position.offset
                && list[index].sequences.remove(sequence) != nil
            {
                acknowledged.append(list[index].request)
            }
            list.removeAll { $0.sequences.isEmpty }
            entries[channel] = list.isEmpty ? nil : list
            return acknowledged
        }
    }
}

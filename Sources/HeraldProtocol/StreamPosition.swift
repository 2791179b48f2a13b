/// Where a notification sits in its channel's history: its `offset` (+1 per publication on the
/// channel, from 1) in the incarnation of the history named by `epoch`.
///
/// An epoch changes whenever the history was lost (Redis restarted without persistence, the
/// history expired, a single node restarted); offsets of different epochs are unrelated. A
/// client that remembers the position of the last notification it saw can ask for everything
/// after it (`subscribe` with `since`) and learns explicitly when that is impossible.
public struct StreamPosition: Codable, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int64
    public var epoch: String

    public init(offset: Int64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }

    public var description: String { "\(offset)@\(epoch)" }
}

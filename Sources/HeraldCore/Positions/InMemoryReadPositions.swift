import HeraldProtocol
import Synchronization

/// ``ReadPositions`` for a node without Redis (and the contract's twin in tests): positions in
/// this process, bounded in users too — past ``maxUsers`` the user acknowledged longest ago is
/// forgotten first.
public final class InMemoryReadPositions: ReadPositions {
    private struct Entry {
        var positions: [String: StreamPosition]
        var touched: UInt64
    }

    public let maxUsers: Int
    public let maxChannelsPerUser: Int
    private let state = Mutex<(users: [String: Entry], clock: UInt64)>(([:], 0))

    public init(maxUsers: Int = 100_000, maxChannelsPerUser: Int = ReadPositionLimits.maxChannelsPerUser) {
        self.maxUsers = maxUsers
        self.maxChannelsPerUser = maxChannelsPerUser
    }

    public func acknowledge(user: String, channel: String, position: StreamPosition) throws(ReadPositionsError) {
        let limit = maxChannelsPerUser
        let result: ReadPositionsError? = state.withLock { state in
            state.clock += 1
            var entry = state.users[user] ?? Entry(positions: [:], touched: 0)
            if entry.positions[channel] == nil, entry.positions.count >= limit { return .tooManyChannels(limit) }
            if let stored = entry.positions[channel], stored.epoch == position.epoch, stored.offset >= position.offset {
                entry.touched = state.clock
                state.users[user] = entry
                return nil
            }
            entry.positions[channel] = position
            entry.touched = state.clock
            state.users[user] = entry
            if state.users.count > maxUsers, let oldest = state.users.min(by: { $0.value.touched < $1.value.touched })?.key {
                state.users[oldest] = nil
            }
            return nil
        }
        if let result { throw result }
    }

    public func position(user: String, channel: String) -> StreamPosition? {
        state.withLock { $0.users[user]?.positions[channel] }
    }

    public func positions(user: String) -> [String: StreamPosition] {
        state.withLock { $0.users[user]?.positions ?? [:] }
    }
}

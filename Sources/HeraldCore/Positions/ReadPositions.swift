import HeraldProtocol

/// Where each user's read positions are kept: for channels of `durable` namespaces, the highest
/// position the user acknowledged (`ack`), so that any new connection of the user — a second
/// device, a reinstalled app — resumes after it.
///
/// Contract, for every implementation:
/// - **Cumulative**: ``acknowledge(user:channel:position:)`` keeps the highest offset of an epoch;
///   an acknowledgement at or below it changes nothing (acks may arrive out of order from two
///   devices). A position of another epoch replaces the stored one: the channel's history
///   started again, and the older epoch can no longer be resumed.
/// - **Bounded**: at most ``maxChannelsPerUser`` channels per user — an acknowledgement for one
///   more is refused with ``ReadPositionsError/tooManyChannels`` — and a user's positions are
///   forgotten after ``retention`` without an acknowledgement.
/// - **Shared**: every node of a cluster reads what any node stored.
public protocol ReadPositions: Sendable {
    func acknowledge(user: String, channel: String, position: StreamPosition) async throws(ReadPositionsError)
    /// The user's position on `channel`, if stored.
    func position(user: String, channel: String) async throws(ReadPositionsError) -> StreamPosition?
    /// Every stored position of the user, by channel.
    func positions(user: String) async throws(ReadPositionsError) -> [String: StreamPosition]
}

public enum ReadPositionsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The store cannot be reached.
    case unavailable(String)
    /// The user has positions on the most channels a user may have.
    case tooManyChannels(Int)

    public var description: String {
        switch self {
        case .unavailable(let reason): "read positions unavailable: \(reason)"
        case .tooManyChannels(let limit): "at most \(limit) channels with a read position per user"
        }
    }
}

public enum ReadPositionLimits {
    /// Channels with a stored position per user.
    public static let maxChannelsPerUser = 1000
    /// How long a user's positions outlive their last acknowledgement: 30 days.
    public static let retentionSeconds = 30 * 24 * 3600
}

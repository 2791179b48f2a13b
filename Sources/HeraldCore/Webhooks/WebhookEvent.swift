/// One cluster-wide change a webhook reports: a channel gained its first subscriber anywhere
/// or lost its last one, a user opened a first connection anywhere or closed the last one.
///
/// `id` is stable across re-sends (the receiver deduplicates by it): the entry id the event was
/// queued under, `<milliseconds>-<sequence>`, which also orders the events.
public struct WebhookEvent: Sendable, Equatable, Encodable {
    public enum Name: String, Sendable, Codable, CaseIterable {
        case channelOccupied = "channel_occupied"
        case channelVacated = "channel_vacated"
        case userOnline = "user_online"
        case userOffline = "user_offline"
    }

    public var id: String
    public var name: Name
    public var channel: String?
    public var user: String?

    public init(id: String, name: Name, channel: String? = nil, user: String? = nil) {
        self.id = id
        self.name = name
        self.channel = channel
        self.user = user
    }

    /// The event `key` had when it became occupied (`occupied`) or vacated.
    public init(id: String, key: OccupancyKey, occupied: Bool) {
        switch key {
        case .channel(let channel):
            self.init(id: id, name: occupied ? .channelOccupied : .channelVacated, channel: channel)
        case .user(let user):
            self.init(id: id, name: occupied ? .userOnline : .userOffline, user: user)
        }
    }

    /// When the event was queued, in milliseconds since 1970: the first part of its id.
    public var queuedAtMillis: Int64 { Self.queuedAtMillis(ofID: id) }

    /// When the event with id `id` was queued, in milliseconds since 1970.
    public static func queuedAtMillis(ofID id: String) -> Int64 {
        Int64(id.prefix { $0 != "-" }) ?? 0
    }
}

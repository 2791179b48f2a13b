import HeraldProtocol

/// Collects join and leave events per channel between flushes, as a pure state machine: the
/// rule that keeps a node's restart from becoming a storm.
///
/// Every flush sends, per channel, either each event of the window in order — when there are
/// at most ``maxEventsPerChannel`` — or one `presence_changed` with the counts, which tells
/// subscribers to ask for `presence` again. Memory is bounded the same way: past the limit a
/// channel keeps counts, not events.
public struct JoinLeaveBatcher: Sendable {
    /// What to publish to one channel's subscribers.
    public enum Announcement: Sendable, Equatable {
        case events(channel: String, [ServerMessage])
        case changed(channel: String, joined: Int, left: Int)
    }

    private struct Window: Sendable {
        var events: [ServerMessage] = []
        var joined = 0
        var left = 0
        var overflowed = false
    }

    public let maxEventsPerChannel: Int
    private var windows: [String: Window] = [:]
    /// Channels in the order their first event of the window came.
    private var order: [String] = []

    public init(maxEventsPerChannel: Int = 32) {
        self.maxEventsPerChannel = maxEventsPerChannel
    }

    public var isEmpty: Bool { windows.isEmpty }

    /// - Returns: `true` for the first event since the last flush (time to schedule one).
    public mutating func joined(_ channel: String, _ member: PresenceMember) -> Bool {
        record(channel, .join(channel: channel, member: member)) { $0.joined += 1 }
    }

    /// - Returns: `true` for the first event since the last flush.
    public mutating func left(_ channel: String, _ member: PresenceMember) -> Bool {
        record(channel, .leave(channel: channel, member: member)) { $0.left += 1 }
    }

    private mutating func record(_ channel: String, _ event: ServerMessage, count: (inout Window) -> Void) -> Bool {
        let first = windows.isEmpty
        var window = windows[channel] ?? {
            order.append(channel)
            return Window()
        }()
        count(&window)
        if !window.overflowed {
            if window.events.count < maxEventsPerChannel {
                window.events.append(event)
            } else {
                window.overflowed = true
                window.events = []
            }
        }
        windows[channel] = window
        return first
    }

    /// Everything collected since the last flush, channel by channel.
    public mutating func flush() -> [Announcement] {
        defer {
            windows = [:]
            order = []
        }
        return order.compactMap { channel in
            guard let window = windows[channel] else { return nil }
            return window.overflowed
                ? .changed(channel: channel, joined: window.joined, left: window.left)
                : .events(channel: channel, window.events)
        }
    }
}

import HeraldCore
import HeraldProtocol

/// A node's own defence against lost pub/sub messages, as a pure state machine.
///
/// Redis pub/sub is at most once: when a node's subscribed connection drops (a `CLIENT KILL`,
/// a proxy timeout) while other nodes publish, those messages never reach it. With positions
/// the node can tell: it remembers the last position it delivered per channel, and when a
/// message skips offsets — or its subscription is re-established after a reconnect — it reads
/// the missing range from the channel's stream and delivers it, in order, before anything
/// newer (which waits here meanwhile). Duplicates (offsets already delivered) are dropped.
/// What the stream no longer holds cannot be healed; the next message then simply carries
/// its real offset, so the clients' own recovery can tell. A read that fails (the command
/// link is not back yet after a failover, while the pub/sub link already is) is retried with
/// backoff for a bounded time: giving up at once would move past a gap the stream still holds,
/// and those notifications would reach nobody live.
struct GapHealingStateMachine {
    enum Action: Equatable {
        /// Hand these to the Hub, in order.
        case deliver([Publication])
        /// Read the channel's history after `offset` and report it with ``fetched(_:_:)``.
        case fetch(channel: String, after: Int64)
        /// The same read, after `delay`: the last one failed.
        case fetchLater(channel: String, after: Int64, delay: Duration)
    }

    struct Channel {
        var last: StreamPosition
        /// A fetch is under way: live messages wait in `buffered`.
        var healing = false
        var buffered: [Publication] = []
        /// Reads that failed in a row while healing this gap.
        var failures = 0
    }

    /// Most messages held per channel while a gap is being read; beyond it the node gives up
    /// healing that gap and delivers what it has.
    let maxBuffered: Int
    /// How many publications one fetch of a channel asks for: its namespace's history size,
    /// so a page never holds more than the stream keeps (a reload may change it).
    let fetchLimit: @Sendable (String) -> Int
    /// The waits between failed reads of one gap; when they are used up the node gives up on
    /// it. The default spans about 17 s, longer than a Sentinel failover or a cluster's
    /// promotion of a replica takes.
    let retryDelays: [Duration]
    private(set) var channels: [String: Channel] = [:]

    static let defaultRetryDelays: [Duration] =
        [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600)]
        + Array(repeating: .seconds(2), count: 7)

    init(
        maxBuffered: Int = 10_000, fetchLimit: @escaping @Sendable (String) -> Int,
        retryDelays: [Duration] = Self.defaultRetryDelays
    ) {
        self.maxBuffered = maxBuffered
        self.fetchLimit = fetchLimit
        self.retryDelays = retryDelays
    }

    /// One page size for every channel.
    init(maxBuffered: Int = 10_000, fetchLimit: Int, retryDelays: [Duration] = Self.defaultRetryDelays) {
        self.init(maxBuffered: maxBuffered, fetchLimit: { _ in fetchLimit }, retryDelays: retryDelays)
    }

    /// The position a subscriber was given: the node must deliver everything after it.
    mutating func seed(_ channel: String, _ position: StreamPosition) {
        guard channels[channel] == nil else { return }
        channels[channel] = Channel(last: position)
    }

    /// A pub/sub message arrived.
    mutating func received(_ publication: Publication) -> [Action] {
        guard let position = publication.position else { return [.deliver([publication])] }
        let name = publication.channel
        guard var channel = channels[name] else {
            channels[name] = Channel(last: position)
            return [.deliver([publication])]
        }
        if channel.healing {
            channel.buffered.append(publication)
            if channel.buffered.count > maxBuffered {
                channels[name] = channel
                return giveUp(name)
            }
            channels[name] = channel
            return []
        }
        if position.epoch != channel.last.epoch {
            // The history was lost and restarted: nothing before it can be fetched.
            channel.last = position
            channels[name] = channel
            return [.deliver([publication])]
        }
        if position.offset <= channel.last.offset { return [] }
        if position.offset == channel.last.offset + 1 {
            channel.last = position
            channels[name] = channel
            return [.deliver([publication])]
        }
        channel.healing = true
        channel.buffered = [publication]
        channels[name] = channel
        return [.fetch(channel: name, after: channel.last.offset)]
    }

    /// The subscription to `channel` is in effect again after the pub/sub connection was lost:
    /// whatever was published meanwhile must be read back.
    mutating func resubscribed(_ name: String) -> [Action] {
        guard var channel = channels[name], !channel.healing else { return [] }
        channel.healing = true
        channels[name] = channel
        return [.fetch(channel: name, after: channel.last.offset)]
    }

    /// The history read for a gap came back.
    mutating func fetched(_ name: String, _ page: HistoryPage) -> [Action] {
        guard var channel = channels[name], channel.healing else { return [] }
        channel.failures = 0
        channels[name] = channel
        guard let latest = page.latest else { return giveUp(name) }
        if latest.epoch != channel.last.epoch {
            // The stream started over (a Redis, or a shard, that came back without its data):
            // everything it holds now was published after this node last heard, so read it
            // from its start rather than after an offset of the old epoch.
            channel.last = StreamPosition(offset: 0, epoch: latest.epoch)
            channels[name] = channel
            return [.fetch(channel: name, after: 0)]
        }
        var out: [Publication] = []
        for publication in page.publications {
            guard let position = publication.position, position.epoch == channel.last.epoch,
                position.offset == channel.last.offset + 1
            else { continue }
            out.append(publication)
            channel.last = position
        }
        let full = page.publications.count >= fetchLimit(name)
        var waiting = channel.buffered
        channel.buffered = []
        while let next = waiting.first, let position = next.position {
            if position.epoch != channel.last.epoch || position.offset == channel.last.offset + 1 {
                out.append(next)
                channel.last = position
            } else if position.offset > channel.last.offset + 1 {
                // Still a gap: read on if the page was cut by its limit, else it is gone.
                if full { break }
                out.append(next)
                channel.last = position
            }
            waiting.removeFirst()
        }
        if !waiting.isEmpty || (full && latest.offset > channel.last.offset) {
            channel.buffered = waiting
            channels[name] = channel
            return (out.isEmpty ? [] : [.deliver(out)]) + [.fetch(channel: name, after: channel.last.offset)]
        }
        channel.healing = false
        channels[name] = channel
        return out.isEmpty ? [] : [.deliver(out)]
    }

    /// The read failed: try again after the next delay; when the delays are used up, deliver
    /// what waits, in order, and the gap stays visible in the offsets.
    mutating func fetchFailed(_ name: String) -> [Action] {
        guard var channel = channels[name], channel.healing else { return [] }
        guard channel.failures < retryDelays.count else { return giveUp(name) }
        let delay = retryDelays[channel.failures]
        channel.failures += 1
        channels[name] = channel
        return [.fetchLater(channel: name, after: channel.last.offset, delay: delay)]
    }

    /// The node no longer has interest in `channel`.
    mutating func forget(_ name: String) {
        channels[name] = nil
    }

    private mutating func giveUp(_ name: String) -> [Action] {
        guard var channel = channels[name] else { return [] }
        let waiting = channel.buffered
        channel.buffered = []
        channel.healing = false
        channel.failures = 0
        if let last = waiting.last?.position { channel.last = last }
        channels[name] = channel
        return waiting.isEmpty ? [] : [.deliver(waiting)]
    }
}

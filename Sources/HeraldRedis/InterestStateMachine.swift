import HeraldProtocol

/// This node's interest in Redis channels — which its pub/sub connection should be subscribed
/// to, which it is, and which commands are in flight — as a pure state machine (postgres-nio's
/// `ListenStateMachine` is the model). Not to be confused with a client's subscribe
/// (``SubscriptionFlow``): this is the node's side, one entry per channel.
///
/// Per channel it keeps what the Hub *wants* and what Redis has *confirmed*. A SUBSCRIBE or
/// UNSUBSCRIBE is in flight for a channel at most once; its reply (one push per channel, or an
/// error reply for the whole command) moves the channel on, and a change of mind while a
/// command is in flight is acted on when the reply comes. Nothing is assumed: a channel
/// counts as subscribed only once Redis said so.
struct InterestStateMachine {
    enum Confirmation: Equatable {
        case unsubscribed
        case subscribing
        case subscribed
        case unsubscribing
    }

    struct Entry: Equatable {
        var wanted: Bool
        var state: Confirmation
    }

    /// Commands to send now; channels are grouped so one command carries many.
    struct Commands: Equatable {
        var subscribe: [String] = []
        var unsubscribe: [String] = []
        var isEmpty: Bool { subscribe.isEmpty && unsubscribe.isEmpty }
    }

    /// What a reply settled.
    struct Settled: Equatable {
        /// Wanted and now confirmed: their waiters succeed.
        var confirmed: [String] = []
        /// Not confirmed and no longer going to be by this attempt: their waiters fail.
        var failed: [String] = []
        /// Commands the new state needs (a change of mind while a command was in flight).
        var commands = Commands()
    }

    private(set) var entries: [String: Entry] = [:]
    /// Channels whose wanted and confirmed states may differ and that have no command in flight.
    private var dirty = Set<String>()
    private(set) var isConnected = false

    // MARK: Events

    /// The Hub's interest in `channel` changed. Commands go out on the next ``flush()``.
    mutating func interestChanged(_ channel: String, wanted: Bool) {
        var entry = entries[channel] ?? Entry(wanted: false, state: .unsubscribed)
        entry.wanted = wanted
        entries[channel] = entry
        dirty.insert(channel)
    }

    /// The commands that bring Redis to the wanted state, for channels with none in flight.
    mutating func flush() -> Commands {
        guard isConnected else { return Commands() }
        var commands = Commands()
        for channel in dirty {
            guard var entry = entries[channel] else { continue }
            switch (entry.wanted, entry.state) {
            case (true, .unsubscribed):
                entry.state = .subscribing
                commands.subscribe.append(channel)
                entries[channel] = entry
            case (false, .subscribed):
                entry.state = .unsubscribing
                commands.unsubscribe.append(channel)
                entries[channel] = entry
            case (false, .unsubscribed):
                entries[channel] = nil
            default:
                break
            }
        }
        dirty.removeAll(keepingCapacity: true)
        return commands
    }

    /// A new pub/sub connection is up: it is subscribed to nothing yet.
    mutating func connected() {
        isConnected = true
        for (channel, entry) in entries {
            if entry.wanted {
                entries[channel] = Entry(wanted: true, state: .unsubscribed)
                dirty.insert(channel)
            } else {
                entries[channel] = nil
            }
        }
    }

    /// The pub/sub connection dropped: nothing is confirmed any more. Returns the channels
    /// that had waiters for a confirmation this connection can no longer bring: they wait for
    /// the next connection now (the broker bounds how long).
    mutating func disconnected() -> [String] {
        isConnected = false
        var unconfirmed: [String] = []
        for (channel, entry) in entries {
            if entry.wanted {
                if entry.state != .subscribed { unconfirmed.append(channel) }
                entries[channel] = Entry(wanted: true, state: .unsubscribed)
            } else {
                entries[channel] = nil
            }
        }
        dirty.removeAll()
        return unconfirmed
    }

    /// Redis confirmed a SUBSCRIBE of these channels.
    mutating func subscribeSucceeded(_ channels: [String]) -> Settled {
        var settled = Settled()
        for channel in channels {
            guard var entry = entries[channel], entry.state == .subscribing else { continue }
            entry.state = .subscribed
            entries[channel] = entry
            if entry.wanted {
                settled.confirmed.append(channel)
            } else {
                dirty.insert(channel)
            }
        }
        settled.commands = flush()
        return settled
    }

    /// Redis refused a SUBSCRIBE (an ACL `NOPERM`, say) or the command failed.
    mutating func subscribeFailed(_ channels: [String]) -> Settled {
        var settled = Settled()
        for channel in channels {
            guard var entry = entries[channel], entry.state == .subscribing else { continue }
            entry.state = .unsubscribed
            if entry.wanted {
                settled.failed.append(channel)
                entries[channel] = entry
            } else {
                entries[channel] = nil
            }
        }
        return settled
    }

    /// Redis confirmed an UNSUBSCRIBE of these channels.
    mutating func unsubscribeSucceeded(_ channels: [String]) -> Settled {
        for channel in channels {
            guard var entry = entries[channel], entry.state == .unsubscribing else { continue }
            entry.state = .unsubscribed
            if entry.wanted {
                entries[channel] = entry
                dirty.insert(channel)
            } else {
                entries[channel] = nil
            }
        }
        return Settled(commands: flush())
    }

    /// An UNSUBSCRIBE failed: the channels are still subscribed.
    mutating func unsubscribeFailed(_ channels: [String]) {
        for channel in channels {
            guard var entry = entries[channel], entry.state == .unsubscribing else { continue }
            entry.state = .subscribed
            entries[channel] = entry
        }
    }

    /// Redis Cluster dropped `channel`'s sharded subscription (its slot moved): not subscribed
    /// any more, and not asked for again here — the channel's new owner subscribes it.
    mutating func dropped(_ channel: String) {
        guard var entry = entries[channel] else { return }
        entry.state = .unsubscribed
        entries[channel] = entry.wanted ? entry : nil
        dirty.remove(channel)
    }

    /// Forgets `channel` altogether, sending nothing: another connection serves it now. A
    /// reply still in flight for it finds no entry and changes nothing.
    mutating func abandon(_ channel: String) {
        entries[channel] = nil
        dirty.remove(channel)
    }

    /// Marks channels whose last command failed so the next ``flush()`` tries them again.
    mutating func retry(_ channels: [String]) {
        for channel in channels where entries[channel] != nil { dirty.insert(channel) }
    }

    // MARK: Queries

    /// What a new waiter for `channel` should expect.
    enum Readiness: Equatable {
        /// Confirmed already: succeed at once.
        case ready
        /// Wanted and on its way: wait for the reply.
        case pending
        /// Wanted, but the link is down: it is subscribed once the link is back, which the
        /// caller may wait for (bounded).
        case disconnected
        /// Not wanted: nothing will confirm it.
        case unavailable
    }

    func readiness(of channel: String) -> Readiness {
        guard let entry = entries[channel], entry.wanted else { return .unavailable }
        if entry.state == .subscribed { return .ready }
        return isConnected ? .pending : .disconnected
    }

    /// Channels Redis has confirmed (for tests and logs).
    var confirmedChannels: Set<String> {
        Set(entries.filter { $0.value.state == .subscribed }.keys)
    }
}

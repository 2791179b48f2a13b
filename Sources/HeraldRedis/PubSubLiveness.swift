import NIOCore

/// When a quiet pub/sub link is probed, and when it is given up, as a pure state machine.
///
/// A subscribed connection can stay open and still deliver nothing (a proxy that lost its
/// upstream, a server that failed over without closing it): from the outside it looks like a
/// quiet channel while `/health` is green. So a link silent for ``interval`` publishes a probe
/// to a channel only it listens to; if nothing arrives within another interval after the
/// probe, the link is rebuilt — resubscribing, and healing every channel from its stream.
/// Any message counts as a sign of life, so a busy link is never probed.
struct PubSubLiveness {
    enum Action: Equatable {
        case wait
        /// Publish to the probe channel.
        case probe
        /// Close the link: its reconnect resubscribes and heals.
        case rebuild
    }

    let interval: TimeAmount
    private(set) var probeSentAt: NIODeadline?

    init(interval: TimeAmount) {
        self.interval = interval
    }

    /// Called every fraction of ``interval`` while the link is up.
    mutating func check(lastHeard: NIODeadline, now: NIODeadline) -> Action {
        if let sent = probeSentAt {
            if lastHeard >= sent {
                probeSentAt = nil
            } else if now - sent >= interval {
                probeSentAt = nil
                return .rebuild
            } else {
                return .wait
            }
        }
        guard now - lastHeard >= interval else { return .wait }
        probeSentAt = now
        return .probe
    }

    /// A new link: nothing is owed.
    mutating func connected() {
        probeSentAt = nil
    }
}

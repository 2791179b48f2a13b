import NIOCore

/// When an HTTP connection that is not yet useful must be closed, as a pure state machine.
///
/// Every connection has a deadline until it is useful: a new one must send a complete request
/// head (a REST request or a WebSocket handshake) within the header timeout; after a response
/// ends, a keep-alive connection must send its next head within the idle timeout. While a
/// request is being served — however long, an SSE stream included — there is no deadline.
/// A WebSocket leaves this machine at the upgrade; its own heartbeat rules take over.
///
/// Time is passed in; the handler keeps one timer, armed for ``deadline``.
public struct RequestHeadDeadline: Sendable {
    enum State: Equatable, Sendable {
        /// Waiting for a request head until `deadline`; `first`: none has come yet.
        case awaitingHead(deadline: NIODeadline, first: Bool)
        /// Requests whose response has not ended yet (pipelined ones count too).
        case serving(open: Int)
    }

    public let headerTimeout: TimeAmount
    public let idleTimeout: TimeAmount
    private(set) var state: State

    public init(headerTimeout: TimeAmount, idleTimeout: TimeAmount, now: NIODeadline) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.state = .awaitingHead(deadline: now + headerTimeout, first: true)
    }

    /// A complete request head arrived.
    /// - Returns: whether it is the connection's first (it is no longer pending).
    public mutating func headReceived() -> Bool {
        switch state {
        case .awaitingHead(_, let first):
            state = .serving(open: 1)
            return first
        case .serving(let open):
            state = .serving(open: open + 1)
            return false
        }
    }

    /// A response ended; with none left open, the idle timeout starts.
    public mutating func responseEnded(now: NIODeadline) {
        guard case .serving(let open) = state else { return }
        state = open > 1 ? .serving(open: open - 1) : .awaitingHead(deadline: now + idleTimeout, first: false)
    }

    /// When the connection is to be closed, if nothing happens first; `nil` while serving.
    public var deadline: NIODeadline? {
        if case .awaitingHead(let deadline, _) = state { deadline } else { nil }
    }

    /// The timer fired. `true`: close the connection.
    public func deadlineReached(now: NIODeadline) -> Bool {
        guard let deadline else { return false }
        return now >= deadline
    }

    /// Whether the connection has not yet sent its first request head.
    public var isPending: Bool {
        if case .awaitingHead(_, true) = state { true } else { false }
    }
}

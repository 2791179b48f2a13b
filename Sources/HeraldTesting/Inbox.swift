import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization

/// Things a test receives (WebSocket frames, client events), awaited one at a time with a
/// timeout, so that no wait in a test can outlast its deadline.
public final class Inbox<Element: Sendable>: Sendable {
    public enum Outcome: Sendable {
        case element(Element)
        /// Nothing more will come (the connection closed, the stream ended).
        case finished
        case timedOut
    }

    private struct State {
        var queue: [Element] = []
        var waiter: (id: Int, continuation: CheckedContinuation<Outcome, Never>)?
        var nextID = 0
        var finished = false
    }

    private let state = Mutex(State())
    /// Where timeouts are scheduled; the singleton group outlives every test.
    private let timers: any EventLoop

    public init(timers: any EventLoop = MultiThreadedEventLoopGroup.singleton.next()) {
        self.timers = timers
    }

    public func push(_ element: Element) {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            guard !state.finished else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.queue.append(element)
            return nil
        }
        waiter?.resume(returning: .element(element))
    }

    /// No more elements; waiters see ``Outcome/finished`` once the queue is drained.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(returning: .finished)
    }

    var isFinished: Bool { state.withLock { $0.finished && $0.queue.isEmpty } }

    /// The next element, ``Outcome/finished``, or ``Outcome/timedOut`` after `timeout`.
    public func next(timeout: TimeAmount) async -> Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let id: Int? = state.withLock { state in
                if !state.queue.isEmpty {
                    continuation.resume(returning: .element(state.queue.removeFirst()))
                    return nil
                }
                if state.finished {
                    continuation.resume(returning: .finished)
                    return nil
                }
                precondition(state.waiter == nil, "one waiter at a time")
                state.nextID += 1
                state.waiter = (state.nextID, continuation)
                return state.nextID
            }
            guard let id else { return }
            timers.scheduleTask(in: timeout) {
                let expired = self.state.withLock { state -> CheckedContinuation<Outcome, Never>? in
                    guard let waiter = state.waiter, waiter.id == id else { return nil }
                    state.waiter = nil
                    return waiter.continuation
                }
                expired?.resume(returning: .timedOut)
            }
        }
    }
}

/// Feeds a channel's inbound messages (WebSocket frames, raw bytes) into an ``Inbox``.
public final class InboxHandler<Message: Sendable>: ChannelInboundHandler, Sendable {
    public typealias InboundIn = Message
    let inbox: Inbox<Message>

    public init(inbox: Inbox<Message>) {
        self.inbox = inbox
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.push(unwrapInboundIn(data))
    }

    public func channelInactive(context: ChannelHandlerContext) {
        inbox.finish()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

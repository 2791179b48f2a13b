import NIOCore
import NIOWebSocket
import Synchronization

/// Frames received by a test client, awaited one at a time with a timeout.
final class FrameInbox: Sendable {
    enum Event: Sendable {
        case frame(WebSocketFrame)
        case disconnected
    }

    private struct State {
        var queue: [Event] = []
        var waiter: (id: Int, continuation: CheckedContinuation<Event?, Never>)?
        var nextID = 0
        var disconnected = false
    }

    private let state = Mutex(State())
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func push(_ event: Event) {
        let waiter = state.withLock { state -> CheckedContinuation<Event?, Never>? in
            if case .disconnected = event {
                if state.disconnected { return nil }
                state.disconnected = true
            }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.queue.append(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    var isDisconnected: Bool { state.withLock { $0.disconnected && $0.queue.isEmpty } }

    /// The next event, or `nil` after `timeout`.
    func next(timeout: TimeAmount) async -> Event? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Event?, Never>) in
            let id: Int? = state.withLock { state in
                if !state.queue.isEmpty {
                    continuation.resume(returning: state.queue.removeFirst())
                    return nil
                }
                if state.disconnected {
                    continuation.resume(returning: .disconnected)
                    return nil
                }
                state.nextID += 1
                state.waiter = (state.nextID, continuation)
                return state.nextID
            }
            guard let id else { return }
            eventLoop.scheduleTask(in: timeout) {
                let expired = self.state.withLock { state -> CheckedContinuation<Event?, Never>? in
                    guard let waiter = state.waiter, waiter.id == id else { return nil }
                    state.waiter = nil
                    return waiter.continuation
                }
                expired?.resume(returning: nil)
            }
        }
    }
}

/// Feeds a channel's inbound frames into a ``FrameInbox``.
final class InboxHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    let inbox: FrameInbox

    init(inbox: FrameInbox) {
        self.inbox = inbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.push(.frame(unwrapInboundIn(data)))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.push(.disconnected)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

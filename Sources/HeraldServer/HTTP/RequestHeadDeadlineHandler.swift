import HeraldCore
import NIOCore
import NIOHTTP1

/// Closes an HTTP connection that is not useful in time: ``RequestHeadDeadline`` decides,
/// this handler watches the request heads and response ends go by and keeps the one timer.
///
/// It sits right behind the HTTP decoder, so it sees every request whatever serves it
/// (the publish fast path, the router, an SSE stream, a WebSocket handshake) and leaves the
/// pipeline at the upgrade. It also gives back the connection's place among its address's
/// ``PendingConnections`` once the first head has arrived (or the connection closed first).
final class RequestHeadDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart

    private var machine: RequestHeadDeadline
    private let pending: PendingConnections
    /// The peer address while it counts among the pending; `nil` once released.
    private var pendingAddress: String?
    private var timer: (deadline: NIODeadline, task: Scheduled<Void>)?

    /// - Parameter address: the peer's address, if the connection took a place among the pending.
    init(machine: RequestHeadDeadline, pending: PendingConnections, address: String?) {
        self.machine = machine
        self.pending = pending
        self.pendingAddress = address
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.task.cancel()
        timer = nil
        releasePending()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.task.cancel()
        timer = nil
        releasePending()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            if machine.headReceived() { releasePending() }
            arm(context: context)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            machine.responseEnded(now: .now())
            arm(context: context)
        }
        context.write(data, promise: promise)
    }

    /// Keeps one timer for the machine's deadline, lazily: a request served meanwhile only
    /// moves the deadline later, and the timer, when it fires, checks it and waits again for
    /// the new one. A keep-alive connection answering thousands of requests schedules a timer
    /// about once per timeout, not once per request (measured on the publish path). Only a
    /// deadline earlier than the timer's reschedules it.
    private func arm(context: ChannelHandlerContext) {
        guard let deadline = machine.deadline else { return }
        if let timer {
            guard deadline < timer.deadline else { return }
            timer.task.cancel()
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = (deadline, context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            guard handler.machine.deadlineReached(now: .now()) else { return handler.arm(context: context) }
            context.close(promise: nil)
        })
    }

    private func releasePending() {
        guard let address = pendingAddress else { return }
        pendingAddress = nil
        pending.release(address)
    }
}

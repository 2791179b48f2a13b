import NIOCore

/// The only handler of a new connection until its first request says what it is: a WebSocket
/// handshake for `/ws…` is answered here and the connection becomes a WebSocket in one step;
/// anything else gets the HTTP handlers, with every byte read so far handed on unchanged.
///
/// Nginx works this way: one parse of the handshake, then the frame handlers, with nothing to
/// tear down. Before this handler a WebSocket went through NIO's HTTP decoder and typed
/// upgrader, whose pipeline rebuild was a third of a connection's CPU.
///
/// The decision is ``WebSocketHandshake``'s (pure); this class performs it. While it waits
/// for a token's verdict or the connect hook, it reads nothing more: bytes that came behind the
/// handshake wait here and reach the frame decoder once it is installed.
final class FirstRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// The head is still arriving.
        case reading(ByteBuffer?)
        /// The head is read; the endpoint waits for an answer (token, hook); `rest` came behind it.
        case opening(rest: ByteBuffer)
        /// Handed on or closed.
        case done
    }

    private let child: HeraldChildChannel
    /// What the connection became; `nil` once said.
    private var promise: EventLoopPromise<HeraldChildChannel.UpgradeResult>?
    private var state = State.reading(nil)
    /// The peer address while it counts among the pending connections (``PendingConnections``).
    private var pendingAddress: String?
    private var headerTimer: Scheduled<Void>?
    /// When the connection was set up: its first head is due `headerTimeout` after this,
    /// whichever handler ends up waiting for it.
    private let accepted = NIODeadline.now()
    /// Whether reading was paused while the handshake waited for an answer.
    private var readingPaused = false

    init(child: HeraldChildChannel, promise: EventLoopPromise<HeraldChildChannel.UpgradeResult>, pendingAddress: String?) {
        self.child = child
        self.promise = promise
        self.pendingAddress = pendingAddress
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let timeout = child.configuration.connectionLimits.headerTimeout
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(deadline: accepted + timeout) { loopBound.value.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        switch state {
        case .reading(var buffered):
            if buffered == nil {
                buffered = incoming
            } else {
                buffered!.writeBuffer(&incoming)
            }
            state = .reading(buffered)
            decide(context: context, bytes: buffered!)
        case .opening(var rest):
            // Only what the last read delivered; reading is paused.
            rest.writeBuffer(&incoming)
            state = .opening(rest: rest)
        case .done:
            context.fireChannelRead(data)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The listener is shutting down: a connection that has not made its first request yet
        // has nothing to finish.
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS failure or a reset before the first request: nothing to answer.
        context.close(promise: nil)
    }

    private func decide(context: ChannelHandlerContext, bytes: ByteBuffer) {
        switch WebSocketHandshake.read(bytes.readableBytesView) {
        case .needMore:
            return
        case .http:
            handToHTTP(context: context, bytes: bytes)
        case .refused(let refusal):
            state = .done
            releasePending()
            child.refuse(refusal, context: context)
            succeed(.handled)
        case .handshake(let handshake, let headLength):
            releasePending()
            headerTimer?.cancel()
            let rest = bytes.getSlice(at: bytes.readerIndex + headLength, length: bytes.readableBytes - headLength) ?? ByteBuffer()
            state = .opening(rest: rest)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            child.open(handshake, channel: context.channel) { outcome in
                let (handler, context) = loopBound.value
                handler.opened(outcome, context: context)
            }
            // Still opening: it waits for a token's verdict or the connect hook. Nothing more is
            // read meanwhile (a client that sends while it waits does not fill memory); the
            // installed endpoint reads again. Only a handshake that waits pays for the option:
            // setting it was ~6 % of an anonymous connect's CPU in the profile.
            if case .opening = state {
                readingPaused = true
                try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            }
        }
    }

    /// The endpoint's answer: install it (or refuse), then pass on what came behind the head.
    private func opened(_ outcome: HeraldChildChannel.Opening, context: ChannelHandlerContext) {
        guard case .opening(let rest) = state, context.channel.isActive else { return }
        state = .done
        switch outcome {
        case .refused(let status, let error):
            child.refuse(status: status, error: error, context: context)
            succeed(.handled)
        case .open(let install):
            context.write(wrapInboundOut(install.response), promise: nil)
            do {
                try child.installWebSocket(install, on: context.channel)
                if readingPaused { try context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true) }
            } catch {
                context.close(promise: nil)
                return
            }
            context.flush()
            if rest.readableBytes > 0 {
                context.fireChannelRead(wrapInboundOut(rest))
                context.fireChannelReadComplete()
            }
            // The promise first: removing this handler ends it as a closed connection would.
            succeed(.handled)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private func handToHTTP(context: ChannelHandlerContext, bytes: ByteBuffer) {
        state = .done
        headerTimer?.cancel()
        let address = pendingAddress
        pendingAddress = nil
        do {
            // The HTTP deadline keeps this one's start: a client that dribbles the first bytes
            // of a request does not earn a second header timeout.
            let http = try child.installHTTP(on: context.channel, pendingAddress: address, since: accepted)
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
            succeed(.notUpgraded(http))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            if let address { child.pending.release(address) }
            context.close(promise: nil)
        }
    }

    private func succeed(_ result: HeraldChildChannel.UpgradeResult) {
        promise?.succeed(result)
        promise = nil
    }

    /// Closed (or removed) before the connection was handed on: whoever waits on it stops.
    private func finish() {
        headerTimer?.cancel()
        headerTimer = nil
        releasePending()
        state = .done
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
    }

    private func releasePending() {
        guard let address = pendingAddress else { return }
        pendingAddress = nil
        child.pending.release(address)
    }
}

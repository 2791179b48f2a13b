import HeraldCore
import HeraldProtocol
import NIOCore

/// The connection's asynchronous operations: a subscribe (with its hook), presence, a
/// client's post (with its hook), an `auth`. Each holds the messages that arrive behind it
/// and hands them back, in order, when it ends.
extension WebSocketConnection {
    /// Starts an operation: later messages wait, and the socket is not read meanwhile (only
    /// what one read brought can pile up).
    func begin(_ operation: ConnectionStateMachine.Operation) {
        state.lifecycle.operationStarted(operation)
        try? context?.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
    }

    /// Ends the operation and handles what arrived behind it, in order.
    func end(held: [ByteBuffer]) {
        for message in held { textReceived(message) }
        guard !state.lifecycle.isBusy, state.isOpen else { return }
        // Turning autoRead back on issues the read that was held back.
        try? context?.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
    }

    /// Joins the channel, then reads its position and — with `since` — what the client missed;
    /// `subscribed` goes out once the broker confirmed the subscription (so the client then
    /// receives every later publication), followed by what ``SubscriptionFlow`` decided. If
    /// the broker cannot confirm, the client gets `error` and the subscription is undone.
    ///
    /// A subscribe without `since` to a `durable` channel by a user resumes after the user's
    /// acknowledged position, read first.
    func join(_ channel: String, since: StreamPosition?, loop: any EventLoop) {
        guard since == nil, let user = state.client.access.userID, state.client.namespaces.policy(for: channel)?.durable == true else {
            return join(channel, since: since, fromAcknowledged: false, loop: loop)
        }
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        services.joiner.resumePosition(of: channel, user: user, namespaces: state.client.namespaces, on: loop).whenSuccess { stored in
            let connection = loopBound.value
            guard connection.state.isOpen, connection.state.client.subscriptions.contains(channel) else {
                return connection.end(held: connection.state.lifecycle.operationFinished())
            }
            connection.join(channel, since: stored, fromAcknowledged: stored != nil, loop: loop)
        }
    }

    private func join(_ channel: String, since: StreamPosition?, fromAcknowledged: Bool, loop: any EventLoop) {
        let query = state.subscribing(channel, since: since, fromAcknowledged: fromAcknowledged)
        logger.trace("subscribed", metadata: ["channel": "\(channel)"])
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        services.joiner.join(self, to: channel, query: query, on: loop).whenSuccess {
            loopBound.value.answered(channel, $0)
        }
    }

    /// Carries out what the subscribe to `channel` came to, and ends the operation.
    func answered(_ channel: String, _ answer: Session.SubscribeAnswer) {
        switch answer {
        case .notConfirmed(let error):
            logger.warning("subscription not confirmed by the broker", metadata: ["channel": "\(channel)", "error": "\(error)"])
        case .read(.failure(let error), _):
            logger.warning("could not read the channel's history", metadata: ["channel": "\(channel)", "error": "\(error)"])
        case .read:
            break
        }
        perform(state.answered(channel, answer))
        nextOperation()
    }

    /// The operation in flight is done: the next channel the connect hook named, if any (the
    /// operation goes on), else the messages held behind it.
    func nextOperation() {
        while state.isOpen, !joinsAtConnect.isEmpty, let loop = context?.eventLoop {
            switch state.client.subscribeAtConnect(joinsAtConnect.removeFirst()) {
            case .subscribe(let channel, let since):
                return join(channel, since: since, loop: loop)
            case .reply(let message):
                send(message)
            default:
                break
            }
        }
        joinsAtConnect = []
        end(held: state.lifecycle.operationFinished())
    }

    /// A subscribe to a namespace with `subscribe_hook`: the backend decides, off the loop;
    /// messages that arrive meanwhile wait behind it.
    func askSubscribeHook(_ channel: String, since: StreamPosition?, loop: any EventLoop) {
        begin(.other)
        let (hooks, client, user) = (services.hooks, clientID, state.client.access.userID)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { () -> HookVerdict in
            guard let hooks else { return .unavailable("no subscribe hook is configured") }
            return await hooks.subscribe(client: client, user: user, channel: channel)
        }.whenSuccess { verdict in
            let connection = loopBound.value
            guard connection.state.isOpen else { return connection.nextOperation() }
            switch connection.state.client.subscribeHookAnswered(channel, since: since, verdict) {
            case .subscribe(let channel, let since):
                connection.join(channel, since: since, loop: loop)
            case .resubscribe(let channel):
                let query = connection.state.resubscribing(channel)
                connection.services.joiner.read(
                    channel, query: query, localCount: connection.hub.subscriberCount(channel), on: loop
                ).whenSuccess { loopBound.value.answered(channel, $0) }
            case .reply(let message):
                connection.send(message)
                connection.nextOperation()
            default:
                connection.nextOperation()
            }
        }
    }

    /// A `message` to a namespace with `publish_hook`: published as the backend rewrote it, or
    /// refused; later messages wait, so a client's messages keep their order.
    func askPublishHook(_ channel: String, text: String, loop: any EventLoop) {
        begin(.other)
        let (hooks, client, user) = (services.hooks, clientID, state.client.access.userID)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { () -> BackendHooks.PublishVerdict in
            guard let hooks else { return .unavailable("no publish hook is configured") }
            return await hooks.publish(client: client, user: user, channel: channel, text: text)
        }.whenSuccess { verdict in
            let connection = loopBound.value
            switch verdict {
            case .publish(let rewritten, let data):
                connection.post(rewritten ?? text, data: data, to: channel, loop: loop)
            case .refused(let message):
                connection.send(.error(ProtocolError(.forbidden, message, channel: channel)))
            case .unavailable(let message):
                connection.send(.error(ProtocolError(.temporarilyUnavailable, message, channel: channel)))
            }
            connection.nextOperation()
        }
    }

    /// `presence`: the channel's members, read like a subscribe's history — as an operation,
    /// so the reply comes in the order of the client's messages.
    func presence(of channel: String, loop: any EventLoop) {
        begin(.other)
        let store = services.presence
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { () -> Result<PresencePage, PresenceError> in
            do throws(PresenceError) {
                return .success(try await store.members(of: channel, after: nil, limit: ServerMessage.maxPresenceMembers))
            } catch {
                return .failure(error)
            }
        }.whenSuccess { result in
            let connection = loopBound.value
            switch result {
            case .success(let page): connection.send(.presence(channel: channel, members: page.members, total: page.total))
            case .failure(let error): connection.send(.error(ProtocolError(.unavailable, "could not read presence: \(error)")))
            }
            connection.end(held: connection.state.lifecycle.operationFinished())
        }
    }

    /// An `ack`: it counts for publishers waiting with `wait=acked`, and for a `durable`
    /// channel of a user, the user's position moves up to it (any device resumes after it).
    /// No reply unless it could not be recorded.
    func acknowledge(_ channel: String, offset: Int64, epoch: String?, loop: any EventLoop) {
        guard let position = state.acknowledged(channel, offset: offset, epoch: epoch) else { return }
        // Publishers waiting with `wait=acked` count it.
        hub.receipts.acknowledged(sequence, channel: channel, position: position)
        guard let user = state.client.access.userID, state.client.namespaces.policy(for: channel)?.durable == true else { return }
        let positions = services.positions
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { () -> ReadPositionsError? in
            do throws(ReadPositionsError) {
                try await positions.acknowledge(user: user, channel: channel, position: position)
                return nil
            } catch {
                return error
            }
        }.whenSuccess { error in
            guard let error else { return }
            let code: ErrorCode = if case .tooManyChannels = error { .tooManySubscriptions } else { .unavailable }
            loopBound.value.send(.error(ProtocolError(code, "could not record the ack: \(error)", channel: channel)))
        }
    }

    /// A client `message`: published like a REST notification, minus the sender.
    func post(_ text: String, data: JSONValue? = nil, to channel: String, loop: any EventLoop) {
        let notification = OutgoingNotification(
            HeraldNotification(
                channel: channel, body: text, from: clientID, fromName: state.client.name, fromUser: state.client.access.userID),
            data: data.flatMap(RawJSON.init(encoding:)))
        let publication = Publication(
            channel: channel, payload: notification.encoded(), id: notification.id, excludedClient: clientID)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        services.publisher.publish(publication, from: .socket, on: loop).whenFailure { error in
            loopBound.value.send(.error(ProtocolError(.unavailable, "could not publish: \(error)")))
        }
    }

    /// Verifies an `auth` token off the loop; messages that arrive meanwhile are held and
    /// handled, in order, once the verdict is in.
    func authenticate(_ token: String, loop: any EventLoop) {
        guard let verifier = services.verifier else { return }
        begin(.authentication)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask {
            await verifier.verify(token)
        }.whenSuccess { verdict in
            loopBound.value.authenticated(verdict)
        }
    }

    /// The connection's expiry passed: the backend's refresh hook says whether it lives on.
    /// Messages keep flowing meanwhile (nothing waits on the answer).
    func refreshExpiry() {
        guard let hooks = services.hooks, let loop = context?.eventLoop else { return }
        let (client, user) = (clientID, state.client.access.userID)
        let loopBound = NIOLoopBound(self, eventLoop: loop)
        loop.makeFutureWithTask { await hooks.refresh(client: client, user: user) }.whenSuccess { verdict in
            let connection = loopBound.value
            connection.perform(connection.state.refreshAnswered(verdict, now: .now(), wallClockMillis: Self.wallClockMillis()))
        }
    }

    func authenticated(_ verdict: Result<ClientIdentity, ProtocolError>) {
        let outcome = state.lifecycle.authenticationFinished(verdict, now: .now(), wallClockMillis: Self.wallClockMillis())
        switch outcome {
        case .ignore:
            break
        case .refused(let action):
            perform(action)
        case .accepted(let identity, let held):
            state.client.authenticated(identity)
            logger[metadataKey: "user"] = "\(identity.userID)"
            send(.authenticated(userId: identity.userID, expiresAt: identity.expiresAtMillis))
            if let loop = context?.eventLoop { hub.identify(self, as: identity.userID, on: loop) }
            hub.clientChanged(self)
            end(held: held)
        }
        armTimer()
    }
}

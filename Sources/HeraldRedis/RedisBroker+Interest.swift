import HeraldCore
import HeraldProtocol
import NIOCore
import RedisBridge

/// The broker's interest in channels: which it wants, what Redis confirmed, who waits for it
/// (``InterestStateMachine`` decides; this part sends the (UN)SUBSCRIBEs and settles waiters).
extension RedisBroker {
    public func setInterest(in channel: String, _ interested: Bool) {
        let schedule = state.withLock { state -> Bool in
            state.machine.interestChanged(channel, wanted: interested)
            if !interested { Self.take(state.waiters.removeValue(forKey: channel)) }
            guard !state.flushScheduled else { return false }
            state.flushScheduled = true
            return true
        }
        if schedule { loop.execute { self.flush() } }
    }

    /// How long a subscribe waits for a pub/sub link that is down (a failover, a Redis
    /// restart) before it is refused with `unavailable`: a client subscribing in that window is
    /// subscribed late rather than left without the channel.
    public static let subscribeWait = TimeAmount.seconds(5)

    public func whenSubscribed(_ channel: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let readiness = state.withLock { state -> InterestStateMachine.Readiness in
            let readiness = state.machine.readiness(of: channel)
            if readiness == .pending || readiness == .disconnected { state.waiters[channel, default: []].append(promise) }
            return readiness
        }
        switch readiness {
        case .ready: promise.succeed()
        case .pending: break
        case .disconnected: giveUp(on: [(channel, promise)], after: Self.subscribeWait)
        case .unavailable: promise.fail(BrokerError.unavailable(topology.unreachable))
        }
        return promise.futureResult
    }

    /// Fails each waiter still waiting after `delay` (the link did not come back in time).
    private func giveUp(on waiters: [(channel: String, promise: EventLoopPromise<Void>)], after delay: TimeAmount) {
        guard !waiters.isEmpty else { return }
        loop.scheduleTask(in: delay) {
            let expired = self.state.withLock { state in
                waiters.filter { waiter in
                    guard let index = state.waiters[waiter.channel]?.firstIndex(where: { $0.futureResult === waiter.promise.futureResult })
                    else { return false }
                    state.waiters[waiter.channel]?.remove(at: index)
                    if state.waiters[waiter.channel]?.isEmpty == true { state.waiters[waiter.channel] = nil }
                    return true
                }
            }
            for waiter in expired { waiter.promise.fail(BrokerError.unavailable(self.topology.unreachable)) }
        }
    }

    /// Waiters dropped with their interest: the subscriber that waited is gone already.
    private static func take(_ promises: [EventLoopPromise<Void>]?) {
        for promise in promises ?? [] { promise.fail(BrokerError.unavailable("unsubscribed before Redis confirmed")) }
    }

    /// Sends what the machine says is due, in batches.
    func flush() {
        let work = state.withLock { state -> (RedisConnection, InterestStateMachine.Commands)? in
            state.flushScheduled = false
            guard let connection = state.pubsub, connection.isActive else { return nil }
            return (connection, state.machine.flush())
        }
        guard let (connection, due) = work else { return }
        send(due, on: connection)
    }

    private func send(_ due: InterestStateMachine.Commands, on connection: RedisConnection) {
        guard !due.isEmpty else { return }
        logger.trace("interest changed", metadata: ["subscribe": "\(due.subscribe.count)", "unsubscribe": "\(due.unsubscribe.count)"])
        for batch in batches(due.subscribe) {
            connection.pubsub(topology.subscribeCommand, batch.map(keys.pubsub)).whenComplete { result in
                self.settled(subscribe: true, batch, result, on: connection)
            }
        }
        for batch in batches(due.unsubscribe) {
            connection.pubsub(topology.unsubscribeCommand, batch.map(keys.pubsub)).whenComplete { result in
                self.settled(subscribe: false, batch, result, on: connection)
            }
        }
    }

    /// Channels in commands of at most ``batchSize``; in a Redis Cluster one slot per command,
    /// since `SSUBSCRIBE` refuses channels of several slots (`CROSSSLOT`).
    private func batches(_ channels: [String]) -> [[String]] {
        guard topology.cluster != nil else { return channels.chunks(of: Self.batchSize) }
        return Dictionary(grouping: channels, by: ClusterSlot.slot(ofTag:)).values.flatMap { $0.chunks(of: Self.batchSize) }
    }

    /// Redis answered a (UN)SUBSCRIBE: confirm or fail the waiters, and retry what failed.
    private func settled(subscribe: Bool, _ channels: [String], _ result: Result<Void, any Error>, on connection: RedisConnection) {
        // A reply lost with its connection: pubsubClosed settles everything at once.
        if case .failure(let error) = result, (error as? RedisConnectionError) == .closed { return }
        var succeed: [EventLoopPromise<Void>] = []
        var fail: [EventLoopPromise<Void>] = []
        var retryDelay: Duration?
        var confirmed: [String] = []
        var dropped: [String] = []
        let next = state.withLock { state -> InterestStateMachine.Commands in
            // Replies from a connection that is gone were settled by pubsubClosed already.
            guard state.pubsub === connection else { return .init() }
            let outcome: InterestStateMachine.Settled
            switch (subscribe, result) {
            case (true, .success):
                outcome = state.machine.subscribeSucceeded(channels)
                state.retryBackoff.reset()
            case (true, .failure):
                outcome = state.machine.subscribeFailed(channels)
                retryDelay = state.retryBackoff.next()
            case (false, .success):
                outcome = state.machine.unsubscribeSucceeded(channels)
            case (false, .failure):
                state.machine.unsubscribeFailed(channels)
                outcome = .init()
                retryDelay = state.retryBackoff.next()
            }
            for channel in outcome.confirmed { succeed += state.waiters.removeValue(forKey: channel) ?? [] }
            for channel in outcome.failed { fail += state.waiters.removeValue(forKey: channel) ?? [] }
            if subscribe, case .success = result { confirmed = outcome.confirmed }
            if !subscribe, case .success = result { dropped = channels.filter { state.machine.entries[$0] == nil } }
            return outcome.commands
        }
        // Re-established subscriptions may have missed publications; dropped ones are forgotten.
        if !confirmed.isEmpty || !dropped.isEmpty {
            gaps.withLock { gaps in
                for channel in dropped { gaps.forget(channel) }
                for channel in confirmed { perform(gaps.resubscribed(channel)) }
            }
        }
        if case .failure(let error) = result {
            // A cluster's MOVED: the map is stale, and the cluster broker moves the channel.
            _ = redirection(error)
            logger.error("Redis refused \(subscribe ? topology.subscribeCommand : topology.unsubscribeCommand); retrying", metadata: [
                "channels": "\(channels.prefix(5).joined(separator: ","))\(channels.count > 5 ? ",…" : "")",
                "count": "\(channels.count)", "error": "\(error)",
            ])
        }
        for promise in succeed { promise.succeed() }
        for promise in fail { promise.fail(BrokerError.unavailable("Redis refused to subscribe: \(result)")) }
        send(next, on: connection)
        if let retryDelay {
            loop.scheduleTask(in: .nanoseconds(retryDelay.nanoseconds)) {
                self.state.withLock { $0.machine.retry(channels) }
                self.flush()
            }
        }
    }

    /// The pub/sub connection dropped: waiters keep waiting for the link to come back (the
    /// supervisor reconnects and resubscribes), for at most ``subscribeWait``.
    func pubsubClosed(_ connection: RedisConnection) {
        let waiting = state.withLock { state -> [(channel: String, promise: EventLoopPromise<Void>)] in
            guard state.pubsub === connection else { return [] }
            state.pubsub = nil
            return state.machine.disconnected().flatMap { channel in
                (state.waiters[channel] ?? []).map { (channel, $0) }
            }
        }
        giveUp(on: waiting, after: Self.subscribeWait)
    }
}

// MARK: Redis Cluster: channels that change hands

extension RedisBroker {
    /// Redis Cluster dropped the sharded subscription of `channel` (its slot moved away):
    /// it is not subscribed any more; ``ClusterBroker`` moves it to the new owner.
    func slotMoved(_ channel: String) {
        state.withLock { $0.machine.dropped(channel) }
        logger.notice("Redis Cluster moved a subscribed channel's slot", metadata: ["channel": "\(channel)", "redis": "\(topology.address)"])
        onStale?()
    }

    /// Gives up `channel` without a word to Redis (another master serves it now): its interest,
    /// its waiters (they fail: the subscribe is retried by its client), its gap state. Returns
    /// the newest position delivered, for the new owner to heal from.
    func abandon(_ channel: String) -> StreamPosition? {
        let waiters = state.withLock { state in
            state.machine.abandon(channel)
            return state.waiters.removeValue(forKey: channel)
        }
        for promise in waiters ?? [] { promise.fail(BrokerError.unavailable("the channel moved to another Redis Cluster master")) }
        return gaps.withLock { gaps in
            let last = gaps.channels[channel]?.last
            gaps.forget(channel)
            return last
        }
    }

    /// Takes `channel` over from another master: subscribes, and once subscribed reads what
    /// was published after `last` (the position the old owner's link delivered last).
    func adopt(_ channel: String, after last: StreamPosition?) {
        if let last { gaps.withLock { $0.seed(channel, last) } }
        setInterest(in: channel, true)
    }
}

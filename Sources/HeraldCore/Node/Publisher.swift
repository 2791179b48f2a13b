import NIOCore
import Synchronization

/// Where this node's publications enter the broker: REST notifications, client `message`s,
/// and what is addressed to a user.
///
/// It answers what a publisher is told — `delivered`, the channel's subscribers in the whole
/// cluster at the moment of publishing (see docs/protocol.md) — and counts what it accepted.
public final class Publisher: Sendable {
    private let broker: any Broker
    private let counts: SubscriberCounts
    private let metrics: NodeMetrics
    private let accepted = Atomic<Int>(0)
    /// Where a publish that waits for a receipt gathers the nodes' reports.
    private let receipts: Receipts?

    public init(broker: any Broker, counts: SubscriberCounts, metrics: NodeMetrics = NodeMetrics(), receipts: Receipts? = nil) {
        self.broker = broker
        self.counts = counts
        self.metrics = metrics
        self.receipts = receipts
    }

    /// How a publisher waits for its receipt (`?wait=delivered|acked&timeout=`).
    public struct Wait: Sendable, Equatable {
        /// Also wait for the clients' acknowledgements.
        public var acks: Bool
        public var timeout: TimeAmount

        public init(acks: Bool, timeout: TimeAmount) {
            self.acks = acks
            self.timeout = timeout
        }
    }

    public enum WaitError: Error, Sendable {
        /// Too many publishes wait on this node already.
        case tooManyWaiting(Int)
    }

    /// Publishes, then waits until every node that had subscribers reported how many sockets it
    /// wrote the notification to (and, with ``Wait/acks``, until those clients acknowledged it),
    /// or until the timeout — the result says which nodes did not report.
    public func publish(
        _ publication: Publication, waiting wait: Wait, from source: NodeMetrics.PublicationSource = .rest, on loop: any EventLoop
    ) -> EventLoopFuture<(Outcome, ReceiptCollector.Result)> {
        guard let receipts else { return publish(publication, from: source, on: loop).map { ($0, Self.unwaited($0)) } }
        let request = ReceiptRequest(origin: receipts.nodeID, wantsAcks: wait.acks)
        do {
            try receipts.collector.open(request)
        } catch {
            return loop.makeFailedFuture(WaitError.tooManyWaiting(receipts.collector.maxPending))
        }
        var waiting = publication
        waiting.receipt = request
        let publication = waiting
        let (local, collector, node) = (counts.local(publication.channel), receipts.collector, receipts.nodeID)
        // Reports must be able to reach this node before anything is published.
        return receipts.listen(on: loop).flatMap {
            self.publish(publication, from: source, on: loop)
        }.flatMap { outcome in
            guard !outcome.receipt.duplicate else {
                collector.cancel(request.id)
                return loop.makeSucceededFuture((outcome, Self.unwaited(outcome)))
            }
            var expected = Set(outcome.receipt.otherNodes ?? [])
            if local > 0 { expected.insert(node) }
            return collector.wait(for: request.id, expected: expected, timeout: wait.timeout, on: loop).map { (outcome, $0) }
        }.flatMapErrorThrowing { error in
            collector.cancel(request.id)
            throw error
        }
    }

    /// A duplicate publishes nothing: there is nothing to wait for.
    private static func unwaited(_ outcome: Outcome) -> ReceiptCollector.Result {
        ReceiptCollector.Result(delivered: outcome.delivered, nodes: 0, complete: true, missingNodes: [], acked: nil)
    }

    /// What a publisher is told.
    public struct Outcome: Sendable, Equatable {
        /// Subscribers the notification was handed to (0 for a duplicate).
        public var delivered: Int
        public var receipt: PublishReceipt
    }

    /// Publishes and says where the publication landed and to how many subscribers; fails
    /// with ``BrokerError/unavailable(_:)`` when nothing was published. Completes on `loop`,
    /// without a Swift task when the broker counts the other nodes' subscribers itself, or
    /// when there are none.
    public func publish(
        _ publication: Publication, from source: NodeMetrics.PublicationSource = .rest, on loop: any EventLoop
    ) -> EventLoopFuture<Outcome> {
        var publication = publication
        publication.acceptedAtMicros = Publication.nowMicros()
        let local = counts.local(publication.channel)
        let (counts, channel) = (self.counts, publication.channel)
        return broker.publish(publication, on: loop).flatMap { receipt in
            if let counted = receipt.otherNodesSubscribers {
                return loop.makeSucceededFuture(self.accepted(receipt, delivered: local + counted, from: source))
            }
            guard counts.isClustered else {
                return loop.makeSucceededFuture(self.accepted(receipt, delivered: local, from: source))
            }
            return loop.makeFutureWithTask { await counts.others(channel) }.map { others in
                self.accepted(receipt, delivered: local + others, from: source)
            }
        }
    }

    /// Publishes several in one go (``Broker/publish(batch:on:)``: one round trip per Redis
    /// shard), each answered on its own, in order.
    public func publish(
        batch publications: [Publication], from source: NodeMetrics.PublicationSource = .rest, on loop: any EventLoop
    ) -> EventLoopFuture<[Result<Outcome, BrokerError>]> {
        let accepted = Publication.nowMicros()
        var stamped = publications
        for index in stamped.indices { stamped[index].acceptedAtMicros = accepted }
        let channels = stamped.map(\.channel)
        let locals = channels.map { counts.local($0) }
        return broker.publish(batch: stamped, on: loop).flatMap { results in
            self.othersWhereUncounted(channels, results, on: loop).map { others in
                self.outcomes(channels, locals: locals, results, others: others, from: source)
            }
        }
    }

    /// The other nodes' subscribers of each channel the broker did not count in its own trip
    /// (read once per channel; nothing when the broker counted them all, or alone).
    private func othersWhereUncounted(
        _ channels: [String], _ results: [Result<PublishReceipt, BrokerError>], on loop: any EventLoop
    ) -> EventLoopFuture<[String: Int]> {
        guard counts.isClustered else { return loop.makeSucceededFuture([:]) }
        var missing = Set<String>()
        for (channel, result) in zip(channels, results) {
            if case .success(let receipt) = result, receipt.otherNodesSubscribers == nil, !receipt.duplicate { missing.insert(channel) }
        }
        guard !missing.isEmpty else { return loop.makeSucceededFuture([:]) }
        let (counts, wanted) = (self.counts, missing)
        return loop.makeFutureWithTask {
            var found: [String: Int] = [:]
            for channel in wanted { found[channel] = await counts.others(channel) }
            return found
        }
    }

    private func outcomes(
        _ channels: [String], locals: [Int], _ results: [Result<PublishReceipt, BrokerError>], others: [String: Int],
        from source: NodeMetrics.PublicationSource
    ) -> [Result<Outcome, BrokerError>] {
        var outcomes: [Result<Outcome, BrokerError>] = []
        outcomes.reserveCapacity(results.count)
        for index in results.indices {
            switch results[index] {
            case .success(let receipt):
                let counted = receipt.otherNodesSubscribers ?? others[channels[index]] ?? 0
                outcomes.append(.success(accepted(receipt, delivered: locals[index] + counted, from: source)))
            case .failure(let error):
                outcomes.append(.failure(error))
            }
        }
        return outcomes
    }

    private func accepted(_ receipt: PublishReceipt, delivered: Int, from source: NodeMetrics.PublicationSource) -> Outcome {
        metrics.published(from: source, duplicate: receipt.duplicate)
        if receipt.duplicate { return Outcome(delivered: 0, receipt: receipt) }
        accepted.add(1, ordering: .relaxed)
        return Outcome(delivered: delivered, receipt: receipt)
    }

    /// Sends a notification to every connection of `user`, on every node (never stored).
    /// - Returns: those connections, cluster-wide.
    /// - Parameter idempotencyKey: a retry with the same key within the idempotency window
    ///   sends nothing again.
    public func notify(user: String, payload: ByteBuffer, id: String, idempotencyKey: String? = nil) async throws(BrokerError) -> Int {
        let channel = UserChannel.name(of: user)
        let connections = await counts.clusterWide(channel)
        try await broker.publishTransient(
            Publication(
                channel: channel, payload: payload, id: id, idempotencyKey: idempotencyKey, acceptedAtMicros: Publication.nowMicros()))
        metrics.published(from: .rest, duplicate: false)
        accepted.add(1, ordering: .relaxed)
        return connections
    }

    /// Makes every connection of `user`, on every node, act on `signal`.
    /// - Returns: those connections, cluster-wide.
    public func signal(user: String, _ signal: ConnectionSignal) async throws(BrokerError) -> Int {
        let channel = UserChannel.name(of: user)
        let connections = await counts.clusterWide(channel)
        try await broker.send(signal, to: channel)
        return connections
    }

    /// Publications this node accepted.
    public var published: Int { accepted.load(ordering: .relaxed) }
}

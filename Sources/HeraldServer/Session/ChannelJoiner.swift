import HeraldCore
import HeraldProtocol
import NIOCore

/// The I/O of a subscribe, for every transport: join the channel in the Hub, wait for the
/// broker to confirm, then read the channel's history page and its subscriber count.
///
/// What the answers mean is the ``Session``'s business; this only fetches them and brings
/// them back to the connection's event loop.
struct ChannelJoiner: Sendable {
    let hub: Hub
    let history: any ChannelHistory
    let counts: SubscriberCounts
    /// Users' acknowledged positions in `durable` namespaces.
    let positions: any ReadPositions
    /// Shared by every connection of the node (one joiner per node).
    let reads = CoalescedReads()

    /// Where a subscribe without `since` resumes: the user's acknowledged position when the
    /// channel's namespace is `durable` (`nil`: none stored, or the store is unreachable — then
    /// the subscribe is a plain one rather than failing).
    func resumePosition(
        of channel: String, user: String?, namespaces: NamespaceRules, on loop: any EventLoop
    ) -> EventLoopFuture<StreamPosition?> {
        guard let user, namespaces.policy(for: channel)?.durable == true else { return loop.makeSucceededFuture(nil) }
        let positions = self.positions
        return loop.makeFutureWithLoopTask { try? await positions.position(user: user, channel: channel) }
    }

    /// Joins `channel` (deliveries start at once), then reads what `query` asks for once the
    /// broker confirmed. The future completes on `loop`.
    func join(
        _ connection: any HubConnection, to channel: String, query: (after: Int64?, limit: Int), on loop: any EventLoop
    ) -> EventLoopFuture<Session.SubscribeAnswer> {
        let subscription = hub.subscribe(connection, to: channel, on: loop)
        hub.clientChanged(connection)
        return subscription.confirmed.flatMap {
            read(channel, query: query, localCount: subscription.localCount, on: loop)
        }.flatMapErrorThrowing { error in
            .notConfirmed("\(error)")
        }
    }

    /// Reads the channel's history page and count (a subscribe to a channel already joined).
    ///
    /// In a cluster both are round trips to Redis, and subscribes to one channel that ask for
    /// the same page share them (``CoalescedReads``). Alone, the local count is each
    /// subscriber's own and a history read is a look-up in memory: nothing to share.
    func read(_ channel: String, query: (after: Int64?, limit: Int), localCount: Int, on loop: any EventLoop) -> EventLoopFuture<Session.SubscribeAnswer> {
        let (history, counts) = (self.history, self.counts)
        let read: @Sendable () async -> Session.SubscribeAnswer = {
            let page: Result<HistoryPage, BrokerError>
            do throws(BrokerError) {
                page = .success(try await history.history(of: channel, after: query.after, limit: query.limit))
            } catch {
                page = .failure(error)
            }
            let count = counts.isClustered ? await counts.clusterWide(channel) : localCount
            return .read(page, count: count)
        }
        guard counts.isClustered else { return loop.makeFutureWithLoopTask(read) }
        return reads.read(CoalescedReads.Key(channel: channel, after: query.after, limit: query.limit), on: loop, read)
    }
}

/// The rules of one channel namespace (`chat` for `chat:42`): what its channels keep and
/// what clients may do with them. The default namespace's policy is the node's global
/// settings; a namespace in the configuration file starts from it and overrides what it names.
public struct NamespacePolicy: Sendable, Equatable {
    /// History, positions and recovery (`history_size` 0 turns them off).
    public var history: HistoryPolicy
    /// Whether `presence` may be asked for and members are tracked.
    public var presence: Bool
    /// Whether subscribers get `join` and `leave`; `nil` leaves it to the global
    /// `HERALD_JOIN_LEAVE_CHANNELS` pattern.
    public var joinLeave: Bool?
    /// Whether clients may send `message` to these channels.
    public var clientPublish: Bool
    /// Whether a subscribe needs a token's grant (or, with ``subscribeHook``, the backend's yes).
    public var isPrivate: Bool
    /// Whether every subscribe asks the backend's subscribe hook.
    public var subscribeHook: Bool
    /// Whether every client `message` goes through the backend's publish hook.
    public var publishHook: Bool
    /// Whether a user's acknowledged positions are kept (``ReadPositions``): a new connection of
    /// the user that subscribes without `since` resumes after them.
    public var durable: Bool
    /// What a slow client gets; `nil`: ``SlowConsumerPolicy/default(history:)``.
    public var slowConsumerSetting: SlowConsumerPolicy?

    /// What a slow client gets. `catch_up` without history cannot be served: it is
    /// `disconnect` (the configuration refuses the combination where it is written).
    public var slowConsumer: SlowConsumerPolicy {
        guard let setting = slowConsumerSetting else { return .default(history: history) }
        return setting == .catchUp && !history.isOn ? .disconnect : setting
    }

    public init(
        history: HistoryPolicy = HistoryPolicy(), presence: Bool = true, joinLeave: Bool? = nil, clientPublish: Bool = true,
        isPrivate: Bool = false, subscribeHook: Bool = false, publishHook: Bool = false,
        slowConsumer: SlowConsumerPolicy? = nil, durable: Bool = false
    ) {
        self.slowConsumerSetting = slowConsumer
        self.durable = durable
        self.history = history
        self.presence = presence
        self.joinLeave = joinLeave
        self.clientPublish = clientPublish
        self.isPrivate = isPrivate
        self.subscribeHook = subscribeHook
        self.publishHook = publishHook
    }
}

/// What a connection gets once its client reads slower than the channel is published to —
/// its outbound queue passed `HERALD_SEND_QUEUE_BYTES` (`slow_consumer` per namespace,
/// `HERALD_SLOW_CONSUMER` for the default one).
public enum SlowConsumerPolicy: String, Sendable, CaseIterable, Equatable {
    /// Close the connection (the client reconnects and recovers by itself).
    case disconnect
    /// Stop queueing the channel's notifications; once the socket drained, send what was
    /// missed from history, in order, then go on live. Needs history.
    case catchUp = "catch_up"
    /// Keep only the newest pending notification per channel (or per channel and
    /// `conflate_key`) and send those once the socket drained: tickers, dashboards.
    case latest

    /// The policy a namespace gets when it names none: `catch_up` where history can serve it.
    public static func `default`(history: HistoryPolicy) -> SlowConsumerPolicy {
        history.isOn ? .catchUp : .disconnect
    }
}

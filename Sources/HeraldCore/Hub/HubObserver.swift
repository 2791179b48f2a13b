import HeraldProtocol

/// Told by the Hub about every change the cluster registry mirrors (the Hub's one outside
/// listener besides the membership observers). Called on event-loop threads,
/// so implementations only record the change and return.
public protocol HubObserver: AnyObject, Sendable {
    func channelCountChanged(_ channel: String)
    func clientChanged(_ info: ClientInfo, sequence: UInt64)
    func clientRemoved(id: String, sequence: UInt64)
}

import NIOConcurrencyHelpers

/// Connections per peer address that have not yet sent a complete request head.
///
/// Without a bound, one client that opens sockets and sends half a request can hold every
/// descriptor of the node until the header timeout; with it, that client holds at most
/// `maxPerAddress` of them, and everyone else is served. The table holds only addresses with
/// pending connections, so it is bounded by the node's open sockets. Trusted proxies (the
/// nginx in front, carrying many clients) are not counted.
public final class PendingConnections: Sendable {
    /// Most pending connections per address; 0 means no limit.
    public let maxPerAddress: Int
    private let trustedProxies: TrustedProxies
    private let perAddress = NIOLockedValueBox(AddressCounts())

    public init(maxPerAddress: Int, trustedProxies: TrustedProxies) {
        self.maxPerAddress = maxPerAddress
        self.trustedProxies = trustedProxies
    }

    /// A connection from `address` was accepted. `false`: the address has too many pending
    /// already — close it. Pair every `true` with ``release(_:)``.
    public func admit(_ address: String) -> Bool {
        guard maxPerAddress > 0, !trustedProxies.contains(address) else { return true }
        return perAddress.withLockedValue { $0.take(address, limit: maxPerAddress) }
    }

    /// The connection from `address` sent its first request head, or closed before that.
    public func release(_ address: String) {
        guard maxPerAddress > 0, !trustedProxies.contains(address) else { return }
        perAddress.withLockedValue { $0.give(address) }
    }

    /// Pending connections from `address` (for tests and stats).
    public func count(from address: String) -> Int {
        perAddress.withLockedValue { $0.count(address) }
    }
}

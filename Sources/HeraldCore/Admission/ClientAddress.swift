import Foundation

/// Which address a connection comes from, for per-address limits and logs.
public enum ClientAddress {
    /// The client's address.
    ///
    /// A proxy's `X-Forwarded-For` is believed only when the TCP peer is a trusted proxy, and
    /// then only up to the first hop that is not itself trusted: each proxy appends the
    /// address it saw, so everything left of an untrusted hop may be forged by the client.
    /// - Parameters:
    ///   - peer: the TCP peer's IP address.
    ///   - forwardedFor: every `X-Forwarded-For` header value, in order.
    ///   - trustedProxies: addresses of the proxies in front of the node.
    public static func resolve(peer: String, forwardedFor: [String], trustedProxies: TrustedProxies) -> String {
        guard trustedProxies.contains(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        for hop in hops.reversed() where !trustedProxies.contains(hop) {
            return hop
        }
        return hops.first ?? peer
    }
}

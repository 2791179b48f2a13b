import HeraldProtocol

/// Whether a new long-lived connection — a WebSocket or an SSE stream — may take a place on
/// this node: one decision for every transport, so a rule added here holds for all of them.
///
/// Checks run cheapest and least revealing first: the page's origin, then the per-address
/// and rate limits (``ConnectionGate``), then the node's connection cap
/// (``ConnectionSlots``). Token verification is the transport's next step, after all of them.
public struct Admission: Sendable {
    /// A refusal, with the HTTP status a handshake or a REST-style answer carries.
    public struct Refusal: Error, Equatable, Sendable {
        public var status: Int
        public var error: ProtocolError

        public init(status: Int, error: ProtocolError) {
            self.status = status
            self.error = error
        }

        /// Worth retrying later: a rate limit, a full or a draining node.
        public var isTransient: Bool { status == 429 || status == 503 }
    }

    /// An admitted connection's place; hand it back exactly once, when the connection ends.
    public struct Ticket: Sendable {
        public let address: String
        let admission: Admission

        public func release() {
            admission.slots.release()
            admission.gate.release(address)
        }
    }

    /// Origins whose pages may connect; empty allows every origin.
    public let allowedOrigins: Set<String>
    public let maxConnections: Int
    public let trustedProxies: TrustedProxies
    public let gate: ConnectionGate
    public let slots: ConnectionSlots

    public init(
        allowedOrigins: Set<String>, maxConnections: Int, trustedProxies: TrustedProxies, gate: ConnectionGate,
        slots: ConnectionSlots
    ) {
        self.allowedOrigins = allowedOrigins
        self.maxConnections = maxConnections
        self.trustedProxies = trustedProxies
        self.gate = gate
        self.slots = slots
    }

    /// Decides on one connection.
    /// - Parameters:
    ///   - origin: the request's `Origin` header. Browsers always send it on WebSocket
    ///     handshakes and cross-origin `EventSource`s, so pages from other sites are refused
    ///     (cross-site WebSocket hijacking); clients without one are not browsers.
    ///   - peer: the TCP peer's address.
    ///   - forwardedFor: every `X-Forwarded-For` value, believed only from trusted proxies.
    /// - Returns: a ``Ticket`` to release when the connection ends, or the refusal.
    public func decide(origin: String?, peer: String, forwardedFor: [String]) -> Result<Ticket, Refusal> {
        if let origin, !allowedOrigins.isEmpty, !allowedOrigins.contains(origin) {
            return .failure(Refusal(status: 403, error: ProtocolError(.forbidden, "origin \(origin) is not allowed")))
        }
        let address = ClientAddress.resolve(peer: peer, forwardedFor: forwardedFor, trustedProxies: trustedProxies)
        switch gate.admit(address) {
        case .admitted:
            break
        case .tooManyFromAddress(let limit):
            return .failure(Refusal(status: 429, error: ProtocolError(
                .tooManyConnections, "at most \(limit) connections per client address")))
        case .tooFast:
            return .failure(Refusal(status: 429, error: ProtocolError(
                .tooManyConnections, "the node accepts new connections at a limited rate; retry shortly")))
        }
        guard slots.reserve(max: maxConnections) else {
            gate.release(address)
            let reason = slots.isAccepting ? "connection limit of \(maxConnections) reached" : "node is shutting down"
            return .failure(Refusal(status: 503, error: ProtocolError(.unavailable, reason)))
        }
        return .success(Ticket(address: address, admission: self))
    }
}

import HeraldProtocol
import NIOCore

/// The rules of one WebSocket client session, as a pure state machine.
///
/// It owns what a connection *is* (id, name, subscriptions, rate budget) and decides what each
/// inbound text message means. It performs no I/O: the connection handler carries out the
/// returned ``Action`` against the Hub and the socket. Subscriptions are recorded here as soon
/// as they are accepted, so the set is the single truth the handler unwinds on disconnect.
public struct ClientSession: Sendable {
    public enum Action: Equatable, Sendable {
        /// Send this message to the client.
        case reply(ServerMessage)
        /// Verify this connection token, then call ``authenticated(_:)`` or close the connection.
        case authenticate(token: String)
        /// Join `channel` in the Hub, then reply `subscribed` with the channel's count and
        /// position (replaying what followed `since`, when given).
        case subscribe(String, since: StreamPosition?)
        /// Ask the backend's subscribe hook first, then call ``subscribeHookAnswered(_:since:_:)``.
        case askSubscribeHook(String, since: StreamPosition?)
        /// Already subscribed: reply `subscribed` again with the current count (idempotent).
        case resubscribe(String)
        /// Leave `channel` in the Hub and reply `unsubscribed`.
        case unsubscribe(String)
        /// Publish `text` to `channel` on behalf of this client.
        case publish(channel: String, text: String)
        /// Ask the backend's publish hook, which may rewrite or veto the `message`.
        case askPublishHook(channel: String, text: String)
        /// Read the members of `channel` (one the client is subscribed to) and reply `presence`.
        case presence(String)
        /// The client handled `channel` up to `offset` (`epoch`, if it said): record it for the
        /// user (a `durable` namespace) and count it for receipts that wait for acks. No reply.
        case acknowledge(channel: String, offset: Int64, epoch: String?)
        /// Nothing to do (a `pong`).
        case none
        /// Send `error` first, then close with `code` — the client ignored earlier errors.
        case close(CloseCode, reason: String, error: ProtocolError)
    }

    public let clientID: String
    public let limits: SessionLimits
    /// Each channel's namespace rules (who may subscribe and post, which hooks are asked).
    public let namespaces: NamespaceRules
    public private(set) var name: String?
    public private(set) var subscriptions: Set<String> = []
    /// What this connection may do with channels; changes once, when an `auth` succeeds.
    public private(set) var access: ChannelAccess
    /// The node refuses anonymous clients: everything but a first `auth` closes the connection.
    public let requiresToken: Bool
    private var bucket: TokenBucket
    private var strikes = 0
    /// A message has been decoded already: `auth` is accepted only before that.
    private var pastFirstMessage = false

    /// - Parameters:
    ///   - access: `.token` when the handshake carried a valid `?token=`; otherwise `.open`
    ///     (the node verifies no tokens) or `.anonymous`.
    ///   - requiresToken: anonymous connections must authenticate with their first message.
    public init(
        clientID: String, limits: SessionLimits, access: ChannelAccess = .open, requiresToken: Bool = false,
        namespaces: NamespaceRules = NamespaceRules(), now: NIODeadline
    ) {
        self.clientID = clientID
        self.limits = limits
        self.namespaces = namespaces
        self.access = access
        self.requiresToken = requiresToken
        self.bucket = TokenBucket(rate: limits.rateLimit, burst: limits.rateBurst, now: now)
    }

    /// The transport subscribed the client to `channel` without a message — an SSE stream's
    /// `?channel=`, checked already against the same rules (name, grant, limit).
    public mutating func subscribedByTransport(_ channel: String) {
        subscriptions.insert(channel)
    }

    /// The broker could not confirm a subscription the session accepted: it is undone.
    /// - Returns: whether the channel was still subscribed.
    public mutating func subscriptionFailed(_ channel: String) -> Bool {
        subscriptions.remove(channel) != nil
    }

    /// The application made the connection's user leave `channel`: leave it in the Hub and
    /// reply `unsubscribed` — or nothing, if the connection is not subscribed.
    public mutating func serverUnsubscribed(_ channel: String) -> Action {
        subscriptions.remove(channel) != nil ? .unsubscribe(channel) : .none
    }

    /// The token of an `auth` message was verified.
    public mutating func authenticated(_ identity: ClientIdentity) {
        access = .token(identity)
    }

    /// The backend's connect hook vouched for the connection.
    public mutating func connectedByBackend(_ identity: ClientIdentity) {
        access = .backend(identity)
    }

    /// What the subscribe hook said about `channel`.
    public mutating func subscribeHookAnswered(_ channel: String, since: StreamPosition?, _ verdict: HookVerdict) -> Action {
        switch verdict {
        case .allowed:
            if subscriptions.contains(channel) { return .resubscribe(channel) }
            do {
                return try admit(channel, since: since)
            } catch {
                return .reply(.error(error))
            }
        case .refused(let message):
            return .reply(.error(ProtocolError(.forbidden, message, channel: channel)))
        case .unavailable(let message):
            return .reply(.error(ProtocolError(.temporarilyUnavailable, message, channel: channel)))
        }
    }

    /// A channel the connect hook's answer named: subscribed without asking the subscribe
    /// hook again (the backend just said so), within the same limits as a `subscribe`.
    public mutating func subscribeAtConnect(_ channel: String) -> Action {
        do {
            try Self.check(channel)
            if subscriptions.contains(channel) { return .none }
            _ = try policy(of: channel)
            return try admit(channel, since: nil)
        } catch {
            var error = error
            error.channel = channel
            return .reply(.error(error))
        }
    }

    /// The last step of every subscribe: the connection's limit, then the channel is its.
    private mutating func admit(_ channel: String, since: StreamPosition?) throws(ProtocolError) -> Action {
        guard subscriptions.count < limits.maxSubscriptions else {
            throw ProtocolError(.tooManySubscriptions, "at most \(limits.maxSubscriptions) subscriptions per connection")
        }
        subscriptions.insert(channel)
        return .subscribe(channel, since: since)
    }

    /// Whether the connection still owes the token the node requires.
    public var awaitsToken: Bool {
        guard requiresToken else { return false }
        if access.identity != nil { return false }
        return true
    }

    /// A complete, UTF-8-valid text message arrived.
    /// - Parameters:
    ///   - now: monotonic time, for the rate limit.
    ///   - wallClockMillis: Unix time in milliseconds, for `pong.timestamp`.
    public mutating func textReceived(_ bytes: some Collection<UInt8>, now: NIODeadline, wallClockMillis: Int64) -> Action {
        guard bucket.take(now: now) else {
            strikes += 1
            let error = ProtocolError(.rateLimited, "too many messages; slow down to \(limits.rateLimit) per second")
            if strikes >= limits.rateLimitStrikes {
                return .close(.policyViolation, reason: "rate limit", error: error)
            }
            return .reply(.error(error))
        }
        strikes = 0
        do {
            return try messageReceived(ClientMessage.decode(bytes), wallClockMillis: wallClockMillis)
        } catch {
            return .reply(.error(error))
        }
    }

    mutating func messageReceived(_ message: ClientMessage, wallClockMillis: Int64) throws(ProtocolError) -> Action {
        let isFirst = !pastFirstMessage
        pastFirstMessage = true
        if awaitsToken, message.type != "auth" {
            let error = ProtocolError(.unauthorized, "this node requires a token: send {\"type\":\"auth\",\"token\":…} first")
            return .close(.unauthorized, reason: "authentication required", error: error)
        }
        switch message {
        case .auth(let token):
            return try authenticate(token, isFirst: isFirst)
        case .subscribe(let channel, let since):
            try Self.check(channel)
            if subscriptions.contains(channel) { return .resubscribe(channel) }
            let policy = try policy(of: channel)
            // The backend has the say on every subscribe of a hooked namespace, private or not.
            if policy.subscribeHook { return .askSubscribeHook(channel, since: since) }
            guard access.maySubscribe(channel, isPrivate: policy.isPrivate) else {
                throw ProtocolError(.forbidden, "your token does not grant channel \(channel)")
            }
            return try admit(channel, since: since)
        case .unsubscribe(let channel):
            try Self.check(channel)
            guard subscriptions.remove(channel) != nil else {
                throw ProtocolError(.notSubscribed, "not subscribed to \(channel)")
            }
            return .unsubscribe(channel)
        case .setName(let name):
            try setName(name)
            return .reply(.nameSet(name: name))
        case .listSubscriptions:
            return .reply(.subscriptions(channels: subscriptions.sorted()))
        case .ping:
            return .reply(.pong(timestamp: wallClockMillis))
        case .pong:
            return .none
        case .message(let channel, let text):
            try Self.check(channel)
            let policy = try policy(of: channel)
            guard policy.clientPublish else {
                throw ProtocolError(.forbidden, "clients may not post to channels of namespace \(Namespaces.namespace(of: channel) ?? "")")
            }
            guard access.mayPost(channel, isPrivate: policy.isPrivate) else {
                throw ProtocolError(.forbidden, "your token does not allow posting to \(channel)")
            }
            guard subscriptions.contains(channel) else {
                throw ProtocolError(.notSubscribed, "subscribe to \(channel) before posting to it")
            }
            guard !text.isEmpty else { throw ProtocolError(.invalidField, "field \"text\" must not be empty") }
            return policy.publishHook ? .askPublishHook(channel: channel, text: text) : .publish(channel: channel, text: text)
        case .ack(let channel, let offset, let epoch):
            try Self.check(channel)
            guard subscriptions.contains(channel) else {
                throw ProtocolError(.notSubscribed, "not subscribed to \(channel)")
            }
            return .acknowledge(channel: channel, offset: offset, epoch: epoch)
        case .presence(let channel):
            try Self.check(channel)
            guard subscriptions.contains(channel) else {
                throw ProtocolError(.notSubscribed, "subscribe to \(channel) to see who else is in it")
            }
            guard namespaces.policy(for: channel)?.presence ?? false else {
                throw ProtocolError(.unavailable, "presence is off for channels of this namespace")
            }
            return .presence(channel)
        }
    }

    private func authenticate(_ token: String, isFirst: Bool) throws(ProtocolError) -> Action {
        switch access {
        case .open:
            throw ProtocolError(.invalidMessage, "this node does not verify tokens; connect without auth")
        case .token, .backend:
            throw ProtocolError(.invalidMessage, "already authenticated")
        case .anonymous:
            guard isFirst else {
                throw ProtocolError(.invalidMessage, "auth is accepted only as the first message")
            }
            guard !token.isEmpty else { throw ProtocolError(.invalidField, "field \"token\" must not be empty") }
            return .authenticate(token: token)
        }
    }

    private mutating func setName(_ name: String) throws(ProtocolError) {
        guard !name.isEmpty else { throw ProtocolError(.invalidField, "field \"name\" must not be empty") }
        guard name.count <= limits.maxNameLength else {
            throw ProtocolError(.nameTooLong, "name is longer than \(limits.maxNameLength) characters")
        }
        guard !name.unicodeScalars.contains(where: Self.isForbiddenInName) else {
            throw ProtocolError(.invalidField, "name must not contain control or bidirectional formatting characters")
        }
        self.name = name
    }

    /// Control characters, and the bidirectional overrides and isolates that make a name
    /// display as something else to other users ("Trojan Source" spoofing). Other format
    /// characters stay allowed: emoji sequences need the zero-width joiner.
    static func isForbiddenInName(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x200E, 0x200F, 0x061C, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return scalar.properties.generalCategory == .control
        }
    }

    /// The namespace rules of `channel`, or `unknown_namespace`.
    private func policy(of channel: String) throws(ProtocolError) -> NamespacePolicy {
        guard let policy = namespaces.policy(for: channel) else {
            throw ProtocolError(.unknownNamespace, "channel \(channel) is in no namespace this node knows")
        }
        return policy
    }

    private static func check(_ channel: String) throws(ProtocolError) {
        if let problem = ChannelName.problem(with: channel) {
            throw ProtocolError(.invalidChannel, problem)
        }
    }
}

import HeraldCore
import HeraldProtocol

/// The four hooks, each answer checked and turned into what the transports act on.
extension BackendHooks {
    /// What the connect hook decided.
    enum ConnectVerdict: Sendable, Equatable {
        /// Connect as this user (a grant of the channels to join at once, which follow `welcome`).
        case accepted(ClientIdentity, channels: [String])
        /// Close with the backend's code (4000–4999; 4403 when it gave none that fits).
        case refused(code: CloseCode, message: String)
        case unavailable(String)
    }

    enum PublishVerdict: Sendable, Equatable {
        /// Publish, with the backend's text and data where it gave them.
        case publish(text: String?, data: JSONValue?)
        case refused(String)
        case unavailable(String)
    }

    /// Most channels a connect answer may subscribe the client to.
    static let maxConnectChannels = 100

    var hasConnectHook: Bool { configuration.connectURL != nil }
    var hasRefreshHook: Bool { configuration.refreshURL != nil }

    /// The headers the connect hook gets: `Cookie`, `Authorization` and the configured ones.
    func forwardedHeaders(_ lookup: (String) -> String?) -> [String: String] {
        var headers: [String: String] = [:]
        for name in ["Cookie", "Authorization"] + configuration.forwardHeaders {
            if let value = lookup(name) { headers[name] = value }
        }
        return headers
    }

    func connect(client: String, transport: Session.Transport, remoteAddress: String, headers: [String: String]) async -> ConnectVerdict {
        let request = HookMessages.ConnectRequest(
            client: client, transport: transport == .websocket ? "websocket" : "sse", remote_addr: remoteAddress, headers: headers)
        switch await call(.connect, request, expecting: HookMessages.ConnectResult.self) {
        case .unavailable(let reason):
            return .unavailable(reason)
        case .refused(let code, let message):
            return .refused(code: .backend(code), message: message)
        case .result(let result):
            guard !result.user.isEmpty, result.user.count <= UserChannel.maxUserLength else {
                return .unavailable("the connect answer's user must be 1–\(UserChannel.maxUserLength) characters")
            }
            let channels = result.channels ?? []
            guard channels.count <= Self.maxConnectChannels, channels.allSatisfy(ChannelName.isValid) else {
                return .unavailable("the connect answer's channels must be at most \(Self.maxConnectChannels) valid channel names")
            }
            let grant: ChannelGrant
            do { grant = try ChannelGrant(channels) } catch { return .unavailable("\(error)") }
            let expires = result.expires_at.map { $0.multipliedReportingOverflow(by: 1000).partialValue } ?? Int64.max
            return .accepted(ClientIdentity(userID: result.user, grant: grant, expiresAtMillis: expires), channels: channels)
        }
    }

    func subscribe(client: String, user: String?, channel: String) async -> HookVerdict {
        switch await call(.subscribe, HookMessages.SubscribeRequest(client: client, user: user, channel: channel), expecting: HookMessages.Empty.self) {
        case .result: .allowed
        case .refused(_, let message): .refused(message)
        case .unavailable(let reason): .unavailable("the backend could not be asked: \(reason)")
        }
    }

    func publish(client: String, user: String?, channel: String, text: String) async -> PublishVerdict {
        let request = HookMessages.PublishRequest(client: client, user: user, channel: channel, text: text)
        switch await call(.publish, request, expecting: HookMessages.PublishResult.self) {
        case .result(let result):
            if let text = result.text, text.isEmpty { return .unavailable("the publish answer's text must not be empty") }
            return .publish(text: result.text, data: result.data)
        case .refused(_, let message): return .refused(message)
        case .unavailable(let reason): return .unavailable("the backend could not be asked: \(reason)")
        }
    }

    func refresh(client: String, user: String?) async -> ExpiryVerdict {
        switch await call(.refresh, HookMessages.RefreshRequest(client: client, user: user), expecting: HookMessages.RefreshResult.self) {
        case .result(let result): .extended(expiresAtMillis: result.expires_at.multipliedReportingOverflow(by: 1000).partialValue)
        case .refused(_, let message): .refused(message)
        case .unavailable(let reason): .unavailable("the backend could not be asked: \(reason)")
        }
    }
}

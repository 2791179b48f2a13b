import Crypto
import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// Connection tokens end to end: a real node, real sockets, tokens signed by jwt-kit.
@Suite(.bothPublishPaths) struct AuthTests {
    static let secret = Array("herald-test-secret-that-is-long-enough-for-hs256".utf8)

    static func token(
        _ sub: String = "alice", channels: [String]? = nil, expiresIn: TimeInterval = 3600,
        key: TokenMinter.SigningKey = .hs256(secret: secret)
    ) async throws -> String {
        try await TokenMinter.mint(
            ConnectionClaims(subject: sub, expires: Date().addingTimeInterval(expiresIn), channels: channels), with: key)
    }

    /// HS256 on, anonymous clients allowed unless `anonymous` says otherwise.
    static func secured(anonymous: Bool? = nil) -> (inout HeraldConfiguration) -> Void {
        { configuration in
            configuration.auth = AuthConfiguration(secret: secret, allowAnonymous: anonymous, timeout: .seconds(10))
        }
    }

    static func subscribeReply(_ client: TestWebSocket, _ channel: String) async throws -> ServerMessage {
        try await client.send(.subscribe(channel: channel))
        return try await client.next {
            switch $0 {
            case .subscribed, .error: true
            default: false
            }
        }
    }

    @Test func tokenGrantingPrivateChannelSubscribesAndPosts() async throws {
        try await withNode(Self.secured()) { node in
            let token = try await Self.token(channels: ["private:ops", "orders:*"])
            let alice = try await node.connect(path: "/ws?token=\(token)")
            guard case .subscribed("private:ops", 1, _, _) = try await Self.subscribeReply(alice, "private:ops") else {
                Issue.record("private:ops refused for a token that grants it")
                return
            }
            guard case .subscribed("orders:42", _, _, _) = try await Self.subscribeReply(alice, "orders:42") else {
                Issue.record("orders:42 refused for a token that grants orders:*")
                return
            }
            let bob = try await node.connect(path: "/ws?token=\(try await Self.token("bob", channels: ["private:ops"]))")
            _ = try await Self.subscribeReply(bob, "private:ops")
            try await alice.send(.message(channel: "private:ops", text: "deploy at noon"))
            let received = try await bob.nextNotification()
            #expect(received.body == "deploy at noon")
            #expect(received.fromUser == "alice")
            let info = try await node.request(.GET, "/api/clients").json(ClientList.self)
            #expect(Set(info.clients.compactMap(\.userId)) == ["alice", "bob"])
        }
    }

    @Test func tokenWithoutGrantCannotSubscribeOrPostToPrivateChannel() async throws {
        try await withNode(Self.secured()) { node in
            let token = try await Self.token(channels: ["orders:*"])
            let client = try await node.connect(path: "/ws?token=\(token)")
            guard case .error(let refused) = try await Self.subscribeReply(client, "private:ops") else {
                Issue.record("private:ops granted without a grant")
                return
            }
            #expect(refused.code == .forbidden)
            try await client.send(.message(channel: "private:ops", text: "sneaky"))
            #expect(try await client.nextError().code == .forbidden)
            // A prefix grant is a prefix, not a substring.
            guard case .error(let other) = try await Self.subscribeReply(client, "private:orders:1") else {
                Issue.record("orders:* granted private:orders:1")
                return
            }
            #expect(other.code == .forbidden)
            // The subscriber on private:ops receives nothing from the refused post.
            let insider = try await node.connect(path: "/ws?token=\(try await Self.token("ops", channels: ["private:*"]))")
            _ = try await Self.subscribeReply(insider, "private:ops")
            try await client.send(.message(channel: "private:ops", text: "sneaky again"))
            #expect(try await client.nextError().code == .forbidden)
            try await insider.expectSilence(for: .milliseconds(200))
        }
    }

    @Test func anonymousClientsGetPublicChannelsOnlyAndCannotPost() async throws {
        try await withNode(Self.secured(anonymous: true)) { node in
            let anonymous = try await node.connect()
            guard case .subscribed = try await Self.subscribeReply(anonymous, "news") else {
                Issue.record("public channel refused to an anonymous client")
                return
            }
            guard case .error(let refused) = try await Self.subscribeReply(anonymous, "private:ops") else {
                Issue.record("private channel granted to an anonymous client")
                return
            }
            #expect(refused.code == .forbidden)
            try await anonymous.send(.message(channel: "news", text: "hello"))
            #expect(try await anonymous.nextError().code == .forbidden)
        }
    }

    @Test func openNodeRefusesPrivateChannelsToEveryone() async throws {
        try await withNode { node in
            let client = try await node.connect()
            guard case .error(let refused) = try await Self.subscribeReply(client, "private:ops") else {
                Issue.record("private channel open on a node without keys")
                return
            }
            #expect(refused.code == .forbidden)
        }
    }

    @Test func authMessageAuthenticatesAndLaterMessagesWait() async throws {
        try await withNode(Self.secured(anonymous: false)) { node in
            let client = try await node.connect()
            // Sent back to back: the subscribe must be judged after the token, not before.
            try await client.send(.auth(token: try await Self.token(channels: ["private:ops"])))
            try await client.send(.subscribe(channel: "private:ops"))
            guard case .authenticated(let user, let expires) = try await client.nextMessage() else {
                Issue.record("no authenticated reply")
                return
            }
            #expect(user == "alice")
            #expect(expires > Int64(Date().timeIntervalSince1970 * 1000))
            guard case .subscribed("private:ops", 1, _, _) = try await client.nextMessage() else {
                Issue.record("subscribe after auth failed")
                return
            }
            // auth is accepted once.
            try await client.send(.auth(token: try await Self.token()))
            #expect(try await client.nextError().code == .invalidMessage)
        }
    }

    @Test func withoutAnonymousAccessAnythingButAuthCloses4001() async throws {
        try await withNode(Self.secured(anonymous: false)) { node in
            let client = try await node.connect()
            try await client.send(.subscribe(channel: "news"))
            #expect(try await client.nextError().code == .unauthorized)
            #expect(try await client.nextClose().code == CloseCode.unauthorized.rawValue)
        }
    }

    @Test func silentClientIsClosedAfterTheAuthTimeout() async throws {
        try await withNode({
            $0.auth = AuthConfiguration(secret: Self.secret, allowAnonymous: false, timeout: .milliseconds(300))
        }) { node in
            let client = try await node.connect()
            #expect(try await client.nextError().code == .unauthorized)
            #expect(try await client.nextClose().code == CloseCode.unauthorized.rawValue)
        }
    }

    @Test func expiredTokenIsRefusedWith4002() async throws {
        try await withNode(Self.secured(anonymous: false)) { node in
            let expired = try await Self.token(expiresIn: -60)
            let viaQuery = try await node.connect(path: "/ws?token=\(expired)", readWelcome: false)
            #expect(try await viaQuery.nextError().code == .tokenExpired)
            #expect(try await viaQuery.nextClose().code == CloseCode.tokenExpired.rawValue)

            let viaMessage = try await node.connect()
            try await viaMessage.send(.auth(token: expired))
            #expect(try await viaMessage.nextError().code == .tokenExpired)
            #expect(try await viaMessage.nextClose().code == CloseCode.tokenExpired.rawValue)
        }
    }

    @Test func farFutureExpiryDoesNotOverflow() async throws {
        try await withNode(Self.secured(anonymous: false)) { node in
            for seconds in [1e12, 1e15, 1e300] {
                let claims = #"{"sub":"zed","exp":\#(seconds),"channels":["news"]}"#
                let header = Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8).base64URL
                let body = Data(claims.utf8).base64URL
                let signature = Data(HMAC<SHA256>.authenticationCode(
                    for: Data("\(header).\(body)".utf8), using: SymmetricKey(data: Self.secret))).base64URL
                let client = try await node.connect()
                try await client.send(.auth(token: "\(header).\(body).\(signature)"))
                guard case .authenticated("zed", _) = try await client.nextMessage() else {
                    Issue.record("exp \(seconds) refused")
                    continue
                }
                try await client.send(.ping)
                guard case .pong = try await client.nextMessage() else {
                    Issue.record("connection with exp \(seconds) unusable")
                    continue
                }
            }
            #expect(try await node.request(.GET, "/health").status == 200)
        }
    }

    @Test func connectionClosesWhenItsTokenExpires() async throws {
        try await withNode(Self.secured(anonymous: false)) { node in
            let client = try await node.connect(path: "/ws?token=\(try await Self.token(expiresIn: 1.2))")
            _ = try await Self.subscribeReply(client, "news")
            #expect(try await client.nextError(timeout: .seconds(4)).code == .tokenExpired)
            #expect(try await client.nextClose().code == CloseCode.tokenExpired.rawValue)
        }
    }

    @Test func forgedAndUnsignedTokensAreRefused() async throws {
        try await withNode(Self.secured(anonymous: true)) { node in
            let forged = try await Self.token(channels: ["private:*"], key: .hs256(secret: Array("another-secret-another-secret-another".utf8)))
            let unsigned = Self.unsignedToken(sub: "mallory", channels: ["private:*"])
            var tampered = try await Self.token(channels: ["news"])
            // Same signature, different payload: grant everything.
            let parts = tampered.split(separator: ".")
            let payload = Data(#"{"sub":"alice","exp":9999999999,"channels":["*"]}"#.utf8).base64URL
            tampered = "\(parts[0]).\(payload).\(parts[2])"
            for token in [forged, unsigned, tampered, "not-a-jwt", "a.b.c"] {
                let viaQuery = try await node.connect(path: "/ws?token=\(token)", readWelcome: false)
                #expect(try await viaQuery.nextError().code == .invalidToken)
                #expect(try await viaQuery.nextClose().code == CloseCode.unauthorized.rawValue)
                let viaMessage = try await node.connect()
                try await viaMessage.send(.auth(token: token))
                #expect(try await viaMessage.nextError().code == .invalidToken)
                #expect(try await viaMessage.nextClose().code == CloseCode.unauthorized.rawValue)
            }
        }
    }

    @Test(arguments: ["rsa", "ec"])
    func asymmetricTokensVerifyWithThePublicKeyFile(kind: String) async throws {
        try await withTestKeys { keys in
            let pair = kind == "rsa" ? try await keys.rsaKeyPair() : try await keys.ecKeyPair()
            let configuration = try HeraldConfiguration.resolve(
                flags: [.port: "0", .jwtPublicKeyFile: pair.publicKey], environment: [:])
            #expect(configuration.auth.allowAnonymous == false)
            try await withNode({
                $0.auth = configuration.auth
            }) { node in
                let pem = try String(contentsOfFile: pair.privateKey, encoding: .utf8)
                let token = try await Self.token(channels: ["private:ops"], key: .privateKeyPEM(pem))
                let client = try await node.connect(path: "/ws?token=\(token)")
                guard case .subscribed("private:ops", 1, _, _) = try await Self.subscribeReply(client, "private:ops") else {
                    Issue.record("\(kind) token refused")
                    return
                }
                // An HS256 token is refused by a node that holds only a public key, even one
                // "signed" with that public key as the HMAC secret (algorithm confusion).
                let publicPEM = try String(contentsOfFile: pair.publicKey, encoding: .utf8)
                let confused = try await Self.token(key: .hs256(secret: Array(publicPEM.utf8)))
                let refused = try await node.connect(path: "/ws?token=\(confused)", readWelcome: false)
                #expect(try await refused.nextError().code == .invalidToken)
            }
        }
    }

    @Test func tokenCommandMintsATokenTheNodeAccepts() async throws {
        let minted = try await NodeProcess.run(
            ["token", "--sub", "carol", "--channels", "news,orders:*", "--ttl", "1h"],
            environment: ["HERALD_JWT_SECRET": String(decoding: Self.secret, as: UTF8.self)])
        #expect(minted.status == 0)
        let token = minted.output.trimmingCharacters(in: .whitespacesAndNewlines)
        try await withNode(Self.secured(anonymous: false)) { node in
            let client = try await node.connect()
            try await client.send(.auth(token: token))
            guard case .authenticated("carol", _) = try await client.nextMessage() else {
                Issue.record("minted token refused: \(token)")
                return
            }
        }
        let tooShort = try await NodeProcess.run(["token", "--sub", "carol", "--secret", "short"], environment: [:])
        #expect(tooShort.status != 0)
        #expect(tooShort.output.contains("at least 32 bytes"))
    }

    /// `alg: none`, which a careless verifier would take at its word.
    static func unsignedToken(sub: String, channels: [String]) -> String {
        let header = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64URL
        let body = Data(#"{"sub":"\#(sub)","exp":9999999999,"channels":["private:*"]}"#.utf8).base64URL
        return "\(header).\(body)."
    }

    struct ClientList: Decodable {
        var clients: [ClientInfo]
    }
}

extension Data {
    var base64URL: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

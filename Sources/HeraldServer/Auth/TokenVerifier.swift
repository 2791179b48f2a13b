import Foundation
import HeraldCore
import HeraldProtocol
import JWTKit

/// Verifies connection tokens against the node's configured keys.
///
/// Verification runs off the event loop (jwt-kit's key collection is an actor) and happens
/// once per connection, at the handshake (`?token=`) or on the first `auth` message.
public struct TokenVerifier: Sendable {
    /// One collection per accepted `alg`, each holding exactly one key: the token's header
    /// picks the algorithm from this fixed set, never a key or an algorithm of its own.
    private let keysByAlgorithm: [String: JWTKeyCollection]

    public init(_ configuration: AuthConfiguration) async {
        var keys: [String: JWTKeyCollection] = [:]
        if let secret = configuration.secret {
            keys["HS256"] = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        }
        switch configuration.publicKey {
        case .rs256(let key): keys["RS256"] = await JWTKeyCollection().add(rsa: key, digestAlgorithm: .sha256)
        case .es256(let key): keys["ES256"] = await JWTKeyCollection().add(ecdsa: key)
        case nil: break
        }
        self.keysByAlgorithm = keys
    }

    /// The identity `token` proves, or the ``ProtocolError`` to close the connection with:
    /// `invalid_token` (malformed, wrong algorithm, bad signature, bad claims) or
    /// `token_expired`.
    public func verify(_ token: String, now: Date = Date()) async -> Result<ClientIdentity, ProtocolError> {
        guard let algorithm = Self.algorithm(of: token), let keys = keysByAlgorithm[algorithm] else {
            return .failure(ProtocolError(.invalidToken, "token is malformed or signed with an algorithm this node does not accept"))
        }
        let claims: ConnectionClaims
        do {
            claims = try await keys.verify(token, as: ConnectionClaims.self)
        } catch {
            return .failure(ProtocolError(.invalidToken, "token signature or claims are invalid"))
        }
        if claims.exp.value <= now {
            return .failure(ProtocolError(.tokenExpired, "token expired at \(Self.format(claims.exp.value))"))
        }
        let subject = claims.sub.value
        guard !subject.isEmpty, subject.utf8.count <= 256 else {
            return .failure(ProtocolError(.invalidToken, "token subject must be 1–256 bytes"))
        }
        do {
            let grant = try ChannelGrant(claims.channels ?? [])
            // A far-future `exp` (a backend bug, or 1e300) must not overflow the millisecond count.
            let seconds = min(claims.exp.value.timeIntervalSince1970, Self.latestExpiry)
            let expires = Int64((seconds * 1000).rounded(.down))
            return .success(ClientIdentity(userID: subject, grant: grant, expiresAtMillis: expires))
        } catch {
            return .failure(error)
        }
    }

    /// 9999-12-31T23:59:59Z: later expiries are treated as this one.
    static let latestExpiry: TimeInterval = 253_402_300_799

    /// The `alg` of a compact JWS, read from its header without trusting anything else in it.
    static func algorithm(of token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first,
            header.utf8.count <= 1024,
            let bytes = Self.base64URLDecode(header),
            let parsed = try? JSONDecoder().decode(Header.self, from: bytes)
        else { return nil }
        return parsed.alg
    }

    private static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        return Data(base64Encoded: base64)
    }

    private struct Header: Decodable {
        var alg: String
    }

    private static func format(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

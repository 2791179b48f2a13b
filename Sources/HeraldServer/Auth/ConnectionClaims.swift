import Foundation
import JWTKit

/// The claims Herald reads from a connection token.
///
/// `sub` and `exp` are required: a token that names no one or never expires is refused.
/// `channels` lists the channel names and prefixes (`orders:*`) the client may use beyond the
/// public ones; see ``ChannelAccess`` for the rules.
public struct ConnectionClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var exp: ExpirationClaim
    public var nbf: NotBeforeClaim?
    public var iat: IssuedAtClaim?
    public var channels: [String]?

    public init(subject: String, expires: Date, channels: [String]?, issuedAt: Date? = Date()) {
        self.sub = SubjectClaim(value: subject)
        self.exp = ExpirationClaim(value: expires)
        self.iat = issuedAt.map { IssuedAtClaim(value: $0) }
        self.channels = channels
    }

    /// Signature checks come first; expiry is judged by ``TokenVerifier`` so that an expired
    /// token is reported as expired (4002), not as invalid.
    public func verify(using algorithm: some JWTAlgorithm) throws {
        try nbf?.verifyNotBefore()
    }
}

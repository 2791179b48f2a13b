import JWTKit
import NIOCore

/// How a node verifies WebSocket connection tokens (JWT). Parsed and checked at start-up, so a
/// bad secret or key file stops the node with a clear message instead of refusing every client.
public struct AuthConfiguration: Sendable {
    /// A public key for asymmetric tokens, with the one algorithm it verifies.
    public enum PublicKey: Sendable {
        case rs256(Insecure.RSA.PublicKey)
        case es256(ES256PublicKey)

        /// The JWT `alg` header a token signed for this key carries.
        public var algorithm: String {
            switch self {
            case .rs256: "RS256"
            case .es256: "ES256"
            }
        }

        /// Reads an RSA or P-256 public key (or certificate) from PEM text.
        public init?(pem: String) {
            if let key = try? Insecure.RSA.PublicKey(pem: pem) {
                self = .rs256(key)
            } else if let key = try? Insecure.RSA.PublicKey(certificatePEM: pem) {
                self = .rs256(key)
            } else if let key = try? ES256PublicKey(pem: pem) {
                self = .es256(key)
            } else if let key = try? ES256PublicKey(certificate: pem) {
                self = .es256(key)
            } else {
                return nil
            }
        }
    }

    /// Shortest HS256 secret accepted: RFC 7518 §3.2 asks for a key as long as the hash.
    public static let minimumSecretBytes = 32

    /// HS256 secret (`HERALD_JWT_SECRET`).
    public var secret: [UInt8]?
    /// RS256/ES256 key (`HERALD_JWT_PUBLIC_KEY_FILE`).
    public var publicKey: PublicKey?
    /// Whether clients without a token are served (public channels only).
    public var allowAnonymous: Bool
    /// How long a client that must authenticate may take to send `auth`.
    public var timeout: TimeAmount

    /// Whether this node verifies tokens at all.
    public var verifiesTokens: Bool { secret != nil || publicKey != nil }

    public init(secret: [UInt8]? = nil, publicKey: PublicKey? = nil, allowAnonymous: Bool? = nil, timeout: TimeAmount = .seconds(10)) {
        self.secret = secret
        self.publicKey = publicKey
        self.allowAnonymous = allowAnonymous ?? (secret == nil && publicKey == nil)
        self.timeout = timeout
    }
}

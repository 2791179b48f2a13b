import Foundation
import JWTKit

/// Signs connection tokens: `herald token` for development, and the tests.
///
/// Production tokens come from the operator's own backend with any JWT library; this exists
/// so that trying Herald with auth on takes one command.
public enum TokenMinter {
    /// What to sign with.
    public enum SigningKey: Sendable {
        /// HS256 with a shared secret (the node's `HERALD_JWT_SECRET`).
        case hs256(secret: [UInt8])
        /// RS256 or ES256 with a PEM private key (the node holds the public half).
        case privateKeyPEM(String)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// A signed compact JWT for `claims`.
    public static func mint(_ claims: ConnectionClaims, with key: SigningKey) async throws -> String {
        let keys = JWTKeyCollection()
        switch key {
        case .hs256(let secret):
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        case .privateKeyPEM(let pem):
            if let rsa = try? Insecure.RSA.PrivateKey(pem: pem) {
                await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            } else if let ecdsa = try? ES256PrivateKey(pem: pem) {
                await keys.add(ecdsa: ecdsa)
            } else {
                throw Failure(description: "the key is neither an RSA nor a P-256 private key in PEM form")
            }
        }
        return try await keys.sign(claims)
    }

    /// Parses a duration such as `90s`, `15m`, `1h`, `7d` (or plain seconds).
    public static func parseDuration(_ text: String) -> TimeInterval? {
        let units: [Character: TimeInterval] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value > 0 {
            return value * unit
        }
        if let value = Double(text), value > 0 { return value }
        return nil
    }
}

import ArgumentParser
import Foundation
import HeraldCore
import HeraldServer

/// `herald token`: mints a connection token for development and scripts.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint a connection token (JWT) for trying Herald with authentication on.",
        discussion: """
            Signs with HERALD_JWT_SECRET or HERALD_JWT_SECRET_FILE (HS256) unless --private-key-file names an RSA or P-256
            private key (RS256/ES256; the node then needs the public key in HERALD_JWT_PUBLIC_KEY_FILE).
            Example: herald token --sub alice --channels 'news,orders:*' --ttl 1h
            """
    )

    @Option(help: "The user id (`sub` claim).")
    var sub: String

    @Option(help: "Comma-separated channels or prefixes (`orders:*`) the token grants.")
    var channels: String = ""

    @Option(help: "Lifetime: seconds, or a number with s, m, h or d.")
    var ttl: String = "1h"

    @Option(help: "HS256 secret (default: the HERALD_JWT_SECRET environment variable).")
    var secret: String?

    @Option(help: "PEM private key for RS256 or ES256 instead of a secret.")
    var privateKeyFile: String?

    func run() async throws {
        guard let lifetime = TokenMinter.parseDuration(ttl) else {
            throw ValidationError("--ttl '\(ttl)': expected seconds or a number with s, m, h or d (e.g. 1h)")
        }
        let granted = channels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        do {
            _ = try ChannelGrant(granted)
        } catch {
            throw ValidationError("--channels: \(error.error)")
        }
        let key: TokenMinter.SigningKey
        if let privateKeyFile {
            guard let pem = try? String(contentsOfFile: privateKeyFile, encoding: .utf8) else {
                throw ValidationError("--private-key-file '\(privateKeyFile)': cannot read the file")
            }
            key = .privateKeyPEM(pem)
        } else if let secret = try secret ?? Self.environmentSecret(), !secret.isEmpty {
            guard secret.utf8.count >= AuthConfiguration.minimumSecretBytes else {
                throw ValidationError("the secret must be at least \(AuthConfiguration.minimumSecretBytes) bytes")
            }
            key = .hs256(secret: Array(secret.utf8))
        } else {
            throw ValidationError("give --secret, set HERALD_JWT_SECRET, or give --private-key-file")
        }
        let claims = ConnectionClaims(
            subject: sub, expires: Date().addingTimeInterval(lifetime), channels: granted.isEmpty ? nil : granted)
        print(try await TokenMinter.mint(claims, with: key))
    }

    /// HERALD_JWT_SECRET, or the file HERALD_JWT_SECRET_FILE names, read as the node reads it.
    static func environmentSecret() throws -> String? {
        do {
            return try HeraldConfiguration.resolvingFiles(ProcessInfo.processInfo.environment)["HERALD_JWT_SECRET"]
        } catch {
            throw ValidationError(error.description)
        }
    }
}

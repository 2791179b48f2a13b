import Foundation
import NIOSSL

/// Key material made fresh for one test with the `openssl` command: nothing secret is
/// committed, and every run exercises real PEM files.
public struct TestKeys: Sendable {
    public struct OpenSSLFailed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Directory the files live in; removed by ``remove()``.
    public let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A self-signed P-256 certificate for `localhost` and 127.0.0.1: (certificate, key) paths.
    public func selfSignedCertificate() async throws -> (certificate: String, key: String) {
        let (cert, key) = (path("cert.pem"), path("cert-key.pem"))
        try await openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        return (cert, key)
    }

    /// An RSA-2048 key pair for RS256: (private, public) PEM paths.
    public func rsaKeyPair() async throws -> (privateKey: String, publicKey: String) {
        let (privateKey, publicKey) = (path("rsa.pem"), path("rsa.pub.pem"))
        try await openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privateKey])
        try await openssl(["pkey", "-in", privateKey, "-pubout", "-out", publicKey])
        return (privateKey, publicKey)
    }

    /// A P-256 key pair for ES256: (private, public) PEM paths.
    public func ecKeyPair() async throws -> (privateKey: String, publicKey: String) {
        let (privateKey, publicKey) = (path("ec.pem"), path("ec.pub.pem"))
        try await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", privateKey])
        try await openssl(["pkey", "-in", privateKey, "-pubout", "-out", publicKey])
        return (privateKey, publicKey)
    }

    /// Client TLS settings that trust exactly the certificate at `path`.
    public static func trusting(_ path: String) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(path)
        return tls
    }

    /// Runs openssl to completion without holding a thread: key generation takes a while, and
    /// a blocking wait on the concurrency pool (two threads on this machine) stalls every test.
    private func openssl(_ arguments: [String]) async throws {
        let child = try ChildProcess("openssl", arguments)
        let status = try await child.waitForExit(timeout: .seconds(60))
        guard status == 0 else {
            throw OpenSSLFailed(description: "openssl \(arguments.first ?? ""): \(child.outputText)")
        }
    }
}

/// Runs `body` with a fresh directory for key material, removed afterwards however `body` ends.
public func withTestKeys<T>(_ body: (TestKeys) async throws -> T) async throws -> T {
    let keys = try TestKeys()
    defer { keys.remove() }
    return try await body(keys)
}

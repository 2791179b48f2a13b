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

    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    public func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A self-signed P-256 certificate for `localhost` and 127.0.0.1: (certificate, key) paths.
    public func selfSignedCertificate() throws -> (certificate: String, key: String) {
        let (cert, key) = (path("cert.pem"), path("cert-key.pem"))
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        return (cert, key)
    }

    /// An RSA-2048 key pair for RS256: (private, public) PEM paths.
    public func rsaKeyPair() throws -> (privateKey: String, publicKey: String) {
        let (privateKey, publicKey) = (path("rsa.pem"), path("rsa.pub.pem"))
        try openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privateKey])
        try openssl(["pkey", "-in", privateKey, "-pubout", "-out", publicKey])
        return (privateKey, publicKey)
    }

    /// A P-256 key pair for ES256: (private, public) PEM paths.
    public func ecKeyPair() throws -> (privateKey: String, publicKey: String) {
        let (privateKey, publicKey) = (path("ec.pem"), path("ec.pub.pem"))
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", privateKey])
        try openssl(["pkey", "-in", privateKey, "-pubout", "-out", publicKey])
        return (privateKey, publicKey)
    }

    /// Client TLS settings that trust exactly the certificate at `path`.
    public static func trusting(_ path: String) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(path)
        return tls
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw OpenSSLFailed(description: "openssl \(arguments.first ?? ""): \(String(decoding: output, as: UTF8.self))")
        }
    }
}

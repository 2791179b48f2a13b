import Foundation
import NIOCore
import NIOSSL
import PostgresNIO

/// The transactional outbox (`HERALD_OUTBOX_*`, docs/integration.md): a PostgreSQL table whose
/// committed rows Herald publishes, once each.
public struct OutboxConfiguration: Sendable, Equatable {
    /// `postgres://user:password@host:port/database?sslmode=disable|prefer|require`; `nil`: no outbox.
    public var url: String?
    /// The table; its failed twin is `<table>_failed`. A plain lower-case SQL identifier.
    public var table = "herald_outbox"
    /// Create the tables, index and NOTIFY trigger if they are missing.
    public var create = false
    /// How often the table is read when no NOTIFY came (and how long Redis down is waited out).
    public var poll = TimeAmount.seconds(1)
    /// Rows claimed per transaction.
    public var batchSize = 100

    public init() {}

    /// Partitions of the table, by a hash of the channel (user): nodes share the work a
    /// partition at a time, and one partition's rows are published by one node at a time, in
    /// `id` order — so a channel's rows keep their order whichever node publishes them.
    public static let partitions = 16

    /// A table name the outbox accepts: letters, digits and `_`, not starting with a digit, at
    /// most 50 bytes (room for `_failed` and `_notify` within PostgreSQL's 63).
    public static func isValidTable(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first), name.utf8.count <= 50 else {
            return false
        }
        return name.utf8.allSatisfy {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_")
        }
    }

    /// Why a URL is not one the outbox can use; `nil` when it is.
    public static func problem(with url: String) -> String? {
        (try? clientConfiguration(url)) == nil ? "postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]" : nil
    }

    struct InvalidURL: Error {}

    /// postgres-nio's configuration for `url`.
    static func clientConfiguration(_ url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else { throw InvalidURL() }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        default: throw InvalidURL()
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = 4
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}

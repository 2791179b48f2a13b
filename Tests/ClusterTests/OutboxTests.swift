import Foundation
import Logging
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import PostgresNIO
import Testing

/// The transactional outbox against a real PostgreSQL: committed rows published once, in order
/// per channel, by whichever nodes consume; rolled-back rows never.
@Suite(.serialized) struct OutboxTests {
    static let logger = Logger(label: "outbox-test")

    static func configure(_ postgres: PostgresServer) -> @Sendable (inout HeraldConfiguration) -> Void {
        let url = postgres.url
        return { configuration in
            configuration.outbox.url = url
            configuration.outbox.create = true
            configuration.outbox.poll = .milliseconds(200)
        }
    }

    static func waitForTable(_ postgres: PostgresServer, _ table: String = "herald_outbox") async throws {
        try await waitUntil("the nodes to create \(table)") {
            try await postgres.column("SELECT to_regclass('\(table)_failed')::text") == ["\(table)_failed"]
        }
    }

    /// Titles `tx-seq` of the notifications `socket` receives until it has `count`.
    static func receive(_ count: Int, on socket: TestWebSocket, timeout: TimeAmount = .seconds(60)) async throws -> [(channel: String, title: String)] {
        var received: [(channel: String, title: String)] = []
        while received.count < count {
            let notification = try await socket.nextNotification(timeout: timeout)
            received.append((notification.channel, notification.title ?? ""))
        }
        return received
    }

    @Test func committedRowsArePublishedOnceAndInOrderWhileThreeNodesConsumeAndOneIsKilled() async throws {
        try await withPostgres { postgres in
            try await withRedis { redis in
                let prefix = "ob" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
                try await withCluster(2, redis: redis, prefix: prefix, Self.configure(postgres)) { nodes in
                    try await withNodeProcess(
                        arguments: ["--redis-url", "redis://127.0.0.1:\(redis.port)", "--redis-prefix", prefix, "--node-id", "doomed",
                                    "--outbox-url", postgres.url, "--outbox-create", "true", "--outbox-poll", "0.2"]
                    ) { doomed in
                        try await Self.waitForTable(postgres)
                        let channels = (0..<5).map { "orders:\($0)" }
                        let watchers = [try await nodes[0].subscriber(channels), try await nodes[1].subscriber(channels)]
                        // Ten transactions at once, rows interleaved, committing one after the
                        // other over about two seconds while the nodes consume; 3 and 7 roll back.
                        let inserts = Task {
                            try await postgres.withClient { client in
                                try await withThrowingTaskGroup(of: Void.self) { group in
                                    for tx in 0..<10 {
                                        group.addTask {
                                            try await client.withConnection { connection in
                                                try await connection.query("BEGIN", logger: Self.logger)
                                                for seq in 0..<100 {
                                                    let channel = "orders:\(seq % 5)"
                                                    let payload = #"{"title":"\#(tx)-\#(seq)"}"#
                                                    try await connection.query(
                                                        "INSERT INTO herald_outbox (channel, payload) VALUES (\(channel), \(payload)::jsonb)", logger: Self.logger)
                                                    if seq % 10 == 9 { try await Task.sleep(for: .milliseconds(2 * tx)) }
                                                }
                                                try await connection.query(
                                                    PostgresQuery(unsafeSQL: tx == 3 || tx == 7 ? "ROLLBACK" : "COMMIT"), logger: Self.logger)
                                            }
                                        }
                                    }
                                    try await group.waitForAll()
                                }
                            }
                        }
                        // Kill one consumer once it has published rows, while others still come.
                        try await waitUntil("the doomed node to publish outbox rows", timeout: .seconds(30)) {
                            let metrics = try await HTTPResult.send(.GET, doomed.baseURL + "/metrics").text
                            return !metrics.contains(#"herald_outbox_rows_total{outcome="published"} 0"#)
                        }
                        _ = try await doomed.stop(signal: SIGKILL)
                        try await inserts.value
                        for (index, watcher) in watchers.enumerated() {
                            let received = try await Self.receive(800, on: watcher)
                            let titles = received.map(\.title)
                            #expect(Set(titles).count == 800, "watcher \(index): duplicates")
                            #expect(!titles.contains { $0.hasPrefix("3-") || $0.hasPrefix("7-") }, "a rolled-back row was published")
                            // Per channel, one transaction's rows arrive in the order they were inserted.
                            for channel in channels {
                                var last: [String: Int] = [:]
                                for title in received.filter({ $0.channel == channel }).map(\.title) {
                                    let parts = title.split(separator: "-").map { Int($0)! }
                                    #expect((last[String(parts[0])] ?? -1) < parts[1], "\(channel): \(title) out of order")
                                    last[String(parts[0])] = parts[1]
                                }
                            }
                        }
                        try await waitUntil("the table to be empty") {
                            try await postgres.column("SELECT count(*)::text FROM herald_outbox") == ["0"]
                        }
                    }
                }
            }
        }
    }

    @Test func rowsWaitWhileRedisIsDownThenArePublishedOnce() async throws {
        try await withPostgres { postgres in
            try await withRedis { redis in
                try await withCluster(1, redis: redis, Self.configure(postgres)) { nodes in
                    try await Self.waitForTable(postgres)
                    try await redis.kill()
                    let downAt = ContinuousClock.now
                    for seq in 0..<50 {
                        try await postgres.execute("INSERT INTO herald_outbox (channel, payload) VALUES ('ledger', '{\"title\":\"\(seq)\"}')")
                    }
                    try await Task.sleep(until: downAt + .seconds(5))
                    #expect(try await postgres.column("SELECT count(*)::text FROM herald_outbox") == ["50"], "rows must wait for Redis")
                    try await redis.launch()
                    try await waitUntil("the rows to be published", timeout: .seconds(30)) {
                        try await postgres.column("SELECT count(*)::text FROM herald_outbox") == ["0"]
                    }
                    let history = try await nodes[0].request(.GET, "/api/history/ledger?limit=100").object()
                    guard case .array(let publications)? = history["publications"] else {
                        Issue.record("no history: \(history)")
                        return
                    }
                    let titles = publications.compactMap { item -> String? in
                        guard case .object(let fields) = item, case .string(let title)? = fields["title"] else { return nil }
                        return title
                    }
                    #expect(titles == (0..<50).map(String.init))
                }
            }
        }
    }

    /// What makes a crash between publishing and deleting harmless: a row published again (here
    /// inserted again under its id, as if its node had died before committing) is a duplicate.
    @Test func aRowPublishedAgainUnderItsIdIsNotDeliveredTwice() async throws {
        try await withPostgres { postgres in
            try await withRedis { redis in
                let configure = Self.configure(postgres)
                try await withCluster(2, redis: redis, { configure(&$0); $0.auth = AuthConfiguration(secret: WebhookTests.secret, allowAnonymous: true) }) { nodes in
                    try await Self.waitForTable(postgres)
                    let watcher = try await nodes[0].subscriber("audit")
                    let ada = try await nodes[1].connect(path: "/ws?token=\(try await WebhookTests.token("ada"))")
                    try await waitUntil("Ada's connection to be registered") { await nodes[0].clusterSubscriberCount("#user:ada") == 1 }
                    let rows = #"(1000, 'audit', NULL, '{"title":"once"}'), (2000, NULL, 'ada', '{"title":"once"}')"#
                    try await postgres.execute("INSERT INTO herald_outbox (id, channel, user_id, payload) VALUES \(rows)")
                    #expect(try await watcher.nextNotification(timeout: .seconds(10)).title == "once")
                    #expect(try await ada.nextNotification(timeout: .seconds(10)).title == "once")
                    try await waitUntil("the rows to be deleted") {
                        try await postgres.column("SELECT count(*)::text FROM herald_outbox") == ["0"]
                    }
                    try await postgres.execute(
                        "INSERT INTO herald_outbox (id, channel, user_id, payload) VALUES \(rows)",
                        #"INSERT INTO herald_outbox (id, channel, user_id, payload) VALUES (1001, 'audit', NULL, '{"title":"next"}'), (2001, NULL, 'ada', '{"title":"next"}')"#)
                    #expect(try await watcher.nextNotification(timeout: .seconds(10)).title == "next")
                    #expect(try await ada.nextNotification(timeout: .seconds(10)).title == "next")
                }
            }
        }
    }

    @Test func anInvalidRowMovesToTheFailedTableAndUserRowsReachTheUser() async throws {
        try await withPostgres { postgres in
            try await withNode({ Self.configure(postgres)(&$0); $0.auth = AuthConfiguration(secret: WebhookTests.secret, allowAnonymous: true) }) { node in
                try await Self.waitForTable(postgres)
                let ada = try await node.connect(path: "/ws?token=\(try await WebhookTests.token("ada"))")
                let watcher = try await node.subscriber("audit")
                try await postgres.execute(
                    "INSERT INTO herald_outbox (channel, payload) VALUES ('audit', '[1,2]'), ('bad channel', '{\"title\":\"x\"}'), ('audit', '{\"title\":\"after\"}')",
                    "INSERT INTO herald_outbox (user_id, payload) VALUES ('ada', '{\"title\":\"for ada\"}')")
                #expect(try await watcher.nextNotification(timeout: .seconds(10)).title == "after")
                let toAda = try await ada.nextNotification(timeout: .seconds(10))
                #expect(toAda.user == "ada" && toAda.title == "for ada")
                try await waitUntil("the failed rows to be moved") {
                    try await postgres.column("SELECT count(*)::text FROM herald_outbox_failed") == ["2"]
                }
                let reasons = try await postgres.column("SELECT reason FROM herald_outbox_failed ORDER BY id")
                #expect(reasons.count == 2 && reasons[0]?.hasPrefix("invalid_json") == true && reasons[1]?.hasPrefix("invalid_channel") == true, "\(reasons)")
                let metrics = try await node.request(.GET, "/metrics").text
                #expect(metrics.contains(#"herald_outbox_rows_total{outcome="failed"} 2"#))
                #expect(metrics.contains(#"herald_outbox_rows_total{outcome="published"} 2"#))
            }
        }
    }
}

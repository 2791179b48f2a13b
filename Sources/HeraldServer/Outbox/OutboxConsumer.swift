import CoreMetrics
import HeraldCore
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Publishes the committed rows of the outbox table, each once, then deletes them
/// (docs/integration.md).
///
/// Woken by `LISTEN` on the table's NOTIFY channel, and every `HERALD_OUTBOX_POLL` anyway (a
/// missed notification, a listener that reconnects). Each pass walks the table's partitions
/// (``OutboxConfiguration/partitions``); for each, one transaction takes the partition's
/// advisory lock (`pg_try_advisory_xact_lock`: another node working on it means skip it), claims
/// up to a batch of its rows in `id` order `FOR UPDATE SKIP LOCKED`, publishes them one after
/// the other, deletes the published ones (and moves invalid ones to `<table>_failed`), and
/// commits. So every node may consume, a channel's rows are published in order by one node at a
/// time, and a node that dies mid-batch leaves its rows to the next: they are published again
/// with the same idempotency key (``OutboxRow/idempotencyKey(table:)``), which the broker
/// drops as a duplicate. Redis down: the batch stops at the first row that cannot be published;
/// what is left waits for the next pass.
final class OutboxConsumer: Service {
    private let configuration: OutboxConfiguration
    private let schema: OutboxSchema
    private let client: PostgresClient
    private let publisher: Publisher
    private let maxBodyBytes: Int
    private let loop: any EventLoop
    private let logger: Logger
    private let bell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation
    private let published: Counter
    private let failed: Counter
    private let lag: Gauge
    /// Publishing failed and has not succeeded since: logged once per outage.
    private let blocked = Atomic(false)
    /// Spreads the nodes' passes over the partitions.
    private let start = Int.random(in: 0..<OutboxConfiguration.partitions)

    init?(
        _ configuration: OutboxConfiguration, publisher: Publisher, maxBodyBytes: Int, eventLoopGroup: any EventLoopGroup,
        metrics: NodeMetrics, logger: Logger
    ) throws {
        guard let url = configuration.url else { return nil }
        self.configuration = configuration
        self.schema = OutboxSchema(table: configuration.table)
        var pgLogger = logger
        pgLogger.logLevel = max(logger.logLevel, .warning)
        self.client = PostgresClient(
            configuration: try OutboxConfiguration.clientConfiguration(url), eventLoopGroup: eventLoopGroup, backgroundLogger: pgLogger)
        self.publisher = publisher
        self.maxBodyBytes = maxBodyBytes
        self.loop = eventLoopGroup.next()
        self.logger = logger
        (bell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.published = Counter(label: "herald_outbox_rows_total", dimensions: [("outcome", "published")], factory: metrics.factory)
        self.failed = Counter(label: "herald_outbox_rows_total", dimensions: [("outcome", "failed")], factory: metrics.factory)
        self.lag = Gauge(label: "herald_outbox_lag_seconds", factory: metrics.factory)
        lag.record(0)
    }

    func run() async throws {
        // The client must outlive the work that uses it, and its own run() ends at the first
        // sign of graceful shutdown — after which a transaction asking the pool for a
        // connection waited forever. So it runs outside the shutdown's reach (a detached task
        // inherits no graceful-shutdown context) and is stopped once the work has ended.
        let client = self.client
        let clientTask = Task.detached { await client.run() }
        await withTaskCancellationHandler {
            await cancelWhenGracefulShutdown {
                await withDiscardingTaskGroup { work in
                    work.addTask { await self.listen() }
                    work.addTask { await self.ticks() }
                    work.addTask { await self.consume() }
                }
            }
        } onCancel: {
            clientTask.cancel()
        }
        clientTask.cancel()
        await clientTask.value
    }

    // MARK: Waking

    private func ticks() async {
        while !Task.isCancelled {
            ring.yield()
            try? await Task.sleep(nanoseconds: UInt64(configuration.poll.nanoseconds))
        }
    }

    /// `LISTEN` on a connection of its own, again after any failure.
    private func listen() async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: schema.notifyChannel) { notifications in
                        // Rows committed while not listening are found by this first pass.
                        ring.yield()
                        for try await _ in notifications { ring.yield() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("outbox LISTEN failed; polling until it is back", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(configuration.poll.nanoseconds))
        }
    }

    // MARK: Consuming

    private func consume() async {
        var ready = !configuration.create
        for await _ in bell {
            do {
                if !ready {
                    try await createSchema()
                    ready = true
                }
                try await pass()
            } catch {
                logger.warning("outbox pass failed; rows wait for the next", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    private func createSchema() async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(schema.table)), -1)", logger: logger)
            for statement in schema.creation {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
        logger.info("outbox table ready", metadata: ["table": "\(configuration.table)"])
    }

    /// Every partition that has rows, once, each until it has no more ready rows or cannot
    /// publish. An idle table costs this one query (16 index probes) per wake-up.
    private func pass() async throws {
        let count = OutboxConfiguration.partitions
        let expression = schema.partitionExpression
        let rows = try await client.query(
            """
            SELECT p FROM generate_series(0, \(unescaped: String(count - 1))) AS p
            WHERE EXISTS (SELECT 1 FROM \(unescaped: schema.table) WHERE \(unescaped: expression) = p)
            """, logger: logger)
        var waiting = Set<Int32>()
        for try await partition in rows.decode(Int32.self) { waiting.insert(partition) }
        guard !waiting.isEmpty else {
            lag.record(0)
            return
        }
        partitions: for step in 0..<count {
            let partition = Int32((start + step) % count)
            guard waiting.contains(partition) else { continue }
            var outcome = BatchOutcome.full
            while outcome == .full { outcome = try await batch(partition: partition) }
            if outcome == .stopped { break partitions }
            if Task.isCancelled { return }
        }
        try await measureLag()
    }

    enum BatchOutcome {
        /// A whole batch was published: there may be more.
        case full
        /// Fewer rows than a batch, or another node holds the partition.
        case done
        /// A row could not be published (the broker is down): the pass ends here.
        case stopped
    }

    private func batch(partition: Int32) async throws -> BatchOutcome {
        let (table, failedTable, expression) = (schema.table, schema.failed, schema.partitionExpression)
        let limit = configuration.batchSize
        return try await client.withTransaction(logger: logger) { connection -> BatchOutcome in
            // The table's own advisory lock namespace: hashtext of its name, the same on every node.
            let locked = try await connection.query(
                "SELECT pg_try_advisory_xact_lock(hashtext(\(table)), \(partition))", logger: logger)
            var isLocked = false
            for try await (value) in locked.decode(Bool.self) { isLocked = value }
            guard isLocked else { return .done }
            let rows = try await connection.query(
                """
                SELECT id, channel, user_id, payload::text FROM \(unescaped: table)
                WHERE \(unescaped: expression) = \(partition) ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: logger)
            var claimed: [OutboxRow] = []
            for try await (id, channel, user, payload) in rows.decode((Int64, String?, String?, String).self) {
                claimed.append(OutboxRow(id: id, channel: channel, user: user, payload: payload))
            }
            guard !claimed.isEmpty else { return .done }
            var done: [Int64] = []
            var stopped = false
            for row in claimed {
                switch row.prepare(maxBodyBytes: maxBodyBytes) {
                case .failure(let error):
                    try await connection.query(
                        """
                        WITH moved AS (DELETE FROM \(unescaped: table) WHERE id = \(row.id) RETURNING *)
                        INSERT INTO \(unescaped: failedTable) (id, channel, user_id, payload, created_at, reason)
                        SELECT id, channel, user_id, payload, created_at, \(error.reason) FROM moved
                        """, logger: logger)
                    failed.increment()
                    logger.error("outbox row cannot be published; moved to the failed table", metadata: [
                        "id": "\(row.id)", "reason": "\(error.reason)", "table": "\(failedTable)",
                    ])
                case .success(let prepared):
                    do {
                        try await publish(prepared, key: row.idempotencyKey(table: table))
                        done.append(row.id)
                        if blocked.exchange(false, ordering: .relaxed) { logger.notice("outbox rows are published again") }
                    } catch {
                        // Later rows must not overtake this one: stop here, keep what was done.
                        if !blocked.exchange(true, ordering: .relaxed) {
                            logger.warning("outbox rows wait: cannot publish", metadata: ["id": "\(row.id)", "error": "\(error)"])
                        }
                        stopped = true
                    }
                }
                if stopped { break }
            }
            if !done.isEmpty {
                try await connection.query("DELETE FROM \(unescaped: table) WHERE id = ANY(\(done))", logger: logger)
                published.increment(by: Int64(done.count))
            }
            if stopped { return .stopped }
            return claimed.count == limit ? .full : .done
        }
    }

    private func publish(_ prepared: OutboxRow.Prepared, key: String) async throws {
        let notification = prepared.notification
        switch prepared.target {
        case .channel(let channel):
            let publication = Publication(
                channel: channel, payload: notification.encoded(), id: notification.id, idempotencyKey: key)
            _ = try await publisher.publish(publication, from: .rest, on: loop).get()
        case .user(let user):
            _ = try await publisher.notify(user: user, payload: notification.encoded(), id: notification.id, idempotencyKey: key)
        }
    }

    /// `herald_outbox_lag_seconds`: the age of the oldest row not yet published.
    private func measureLag() async throws {
        let rows = try await client.query(
            "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM \(unescaped: schema.table)", logger: logger)
        for try await value in rows.decode(Double.self) { lag.record(value) }
    }
}

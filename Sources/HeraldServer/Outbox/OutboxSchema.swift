import PostgresNIO

/// The outbox's SQL, for one table name (checked by ``OutboxConfiguration/isValidTable(_:)``
/// before it is ever spliced in). docs/integration.md shows the same DDL.
struct OutboxSchema: Sendable {
    let table: String
    var failed: String { table + "_failed" }
    /// The NOTIFY channel and trigger function share the table's name.
    var notifyChannel: String { table }

    /// The expression rows are partitioned by (also indexed).
    var partitionExpression: String {
        "(hashtext(coalesce(channel, '#' || user_id)) & \(OutboxConfiguration.partitions - 1))"
    }

    /// `HERALD_OUTBOX_CREATE=true`: everything the outbox needs, if missing. Run under an
    /// advisory lock, since several nodes may start at once.
    var creation: [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS \(table) (
              id bigserial PRIMARY KEY,
              channel text,
              user_id text,
              payload jsonb NOT NULL,
              created_at timestamptz NOT NULL DEFAULT now(),
              CHECK ((channel IS NULL) <> (user_id IS NULL))
            )
            """,
            "CREATE INDEX IF NOT EXISTS \(table)_partition ON \(table) (\(partitionExpression), id)",
            """
            CREATE TABLE IF NOT EXISTS \(failed) (
              id bigint PRIMARY KEY,
              channel text,
              user_id text,
              payload jsonb NOT NULL,
              created_at timestamptz NOT NULL,
              reason text NOT NULL,
              failed_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE OR REPLACE FUNCTION \(table)_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('\(notifyChannel)', '');
              RETURN NULL;
            END $$
            """,
            """
            CREATE OR REPLACE TRIGGER \(table)_notify AFTER INSERT ON \(table)
              FOR EACH STATEMENT EXECUTE FUNCTION \(table)_notify()
            """,
        ]
    }
}

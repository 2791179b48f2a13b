/// How the node writes its log lines (`HERALD_LOG_FORMAT`).
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's line for people: `2026-12-01T11:47:03+0000 info herald: node=… message`.
    case text
    /// One JSON object per line — time, level, label, message, source and every metadata key
    /// (node, request id, client id…) as a field — for log shippers.
    case json
}

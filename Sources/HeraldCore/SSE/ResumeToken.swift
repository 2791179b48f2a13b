import HeraldProtocol

/// The `id:` of a Server-Sent Events stream: the position of every channel of the stream, so
/// that one `Last-Event-ID` (what `EventSource` sends by itself when it reconnects) resumes
/// them all.
///
/// Form: `channel~offset~epoch` per channel, comma-separated, channels sorted — e.g.
/// `news~5~d1c3b120f11acfc0,orders~2~95be776796b71802`. Neither `~` nor `,` can occur in a
/// channel name or an epoch, so no escaping is needed, and the token is plain ASCII (an SSE
/// `id` must not contain line breaks).
public enum ResumeToken {
    /// Longest token accepted from a client.
    public static let maxLength = 16 * 1024

    public static func encode(_ positions: [String: StreamPosition]) -> String {
        positions.sorted { $0.key < $1.key }.map { "\($0.key)~\($0.value.offset)~\($0.value.epoch)" }.joined(separator: ",")
    }

    /// The positions in `token`; `nil` when it is malformed. An empty token is no position.
    public static func decode(_ token: String) -> [String: StreamPosition]? {
        guard token.utf8.count <= maxLength else { return nil }
        var positions: [String: StreamPosition] = [:]
        for entry in token.split(separator: ",", omittingEmptySubsequences: true) {
            let parts = entry.split(separator: "~", omittingEmptySubsequences: false)
            guard parts.count == 3, ChannelName.isValid(String(parts[0])), let offset = Int64(parts[1]), offset >= 0,
                !parts[2].isEmpty, parts[2].utf8.count <= 64, parts[2].utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
            else { return nil }
            positions[String(parts[0])] = StreamPosition(offset: offset, epoch: String(parts[2]))
        }
        return positions
    }
}

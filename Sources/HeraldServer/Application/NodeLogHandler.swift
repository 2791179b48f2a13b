import Logging

/// The node's log handler: swift-log's `StreamLogHandler` output, with metadata formatted only
/// when a line is actually written.
///
/// `StreamLogHandler` re-formats its whole metadata dictionary every time a key is set.
/// Hummingbird sets a request id on a copy of the logger for every HTTP request, so at a few
/// thousand publishes per second that formatting cost ~3 % of the node's CPU for lines that,
/// at the default level, are never written. Here metadata is kept as a dictionary and handed
/// to the stream handler with each line instead.
public struct NodeLogHandler: LogHandler {
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(label: String, level: Logger.Level) {
        stream = StreamLogHandler.standardError(label: label)
        stream.logLevel = level
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        if !metadata.isEmpty {
            event.metadata = metadata.merging(event.metadata ?? [:]) { $1 }
        }
        stream.log(event: event)
    }
}

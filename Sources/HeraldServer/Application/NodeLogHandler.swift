import Foundation
import Logging

/// The node's log handler: swift-log's `StreamLogHandler` output (``LogFormat/text``) or one
/// JSON object per line (``LogFormat/json``), with metadata formatted only when a line is
/// actually written.
///
/// `StreamLogHandler` re-formats its whole metadata dictionary every time a key is set.
/// Hummingbird sets a request id on a copy of the logger for every HTTP request, so at a few
/// thousand publishes per second that formatting cost ~3 % of the node's CPU for lines that,
/// at the default level, are never written. Here metadata is kept as a dictionary and handed
/// to the writer with each line instead.
public struct NodeLogHandler: LogHandler {
    private var stream: StreamLogHandler
    private let format: LogFormat
    private let label: String
    public var metadata: Logger.Metadata = [:]

    public init(label: String, level: Logger.Level, format: LogFormat = .text) {
        stream = StreamLogHandler.standardError(label: label)
        stream.logLevel = level
        self.format = format
        self.label = label
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
        switch format {
        case .text:
            stream.log(event: event)
        case .json:
            if let provided = metadataProvider?.get(), !provided.isEmpty {
                event.metadata = provided.merging(event.metadata ?? [:]) { $1 }
            }
            var line = JSONLogLine.encode(event, label: label)
            line.append(UInt8(ascii: "\n"))
            // One write(2) per line: lines from several threads never interleave.
            line.withUnsafeBufferPointer { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
        }
    }
}

/// One log event as a JSON object: `time`, `level`, `label`, `message`, `source`, then every
/// metadata key (fields named like those are prefixed with `meta_`).
enum JSONLogLine {
    static let reserved: Set<String> = ["time", "level", "label", "message", "source"]
    private static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    static func encode(_ event: LogEvent, label: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.append(UInt8(ascii: "{"))
        field("time", Date().formatted(timeStyle), &out)
        field("level", event.level.rawValue, &out)
        field("label", label, &out)
        field("message", event.message.description, &out)
        field("source", event.source, &out)
        for (key, value) in (event.metadata ?? [:]).sorted(by: { $0.key < $1.key }) {
            out.append(UInt8(ascii: ","))
            string(reserved.contains(key) ? "meta_" + key : key, &out)
            out.append(UInt8(ascii: ":"))
            self.value(value, &out)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func field(_ key: String, _ text: String, _ out: inout [UInt8]) {
        if out.count > 1 { out.append(UInt8(ascii: ",")) }
        string(key, &out)
        out.append(UInt8(ascii: ":"))
        string(text, &out)
    }

    private static func value(_ value: Logger.MetadataValue, _ out: inout [UInt8]) {
        switch value {
        case .string(let text): string(text, &out)
        case .stringConvertible(let convertible): string(convertible.description, &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                self.value(item, &out)
            }
            out.append(UInt8(ascii: "]"))
        case .dictionary(let entries):
            out.append(UInt8(ascii: "{"))
            for (index, entry) in entries.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                string(entry.key, &out)
                out.append(UInt8(ascii: ":"))
                self.value(entry.value, &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped; the rest as UTF-8.
    static func string(_ text: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

import Foundation
import NIOCore

/// Everything about one setting, declared once: its flag, environment variables, default,
/// help text, and how its value is read into a ``HeraldConfiguration``.
///
/// ``HeraldConfiguration/resolve(flags:environment:)`` applies every declaration in turn,
/// `herald serve` parses its flags and prints its `--help` from them, and a test holds
/// docs/configuration.md to them.
public struct Setting: Sendable {
    /// The `--flag` name.
    public let flag: String
    /// Environment variables, first match wins.
    public let environment: [String]
    /// The key in the configuration file (`history_size` for `--history-size`).
    public let fileKey: String
    /// The default, as it would be typed; `nil` means "unset" (the help says what that does).
    public let defaultValue: String?
    public let help: String
    /// Reads the value into the configuration; called only when the setting has a value
    /// (given, or by default). Throws ``ConfigurationError``.
    let apply: @Sendable (inout HeraldConfiguration, SettingValue) throws -> Void

    init(
        _ flag: String, environment: [String]? = nil, default defaultValue: String? = nil, help: String,
        apply: @escaping @Sendable (inout HeraldConfiguration, SettingValue) throws -> Void
    ) {
        self.flag = flag
        self.environment = environment ?? ["HERALD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")]
        self.fileKey = flag.replacingOccurrences(of: "-", with: "_")
        self.defaultValue = defaultValue
        self.help = help
        self.apply = apply
    }
}

/// One setting's raw value and where it came from, with the parsers every setting shares; a
/// value that does not parse becomes a ``ConfigurationError`` naming its source.
public struct SettingValue: Sendable {
    public let key: ConfigKey
    public let raw: String
    /// `--flag`, the environment variable, or "default for --flag".
    public let source: String

    func fail(_ expected: String) -> ConfigurationError {
        ConfigurationError(key: key, source: source, value: raw, expected: expected)
    }

    private var trimmed: String { raw.trimmingCharacters(in: .whitespaces) }

    func string() throws(ConfigurationError) -> String {
        guard !trimmed.isEmpty else { throw fail("a non-empty value") }
        return trimmed
    }

    func int(_ range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = Int(trimmed), range.contains(value) else {
            throw fail(range.upperBound == Int.max ? "a whole number ≥ \(range.lowerBound)" : "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func number(min: Double) throws(ConfigurationError) -> Double {
        guard let value = Double(trimmed), value.isFinite, value >= min else { throw fail("a number ≥ \(min)") }
        return value
    }

    /// Seconds, fractions allowed, above 0 and at most a day.
    func seconds() throws(ConfigurationError) -> TimeAmount {
        guard let value = Double(trimmed), value.isFinite, value > 0, value <= 86_400 else {
            throw fail("a number of seconds above 0 (fractions allowed, at most 86400)")
        }
        return .nanoseconds(Int64(value * 1e9))
    }

    /// An absolute `http://` or `https://` URL.
    func httpURL() throws(ConfigurationError) -> String {
        let value = try string()
        guard let url = URL(string: value), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
            throw fail("an http:// or https:// URL")
        }
        return value
    }

    /// A comma-separated list; blanks dropped.
    func list() -> [String] {
        raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func bool() throws(ConfigurationError) -> Bool {
        switch trimmed.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw fail("true or false")
        }
    }

    /// The whole text of the file the value names.
    func fileContents() throws(ConfigurationError) -> String {
        guard let text = try? String(contentsOfFile: raw, encoding: .utf8) else { throw fail("a readable file") }
        return text
    }
}

/// A configuration value that cannot be used, with the key and the reason.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var key: ConfigKey
    public var source: String
    public var value: String
    public var expected: String

    public var description: String {
        "invalid \(source) '\(value)': expected \(expected)"
    }
}

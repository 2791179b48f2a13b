/// The one rule for channel names, shared by the WebSocket protocol and the REST API.
///
/// A name is 1–128 characters, each an ASCII letter, digit, or one of `_ - : .`. The rule is
/// deliberately narrow: names become Redis keys, log metadata and URL path segments, so they
/// must never need escaping anywhere.
public enum ChannelName {
    /// Longest accepted name, in characters (all ASCII, so also bytes).
    public static let maxLength = 128

    /// Returns why `name` is not a valid channel name, or `nil` when it is.
    public static func problem(with name: String) -> String? {
        let utf8 = name.utf8
        if utf8.isEmpty { return "channel name must not be empty" }
        if utf8.count > maxLength { return "channel name is longer than \(maxLength) characters" }
        for byte in utf8 where !isAllowed(byte) {
            return "channel name may only contain letters, digits and _ - : ."
        }
        return nil
    }

    /// `true` when `name` follows the rule.
    public static func isValid(_ name: String) -> Bool { problem(with: name) == nil }

    @inline(__always)
    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: ":"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }
}

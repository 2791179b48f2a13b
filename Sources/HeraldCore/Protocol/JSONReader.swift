import HeraldProtocol

/// A strict RFC 8259 reader for the JSON objects Herald receives on its hot path: REST
/// publish bodies. (Client frames are decoded by ``ClientMessage``'s `Codable` conformance: a
/// release build measured 2–5 µs per frame with `JSONDecoder` against 0.3–0.7 µs for this
/// reader's fields alone, and client frames are rate-limited and rare — a pong per heartbeat —
/// so the typed decoder and its precise errors are worth more there than the microseconds.)
///
/// `JSONDecoder` builds a tree of every value before `Codable` picks out the fields, and
/// decoding the free-form `data` object through `JSONValue` costs a thrown error per type it
/// tries; together that was a quarter of a REST publish's CPU. This reader makes one pass over
/// the bytes: it checks the whole text (grammar, UTF-8, escapes, number range, nesting
/// depth), decodes only the top-level string values, and hands every other value back as the
/// byte range it occupies, so `data` can travel to subscribers as the exact bytes the
/// publisher sent.
///
/// Numbers are accepted only if a `JSONDecoder` on the receiving side can read them (an
/// integer that fits `Int64`, or a finite `Double`), so the server never forwards a payload
/// that Herald's own client library would fail to decode.
public struct JSONReader {
    /// Deepest nesting accepted (`JSONDecoder` stops at the same depth).
    public static let maxDepth = 512

    public enum Kind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// One member of the top-level object.
    public struct Field: Sendable {
        public var kind: Kind
        /// Where the value's text lies in the input.
        public var range: Range<Int>
        /// The decoded value, for strings.
        public var string: String?
    }

    /// The input is not JSON; `reason` says where it went wrong, for logs and error messages.
    public struct Failure: Error, Sendable, Equatable {
        public var reason: String
        public var offset: Int
    }

    /// The members of the object that makes up `bytes`, by key (a repeated key keeps its first
    /// value, as `JSONDecoder` does); `nil` when the text is valid JSON but not an object, which
    /// the caller reports in its own words.
    public static func objectFields(_ bytes: some Collection<UInt8>) throws(Failure) -> [String: Field]? {
        try withBuffer(bytes) { buffer throws(Failure) in
            var parser = Parser(buffer)
            return try parser.topLevelObject(collecting: true)
        }
    }

    /// The strings of an array `field` found by ``objectFields(_:)`` in the same `bytes`;
    /// `nil` if an element is not a string.
    public static func strings(ofArray field: Field, in bytes: some Collection<UInt8>) -> [String]? {
        precondition(field.kind == .array)
        let strings: [String]?? = try? withBuffer(bytes) { buffer throws(Failure) -> [String]? in
            var parser = Parser(buffer)
            parser.index = field.range.lowerBound + 1
            var strings: [String] = []
            // objectFields validated the text: only its structure is walked here.
            parser.skipWhitespace()
            if parser.peek == UInt8(ascii: "]") { return strings }
            while true {
                parser.skipWhitespace()
                guard parser.peek == UInt8(ascii: "\"") else { return nil }
                strings.append(try parser.string(decoding: true) ?? "")
                parser.skipWhitespace()
                guard parser.peek == UInt8(ascii: ",") else { return strings }
                parser.index += 1
            }
        }
        return strings ?? nil
    }

    /// Where each element of an array `field` found by ``objectFields(_:)`` lies in the same
    /// `bytes` (a batch's items, each then read with ``objectFields(_:)``).
    public static func elements(ofArray field: Field, in bytes: some Collection<UInt8>) -> [Range<Int>] {
        precondition(field.kind == .array)
        let ranges: [Range<Int>]? = try? withBuffer(bytes) { buffer throws(Failure) -> [Range<Int>] in
            var parser = Parser(buffer)
            parser.index = field.range.lowerBound + 1
            var ranges: [Range<Int>] = []
            // objectFields validated the text: only its structure is walked here.
            parser.skipWhitespace()
            if parser.peek == UInt8(ascii: "]") { return ranges }
            while true {
                parser.skipWhitespace()
                let start = parser.index
                _ = try parser.value()
                ranges.append(start..<parser.index)
                parser.skipWhitespace()
                guard parser.peek == UInt8(ascii: ",") else { return ranges }
                parser.index += 1
            }
        }
        return ranges ?? []
    }

    /// The text of a `field` found by ``objectFields(_:)`` in the same `bytes`, as raw JSON.
    public static func raw(_ field: Field, in bytes: some Collection<UInt8>) -> RawJSON {
        let start = bytes.index(bytes.startIndex, offsetBy: field.range.lowerBound)
        let end = bytes.index(start, offsetBy: field.range.count)
        return RawJSON(trusted: Array(bytes[start..<end]))
    }

    private static func withBuffer<T>(
        _ bytes: some Collection<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) throws(Failure) -> T
    ) throws(Failure) -> T {
        let result: Result<T, Failure>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(Failure) in try body(buffer) }
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buffer throws(Failure) in try body(buffer) }
    }

    /// Whether `bytes` is exactly one valid JSON value (surrounding whitespace allowed).
    public static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        do {
            _ = try withBuffer(bytes) { buffer throws(Failure) in
                var parser = Parser(buffer)
                return try parser.topLevelObject(collecting: false)
            }
            return true
        } catch {
            return false
        }
    }
}

extension JSONReader {
    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var depth = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        func fail(_ reason: String) -> Failure {
            Failure(reason: reason, offset: index)
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8) throws(Failure) {
            guard peek == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
            index += 1
        }

        /// The top-level object's fields (when `collecting`), or `nil` for another valid value.
        mutating func topLevelObject(collecting: Bool) throws(Failure) -> [String: Field]? {
            skipWhitespace()
            var fields: [String: Field]?
            if peek == UInt8(ascii: "{") {
                fields = try object(collecting: collecting)
            } else {
                _ = try value()
            }
            skipWhitespace()
            guard index == bytes.count else { throw fail("unexpected text after the JSON value") }
            return fields
        }

        /// Reads one value of any kind and returns its kind.
        mutating func value() throws(Failure) -> Kind {
            guard let byte = peek else { throw fail("unexpected end of input") }
            switch byte {
            case UInt8(ascii: "{"):
                _ = try object(collecting: false)
                return .object
            case UInt8(ascii: "["):
                try array()
                return .array
            case UInt8(ascii: "\""):
                _ = try string(decoding: false)
                return .string
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                try number()
                return .number
            default:
                throw fail("unexpected character")
            }
        }

        mutating func object(collecting: Bool) throws(Failure) -> [String: Field]? {
            try enter()
            defer { depth -= 1 }
            index += 1  // {
            var fields: [String: Field]? = collecting ? [:] : nil
            skipWhitespace()
            if peek == UInt8(ascii: "}") {
                index += 1
                return fields
            }
            while true {
                skipWhitespace()
                guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let key = try string(decoding: collecting)
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                let start = index
                // A repeated key keeps its first value, as JSONDecoder does.
                if collecting, let key, fields?[key] == nil {
                    if peek == UInt8(ascii: "\"") {
                        let decoded = try string(decoding: true)
                        fields?[key] = Field(kind: .string, range: start..<index, string: decoded)
                    } else {
                        let kind = try value()
                        fields?[key] = Field(kind: kind, range: start..<index, string: nil)
                    }
                } else {
                    _ = try value()
                }
                skipWhitespace()
                guard let next = peek else { throw fail("unterminated object") }
                index += 1
                if next == UInt8(ascii: "}") { return fields }
                guard next == UInt8(ascii: ",") else {
                    index -= 1
                    throw fail("expected ',' or '}'")
                }
            }
        }

        mutating func array() throws(Failure) {
            try enter()
            defer { depth -= 1 }
            index += 1  // [
            skipWhitespace()
            if peek == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                _ = try value()
                skipWhitespace()
                guard let next = peek else { throw fail("unterminated array") }
                index += 1
                if next == UInt8(ascii: "]") { return }
                guard next == UInt8(ascii: ",") else {
                    index -= 1
                    throw fail("expected ',' or ']'")
                }
            }
        }

        mutating func enter() throws(Failure) {
            depth += 1
            guard depth <= JSONReader.maxDepth else { throw fail("nested deeper than \(JSONReader.maxDepth) levels") }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw fail("invalid literal") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
                throw fail("invalid literal")
            }
            index += count
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, in the range a decoder can read.
        mutating func number() throws(Failure) {
            let start = index
            if peek == UInt8(ascii: "-") { index += 1 }
            guard let first = peek, isDigit(first) else { throw fail("invalid number") }
            index += 1
            if first != UInt8(ascii: "0") {
                while let byte = peek, isDigit(byte) { index += 1 }
            }
            var integral = true
            if peek == UInt8(ascii: ".") {
                integral = false
                index += 1
                guard let byte = peek, isDigit(byte) else { throw fail("invalid number") }
                while let byte = peek, isDigit(byte) { index += 1 }
            }
            if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
                integral = false
                index += 1
                if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
                guard let byte = peek, isDigit(byte) else { throw fail("invalid number") }
                while let byte = peek, isDigit(byte) { index += 1 }
            }
            // Up to 18 digits always fit an Int64; anything else is checked the slow way.
            if integral && index - start <= 18 { return }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if integral, Int64(text) != nil { return }
            guard let double = Double(text), double.isFinite else { throw fail("number out of range") }
        }

        /// Reads a string starting at its opening quote; returns its value when `decoding`.
        mutating func string(decoding: Bool) throws(Failure) -> String? {
            index += 1  // "
            let start = index
            var escaped = false
            var nonASCII = false
            while true {
                guard index < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") { break }
                if byte == UInt8(ascii: "\\") {
                    escaped = true
                    try escape()
                    continue
                }
                if byte < 0x20 { throw fail("control character in a string") }
                if byte >= 0x80 { nonASCII = true }
                index += 1
            }
            let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
            index += 1  // "
            if nonASCII, String(validating: raw, as: UTF8.self) == nil {
                throw Failure(reason: "string is not valid UTF-8", offset: start)
            }
            guard decoding else { return nil }
            if !escaped { return String(decoding: raw, as: UTF8.self) }
            return Self.unescape(raw)
        }

        /// Checks one escape sequence at `index` and moves past it.
        mutating func escape() throws(Failure) {
            index += 1  // backslash
            guard let byte = peek else { throw fail("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                index += 1
            case UInt8(ascii: "u"):
                index += 1
                let unit = try hex4()
                if (0xDC00...0xDFFF).contains(unit) { throw fail("unpaired surrogate escape") }
                if (0xD800...0xDBFF).contains(unit) {
                    guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                    else { throw fail("unpaired surrogate escape") }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate escape") }
                }
            default:
                throw fail("invalid escape")
            }
        }

        mutating func hex4() throws(Failure) -> UInt16 {
            guard index + 4 <= bytes.count else { throw fail("invalid \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                guard let digit = Self.hexValue(bytes[index]) else { throw fail("invalid \\u escape") }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }

        static func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }

        /// Decodes the escapes of a string body already checked by ``escape()``.
        static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String {
            var out: [UInt8] = []
            out.reserveCapacity(raw.count)
            var i = 0
            func hex(_ at: Int) -> UInt32 {
                var value: UInt32 = 0
                for k in at..<at + 4 { value = value << 4 | UInt32(hexValue(raw[k])!) }
                return value
            }
            while i < raw.count {
                let byte = raw[i]
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    i += 1
                    continue
                }
                let kind = raw[i + 1]
                i += 2
                switch kind {
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = hex(i)
                    i += 4
                    if (0xD800...0xDBFF).contains(scalar) {
                        let low = hex(i + 2)
                        i += 6
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    out.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(scalar)!)!)
                default: out.append(kind)  // " \ /
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }
    }
}

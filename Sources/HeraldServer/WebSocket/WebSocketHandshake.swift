import Crypto
import Foundation
import HeraldProtocol
import NIOCore

/// The first request on a connection, read far enough to tell a WebSocket handshake for
/// `/ws…` from everything else, and the handshake's few fields we use.
///
/// Pure: it looks at the bytes received so far and says what they are. The connection's
/// first handler (``FirstRequestHandler``) performs what it decides. Reading a handshake this
/// way, instead of through NIO's HTTP decoder and typed upgrader, spares every WebSocket
/// connection the HTTP handlers it would only have torn down again (see docs/benchmarks.md for
/// the profile behind this).
///
/// Only requests that start with `GET /ws` followed by ` `, `?` or `/` are read here; every
/// other first request — REST, SSE, a `GET /ws` without `Upgrade: websocket` — goes to the HTTP
/// pipeline with its bytes untouched.
struct WebSocketHandshake: Equatable, Sendable {
    /// The request target's path, e.g. `/ws`.
    var path: String
    /// The request target's query, without `?`; empty if none.
    var query: String
    /// Header fields in the order received, names as sent.
    var headers: [(name: String, value: String)]
    /// The `Sec-WebSocket-Key`, already checked to be 16 bytes in base64.
    var key: String

    /// Largest request head read here: a handshake is a few hundred bytes; nginx's default
    /// buffer for a whole head is 8 KiB, and a token in the query still fits twice over.
    static let maxHeadBytes = 16_384

    enum Reading: Equatable, Sendable {
        /// Not a whole head yet; read on.
        case needMore
        /// Not a WebSocket handshake for us: hand every byte to the HTTP pipeline.
        case http
        /// A valid handshake; `headLength` bytes of the input were its head.
        case handshake(WebSocketHandshake, headLength: Int)
        /// A handshake we refuse before anything else is looked at.
        case refused(Refusal)
    }

    /// Why a handshake is malformed, with the HTTP status to answer.
    struct Refusal: Equatable, Sendable {
        var status: Int
        var message: String
        /// `426`: the version we speak, for `Sec-WebSocket-Version`.
        var supportedVersion: Bool = false

        /// The `code` of the JSON error: a head too large is `payload_too_large`, anything
        /// else a malformed message.
        var code: ErrorCode { status == 431 ? .payloadTooLarge : .invalidMessage }
    }

    static func == (lhs: WebSocketHandshake, rhs: WebSocketHandshake) -> Bool {
        lhs.path == rhs.path && lhs.query == rhs.query && lhs.key == rhs.key
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }

    private static let prefix = Array("GET /ws".utf8)

    /// Reads `bytes`, everything received so far on a new connection.
    static func read(_ bytes: ByteBufferView) -> Reading {
        let start = bytes.startIndex
        let seen = min(bytes.count, prefix.count)
        for offset in 0..<seen where bytes[start + offset] != prefix[offset] { return .http }
        guard bytes.count > prefix.count else { return .needMore }
        switch bytes[start + prefix.count] {
        case UInt8(ascii: " "), UInt8(ascii: "?"), UInt8(ascii: "/"): break
        default: return .http
        }
        guard let end = headEnd(bytes) else {
            return bytes.count > maxHeadBytes ? .refused(Refusal(status: 431, message: "request head larger than \(maxHeadBytes) bytes")) : .needMore
        }
        guard end <= maxHeadBytes else {
            return .refused(Refusal(status: 431, message: "request head larger than \(maxHeadBytes) bytes"))
        }
        return parse(Array(bytes[start..<(start + end - 4)]), headLength: end)
    }

    private static func parse(_ head: [UInt8], headLength: Int) -> Reading {
        // Bytes, not Foundation strings: this runs once per connection, and the case-insensitive
        // compares of `String` were the biggest part of it when profiled.
        var lines = head.split(separator: cr, maxSplits: Int.max, omittingEmptySubsequences: false).map { line in
            line.first == lf ? line.dropFirst() : line
        }[...]
        guard let requestLine = lines.popFirst() else { return .http }
        let parts = requestLine.split(separator: space, omittingEmptySubsequences: false)
        // HTTP/1.0 and oddities go to the HTTP pipeline, which answers them as it answers any
        // request; a WebSocket needs HTTP/1.1.
        guard parts.count == 3, parts[2].elementsEqual("HTTP/1.1".utf8) else { return .http }
        let target = parts[1]
        let mark = target.firstIndex(of: UInt8(ascii: "?"))
        let path = String(decoding: target[..<(mark ?? target.endIndex)], as: UTF8.self)
        let query = mark.map { String(decoding: target[($0 + 1)...], as: UTF8.self) } ?? ""
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        var upgrade = false
        var connectionUpgrade = false
        var versions = 0
        var version13 = false
        var keys: [ArraySlice<UInt8>] = []
        for line in lines {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return .refused(Refusal(status: 400, message: "malformed header line"))
            }
            let name = line[..<colon]
            guard !name.isEmpty, !name.contains(where: { $0 == space || $0 == tab }) else {
                return .refused(Refusal(status: 400, message: "malformed header name"))
            }
            let value = trimmed(line[(colon + 1)...])
            if equalsIgnoringCase(name, "upgrade") {
                upgrade = upgrade || hasToken(value, "websocket")
            } else if equalsIgnoringCase(name, "connection") {
                connectionUpgrade = connectionUpgrade || hasToken(value, "upgrade")
            } else if equalsIgnoringCase(name, "sec-websocket-version") {
                versions += 1
                version13 = value.elementsEqual("13".utf8)
            } else if equalsIgnoringCase(name, "sec-websocket-key") {
                keys.append(value)
            }
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        // A plain GET of /ws is an HTTP request like any other (the router answers it).
        guard upgrade else { return .http }
        guard connectionUpgrade else {
            return .refused(Refusal(status: 400, message: "Upgrade: websocket without Connection: upgrade"))
        }
        guard versions == 1, version13 else {
            return .refused(Refusal(status: 426, message: "only WebSocket version 13 is supported", supportedVersion: true))
        }
        guard keys.count == 1, let key = keys.first, isKey(key) else {
            return .refused(Refusal(status: 400, message: "missing or malformed Sec-WebSocket-Key"))
        }
        let handshake = WebSocketHandshake(path: path, query: query, headers: headers, key: String(decoding: key, as: UTF8.self))
        return .handshake(handshake, headLength: headLength)
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var bytes = bytes
        while let first = bytes.first, first == space || first == tab { bytes.removeFirst() }
        while let last = bytes.last, last == space || last == tab { bytes.removeLast() }
        return bytes
    }

    /// `bytes` equals `lowercased` (ASCII) ignoring case.
    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercased: StaticString) -> Bool {
        guard bytes.count == lowercased.utf8CodeUnitCount else { return false }
        return lowercased.withUTF8Buffer { expected in
            zip(bytes, expected).allSatisfy { byte, wanted in
                (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) == wanted
            }
        }
    }

    /// Whether the comma-separated `value` holds `token` (ASCII, any case).
    private static func hasToken(_ value: ArraySlice<UInt8>, _ token: StaticString) -> Bool {
        value.split(separator: UInt8(ascii: ",")).contains { equalsIgnoringCase(trimmed($0), token) }
    }

    /// A `Sec-WebSocket-Key`: 16 bytes in base64, so 22 base64 characters and `==`.
    private static func isKey(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard bytes.count == 24, bytes.suffix(2).elementsEqual("==".utf8) else { return false }
        return bytes.prefix(22).allSatisfy { byte in
            (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57)
                || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "/")
        }
    }

    /// The offset just past the blank line that ends the head, if it arrived.
    private static func headEnd(_ bytes: ByteBufferView) -> Int? {
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        var index = bytes.startIndex
        let last = bytes.endIndex - 3
        while index < last {
            if bytes[index] == cr, bytes[index + 1] == lf, bytes[index + 2] == cr, bytes[index + 3] == lf {
                return index - bytes.startIndex + 4
            }
            index += 1
        }
        return nil
    }

    /// The first value of header `name` (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { Self.sameName($0.name, name) }?.value
    }

    /// Every value of header `name` (case-insensitive), in order.
    func headerValues(_ name: String) -> [String] {
        headers.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    private static func sameName(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && zip(a.utf8, b.utf8).allSatisfy { x, y in
            (x >= 65 && x <= 90 ? x | 0x20 : x) == (y >= 65 && y <= 90 ? y | 0x20 : y)
        }
    }

    /// The `101 Switching Protocols` answer, with RFC 6455's accept value for our key.
    func switchingProtocols() -> ByteBuffer {
        let digest = Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        let accept = Data(digest).base64EncodedString()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(Self.switchingHead.count + accept.utf8.count + 4)
        buffer.writeBytes(Self.switchingHead)
        buffer.writeString(accept)
        buffer.writeStaticString("\r\n\r\n")
        return buffer
    }

    private static let switchingHead = Array(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".utf8)
}

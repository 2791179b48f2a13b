import Crypto
import Foundation
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
        // Header values may hold any octet but CR/LF; decode as Latin-1 semantics would keep
        // them, but we only ever compare ASCII, so invalid UTF-8 is simply not a match.
        let head = String(decoding: bytes[start..<(start + end - 4)], as: UTF8.self)
        return parse(head, headLength: end)
    }

    private static func parse(_ head: String, headLength: Int) -> Reading {
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let requestLine = lines.popFirst() else { return .http }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        // HTTP/1.0 and oddities go to the HTTP pipeline, which answers them as it answers any
        // request; a WebSocket needs HTTP/1.1.
        guard parts.count == 3, parts[2] == "HTTP/1.1" else { return .http }
        let target = parts[1]
        let path: Substring
        let query: Substring
        if let mark = target.firstIndex(of: "?") {
            path = target[..<mark]
            query = target[target.index(after: mark)...]
        } else {
            path = target
            query = ""
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else {
                return .refused(Refusal(status: 400, message: "malformed header line"))
            }
            let name = line[..<colon]
            guard !name.isEmpty, !name.contains(where: { $0 == " " || $0 == "\t" }) else {
                return .refused(Refusal(status: 400, message: "malformed header name"))
            }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers.append((String(name), value))
        }
        func values(_ name: String) -> [String] {
            headers.lazy.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
        }
        func hasToken(_ name: String, _ token: String) -> Bool {
            values(name).contains { value in
                value.split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces).caseInsensitiveCompare(token) == .orderedSame }
            }
        }
        // A plain GET of /ws is an HTTP request like any other (the router answers it).
        guard hasToken("Upgrade", "websocket") else { return .http }
        guard hasToken("Connection", "upgrade") else {
            return .refused(Refusal(status: 400, message: "Upgrade: websocket without Connection: upgrade"))
        }
        guard values("Sec-WebSocket-Version") == ["13"] else {
            return .refused(Refusal(status: 426, message: "only WebSocket version 13 is supported", supportedVersion: true))
        }
        let keys = values("Sec-WebSocket-Key")
        guard keys.count == 1, let key = keys.first, key.utf8.count == 24, Data(base64Encoded: key)?.count == 16 else {
            return .refused(Refusal(status: 400, message: "missing or malformed Sec-WebSocket-Key"))
        }
        return .handshake(WebSocketHandshake(path: String(path), query: String(query), headers: headers, key: key), headLength: headLength)
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
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }

    /// Every value of header `name` (case-insensitive), in order.
    func headerValues(_ name: String) -> [String] {
        headers.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
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

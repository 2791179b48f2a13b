import Foundation
import HeraldTesting
import NIOCore
import Testing

@testable import HeraldServer

/// The first request of a connection: a WebSocket handshake read and answered by
/// ``FirstRequestHandler`` (no HTTP pipeline), everything else handed to HTTP unchanged.
@Suite struct WebSocketHandshakeTests {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    static let handshake =
        "GET /ws?token=a%20b HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
        + "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: \(key)\r\nOrigin: https://app.example\r\n\r\n"

    static func read(_ text: String) -> WebSocketHandshake.Reading {
        WebSocketHandshake.read(ByteBuffer(string: text).readableBytesView)
    }

    static func handshake(replacing header: String, with line: String?) -> String {
        let lines = handshake.components(separatedBy: "\r\n").compactMap { current -> String? in
            current.hasPrefix(header + ":") ? line : current
        }
        return lines.joined(separator: "\r\n")
    }

    // MARK: The reader, pure

    @Test func aHandshakeIsReadWithItsFieldsAndLength() throws {
        guard case .handshake(let request, let length) = Self.read(Self.handshake + "\u{81}") else {
            Issue.record("not read as a handshake")
            return
        }
        #expect(length == Self.handshake.utf8.count)
        #expect(request.path == "/ws")
        #expect(request.query == "token=a%20b")
        #expect(request.key == Self.key)
        #expect(request.header("origin") == "https://app.example")
        #expect(request.headerValues("HOST") == ["node"])
    }

    @Test func everyPrefixOfAHandshakeAsksForMore() {
        let bytes = Array(Self.handshake.utf8)
        for end in 0..<bytes.count {
            let reading = WebSocketHandshake.read(ByteBuffer(bytes: bytes[..<end]).readableBytesView)
            #expect(reading == .needMore, "after \(end) bytes")
        }
    }

    @Test func otherRequestsGoToHTTPAsSoonAsTheyDiffer() {
        #expect(Self.read("P") == .http)
        #expect(Self.read("GET /h") == .http)
        #expect(Self.read("GET /wsx") == .http)
        #expect(Self.read("POST /ws HTTP/1.1\r\n\r\n") == .http)
        // A plain GET of /ws, and HTTP/1.0, are requests the router answers.
        #expect(Self.read(Self.handshake(replacing: "Upgrade", with: nil)) == .http)
        #expect(Self.read(Self.handshake.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0")) == .http)
    }

    @Test func malformedHandshakesAreRefusedWithTheirStatus() {
        func status(_ text: String) -> Int? {
            if case .refused(let refusal) = Self.read(text) { return refusal.status }
            return nil
        }
        #expect(status(Self.handshake(replacing: "Sec-WebSocket-Version", with: "Sec-WebSocket-Version: 8")) == 426)
        #expect(status(Self.handshake(replacing: "Sec-WebSocket-Version", with: nil)) == 426)
        #expect(status(Self.handshake(replacing: "Sec-WebSocket-Key", with: nil)) == 400)
        #expect(status(Self.handshake(replacing: "Sec-WebSocket-Key", with: "Sec-WebSocket-Key: c2hvcnQ=")) == 400)
        #expect(status(Self.handshake(replacing: "Sec-WebSocket-Key", with: "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!")) == 400)
        #expect(status(Self.handshake(replacing: "Connection", with: "Connection: keep-alive")) == 400)
        #expect(status(Self.handshake(replacing: "Host", with: "no colon here")) == 400)
        #expect(status(Self.handshake(replacing: "Host", with: "Bad Name: x")) == 400)
        let huge = "GET /ws HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: WebSocketHandshake.maxHeadBytes)
        #expect(status(huge) == 431)
        #expect(status(Self.handshake(replacing: "Host", with: "X-Big: " + String(repeating: "a", count: WebSocketHandshake.maxHeadBytes))) == 431)
    }

    @Test func theAcceptValueIsRFC6455s() throws {
        guard case .handshake(let request, _) = Self.read(Self.handshake) else {
            Issue.record("not read as a handshake")
            return
        }
        let response = String(buffer: request.switchingProtocols())
        // RFC 6455 section 1.3's worked example.
        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(response.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"))
    }

    // MARK: Against a node, over raw sockets

    /// A masked client text frame (payloads under 126 bytes).
    static func maskedText(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        return [0x81, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    @Test func aHandshakeSentByteByByteWithAFrameBehindItIsServed() async throws {
        try await withNode { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let index = try await raw.open(writing: "")
                let plain = Self.handshake.replacingOccurrences(of: "?token=a%20b", with: "")
                var bytes = Array(plain.utf8)
                let head = bytes.count
                // The client does not wait for the 101: its first message rides with the head's end.
                bytes += Self.maskedText(#"{"type":"subscribe","channel":"bytewise"}"#)
                for byte in bytes[..<(head - 1)] {
                    try await raw[index].channel.writeAndFlush(ByteBuffer(bytes: [byte]))
                }
                try await raw[index].channel.writeAndFlush(ByteBuffer(bytes: bytes[(head - 1)...]))
                let answer = try await raw.read(index, until: "\"subscribed\"")
                #expect(answer.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
                #expect(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
                #expect(answer.contains("\"welcome\""))
                // The subscription is real: a publish reaches this socket.
                let published = try await node.request(.POST, "/api/notify/bytewise", body: #"{"title":"after the bytes"}"#)
                #expect(published.status == 200)
                _ = try await raw.read(index, until: "after the bytes")
            }
        }
    }

    @Test func framesSentWhileTheTokenIsVerifiedWaitAndAreServedInOrder() async throws {
        try await withNode(AuthTests.secured()) { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let token = try await AuthTests.token(channels: ["private:ops"])
                let handshake = Self.handshake.replacingOccurrences(of: "?token=a%20b", with: "?token=\(token)")
                // Head and two subscribes in one write: both wait for the verdict, then run in order.
                let bytes = Array(handshake.utf8) + Self.maskedText(#"{"type":"subscribe","channel":"private:ops"}"#)
                    + Self.maskedText(#"{"type":"subscribe","channel":"private:hr"}"#)
                let index = try await raw.open(writing: "")
                try await raw[index].channel.writeAndFlush(ByteBuffer(bytes: bytes))
                let answer = try await raw.read(index, until: "\"forbidden\"")
                #expect(answer.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
                let subscribed = try #require(answer.range(of: #""type":"subscribed""#))
                let refused = try #require(answer.range(of: #""code":"forbidden""#))
                #expect(answer.range(of: "private:ops")!.lowerBound < subscribed.upperBound)
                #expect(subscribed.lowerBound < refused.lowerBound)
            }
        }
    }

    @Test func refusedHandshakesGetTheirStatusAJSONCodeAndAClose() async throws {
        try await withNode { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let cases: [(String, String, String)] = [
                    (Self.handshake(replacing: "Sec-WebSocket-Version", with: "Sec-WebSocket-Version: 8"), "426 Upgrade Required", "invalid_message"),
                    (Self.handshake(replacing: "Sec-WebSocket-Key", with: nil), "400 Bad Request", "invalid_message"),
                    ("GET /ws HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000), "431 Request Header Fields Too Large", "payload_too_large"),
                    (Self.handshake.replacingOccurrences(of: "GET /ws?", with: "GET /ws/nope?"), "404 Not Found", "not_found"),
                ]
                for (request, status, code) in cases {
                    let index = try await raw.open(writing: request)
                    let answer = try await raw.read(index, until: "}")
                    #expect(answer.hasPrefix("HTTP/1.1 \(status)\r\n"), "\(status)")
                    #expect(answer.contains(#""code":"\#(code)""#), "\(status)")
                    try await waitUntil("the node to close after \(status)") { raw.closed(index) != nil }
                }
                let index = try await raw.open(writing: Self.handshake(replacing: "Sec-WebSocket-Version", with: "Sec-WebSocket-Version: 7"))
                #expect(try await raw.read(index, until: "}").contains("Sec-WebSocket-Version: 13\r\n"))
                // Nobody else is affected.
                let client = try await node.connect()
                #expect(client.clientID != nil)
            }
        }
    }

    @Test func aPlainGetOfTheWebSocketPathIsAnHTTPRequest() async throws {
        try await withNode { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let index = try await raw.open(writing: "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(try await raw.read(index, until: "\r\n\r\n").hasPrefix("HTTP/1.1 404"))
                // Still an HTTP keep-alive connection: the next request is answered on it.
                try await raw[index].channel.writeAndFlush(ByteBuffer(string: RequestDeadlineTests.fullRequest))
                #expect(try await raw.read(index, until: #""status""#).contains("200 OK"))
            }
        }
    }

    @Test func aRequestDribbledPastTheFirstHandlerKeepsItsHeaderDeadline() async throws {
        let timeout = TimeAmount.milliseconds(1500)
        try await withNode({ $0.connectionLimits.headerTimeout = timeout }) { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                // "GET" could still become a handshake; the rest, sent later, makes it HTTP.
                let index = try await raw.open(writing: "GET")
                // The client's own pace, not a wait for the server.
                try await Task.sleep(for: .milliseconds(900))
                try await raw[index].channel.writeAndFlush(ByteBuffer(string: " /health HTTP/1.1\r\nHost: x\r\n"))
                try await waitUntil("the dribbled request to be closed", timeout: .seconds(5)) { raw.closed(index) != nil }
                let open = try #require(raw.closed(index)) - raw[index].opened
                // Closed at the first deadline, not a header timeout after the HTTP handlers came.
                #expect(open >= timeout - .milliseconds(50))
                #expect(open < timeout + .milliseconds(700), "open for \(open)")
            }
        }
    }

    @Test func aHalfSentHandshakeIsClosedAtTheHeaderTimeout() async throws {
        let timeout = TimeAmount.milliseconds(800)
        try await withNode({ $0.connectionLimits.headerTimeout = timeout }) { node in
            try await RequestDeadlineTests.withConnections(node.port) { raw in
                let index = try await raw.open(writing: "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n")
                try await waitUntil("the half handshake to be closed", timeout: .seconds(5)) { raw.closed(index) != nil }
                let closed = try #require(raw.closed(index))
                #expect(closed - raw[index].opened >= timeout - .milliseconds(50))
            }
        }
    }
}

import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import NIOPosix
import Testing

/// The REST fast path on the wire: what only a raw HTTP/1.1 connection shows — pipelined
/// requests mixing fast and routed ones, keep-alive and `Connection: close`, HTTP/1.0 — on
/// both ways in (the REST suites cover the rest, each test run through both ways by their
/// `.bothPublishPaths` trait).
@Suite struct FastPublishTests {
    /// Writes `requests` in one go on one connection and reads until `responses` complete
    /// responses arrived (or the server closed); returns the raw text.
    static func exchange(_ port: Int, _ requests: String, responses: Int) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        defer { channel.close(promise: nil) }
        let inbox = Inbox<ByteBuffer>()
        try await channel.pipeline.addHandler(InboxHandler(inbox: inbox)).get()
        try await channel.writeAndFlush(ByteBuffer(string: requests))
        var text = ""
        while Self.completeResponses(in: text) < responses {
            switch await inbox.next(timeout: .seconds(5)) {
            case .element(let chunk): text += String(buffer: chunk)
            case .finished: return text
            case .timedOut: throw TimeoutError(what: "\(responses) responses; got: \(text)")
            }
        }
        return text
    }

    /// Responses whose body (by Content-Length) is complete.
    static func completeResponses(in text: String) -> Int {
        var count = 0
        var rest = Substring(text)
        while let headEnd = rest.range(of: "\r\n\r\n") {
            let head = rest[..<headEnd.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let bodyStart = headEnd.upperBound
            guard rest.utf8.distance(from: bodyStart, to: rest.endIndex) >= length else { break }
            rest = rest[rest.utf8.index(bodyStart, offsetBy: length)...]
            count += 1
        }
        return count
    }

    static func post(_ path: String, _ body: String, extra: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
    }

    @Test(arguments: [true, false])
    func pipelinedRequestsAreAnsweredInOrderAcrossBothWaysIn(fastPublish: Bool) async throws {
        try await withNode({ $0.fastPublish = fastPublish }) { node in
            let subscriber = try await node.subscriber("piped")
            let requests = Self.post("/api/notify/piped", #"{"title":"one"}"#)
                + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                + Self.post("/api/notify/bad%20name", "{}")
                + Self.post("/api/broadcast", #"{"channels":["piped","other"],"title":"two"}"#)
                + "GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n"
                + Self.post("/api/notify/piped", #"{"title":"three"}"#)
            let text = try await Self.exchange(node.port, requests, responses: 6)
            let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["200", "200", "400", "200", "200", "200"], "\(text)")
            // Each answer is the one for its request, in order.
            let order = ["\"channel\":\"piped\"", "\"status\":\"ok\"", "invalid_channel", "\"channels\":[", "\"messagesPublished\"", "\"channel\":\"piped\""]
            var cursor = text.startIndex
            for marker in order {
                guard let found = text.range(of: marker, range: cursor..<text.endIndex) else {
                    Issue.record("\(marker) missing or out of order in \(text)")
                    return
                }
                cursor = found.upperBound
            }
            #expect(try await subscriber.nextNotification().title == "one")
            #expect(try await subscriber.nextNotification().title == "two")
            #expect(try await subscriber.nextNotification().title == "three")
        }
    }

    @Test(arguments: [true, false])
    func connectionCloseAndHTTP10AreHonoured(fastPublish: Bool) async throws {
        try await withNode({ $0.fastPublish = fastPublish }) { node in
            // The connection is closed after the answer; the request behind it is not served.
            let closing = try await Self.exchange(
                node.port, Self.post("/api/notify/c", "{}", extra: "Connection: close\r\n") + Self.post("/api/notify/c", "{}"),
                responses: 2)
            #expect(Self.completeResponses(in: closing) == 1, "\(closing)")
            // HTTP/1.0 without keep-alive is answered. The fast path then closes (RFC 9112
            // §9.3); Hummingbird's router keeps the connection open — the one difference.
            let old = try await Self.exchange(
                node.port, "POST /api/notify/c HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}" + Self.post("/api/notify/c", "{}"),
                responses: 2)
            #expect(old.contains(" 200 OK"), "\(old)")
            #expect(Self.completeResponses(in: old) == (fastPublish ? 1 : 2), "\(old)")
        }
    }

    @Test(arguments: [true, false])
    func headersMatchTheRoutersAndAnOversizedBodyIsRefusedBeforeItIsRead(fastPublish: Bool) async throws {
        try await withNode({
            $0.fastPublish = fastPublish
            $0.maxBodyBytes = 1024
            $0.corsOrigins = ["https://app.example"]
        }) { node in
            let response = try await node.request(
                .POST, "/api/notify/h", body: "{}", headers: [("Origin", "https://app.example")])
            #expect(response.status == 200)
            #expect(response.headers.first(name: "Content-Type") == "application/json; charset=utf-8")
            #expect(response.headers.first(name: "Server") == "Herald")
            #expect(response.headers.first(name: "Date")?.hasSuffix(" GMT") == true)
            #expect(response.headers.first(name: "Access-Control-Allow-Origin") == "https://app.example")
            #expect(response.headers.first(name: "Vary") == "Origin")
            let big = try await node.request(.POST, "/api/notify/h", body: #"{"body":"\#(String(repeating: "x", count: 2000))"}"#)
            #expect(big.status == 400 && big.text.contains("payload_too_large"), "\(big.text)")
            // The channel is checked before the body's size, as by the router.
            let both = try await node.request(.POST, "/api/notify/bad%20name", body: String(repeating: " ", count: 2000))
            #expect(both.text.contains("invalid_channel"), "\(both.text)")
            // Other methods on the path are the router's: 404, as before.
            #expect(try await node.request(.GET, "/api/notify/h").status == 404)
        }
    }
}

import AsyncHTTPClient
import Foundation
import HeraldProtocol
import NIOCore
import NIOHTTP1

/// A Server-Sent Events client for tests: the response's status and headers, then each event
/// as the HTML standard's parser would dispatch it (event name, data, id), awaited with a
/// timeout. Comments are kept apart, so keep-alives can be checked.
public final class TestEventStream: Sendable {
    public struct Event: Sendable, Equatable {
        /// `nil` for an unnamed event (what `EventSource.onmessage` gets).
        public var name: String?
        public var data: String
        /// The `id:` of the event, if it had one.
        public var id: String?

        /// The data decoded as a server message.
        public func message() throws -> ServerMessage {
            try ServerMessage.decode(Array(data.utf8))
        }
    }

    public enum Item: Sendable, Equatable {
        case event(Event)
        case comment(String)
        case retry(Int)
    }

    public let status: Int
    public let headers: HTTPHeaders
    let inbox: Inbox<Item>

    init(status: Int, headers: HTTPHeaders, inbox: Inbox<Item>) {
        self.status = status
        self.headers = headers
        self.inbox = inbox
    }

    /// The next item of any kind.
    public func nextItem(timeout: TimeAmount = .seconds(5)) async throws -> Item {
        switch await inbox.next(timeout: timeout) {
        case .element(let item): return item
        case .finished: throw TestWebSocket.UnexpectedFrame(description: "the stream ended")
        case .timedOut: throw TimeoutError(what: "an SSE item")
        }
    }

    /// The next event, skipping comments and retry hints.
    public func nextEvent(timeout: TimeAmount = .seconds(5)) async throws -> Event {
        let deadline = NIODeadline.now() + timeout
        while true {
            if case .event(let event) = try await nextItem(timeout: deadline - .now()) { return event }
        }
    }

    /// The next unnamed event (a notification), decoded.
    public func nextNotification(timeout: TimeAmount = .seconds(5)) async throws -> (HeraldNotification, id: String?) {
        let deadline = NIODeadline.now() + timeout
        while true {
            let event = try await nextEvent(timeout: deadline - .now())
            guard event.name == nil else { continue }
            guard case .notification(let notification) = try event.message() else {
                throw TestWebSocket.UnexpectedFrame(description: "unnamed event that is not a notification: \(event.data)")
            }
            return (notification, event.id)
        }
    }

    /// Waits until the server ends the stream.
    public func waitForEnd(timeout: TimeAmount = .seconds(5)) async throws {
        let deadline = NIODeadline.now() + timeout
        while true {
            switch await inbox.next(timeout: deadline - .now()) {
            case .finished: return
            case .timedOut: throw TimeoutError(what: "the end of the stream")
            case .element: continue
            }
        }
    }

    /// Parses `text/event-stream` bytes incrementally (the HTML standard's algorithm, for the
    /// fields Herald sends).
    struct Parser {
        private var pending = ""
        private var name: String?
        private var data: [String] = []
        private var id: String?
        private var sawField = false

        mutating func feed(_ text: String) -> [Item] {
            pending += text
            var items: [Item] = []
            while let newline = pending.firstIndex(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                let line = String(pending[..<newline])
                pending = String(pending[pending.index(after: newline)...])
                if line.isEmpty {
                    if sawField, !data.isEmpty || name != nil {
                        items.append(.event(Event(name: name, data: data.joined(separator: "\n"), id: id)))
                    }
                    (name, data, id, sawField) = (nil, [], nil, false)
                } else if line.hasPrefix(":") {
                    items.append(.comment(String(line.dropFirst()).trimmingCharacters(in: .whitespaces)))
                } else {
                    let field = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    var value = field.count > 1 ? String(field[1]) : ""
                    if value.hasPrefix(" ") { value.removeFirst() }
                    sawField = true
                    switch field[0] {
                    case "event": name = value
                    case "data": data.append(value)
                    case "id": id = value
                    case "retry": if let ms = Int(value) { items.append(.retry(ms)) }
                    default: break
                    }
                }
            }
            return items
        }
    }
}

/// Opens `GET url` as an event stream for the duration of `body`; the request is cancelled
/// afterwards, however `body` ends. A refused request (not 200) still runs `body`, with the
/// status and headers and no events, so tests can check the error. `acceptsEventStream: false`
/// leaves out the `Accept: text/event-stream` every `EventSource` sends, as `curl` does.
public func withEventStream<T: Sendable>(
    _ url: String, headers: [(String, String)] = [], acceptsEventStream: Bool = true,
    _ body: (TestEventStream, String) async throws -> T
) async throws -> T {
    var request = HTTPClientRequest(url: url)
    if acceptsEventStream { request.headers.add(name: "Accept", value: "text/event-stream") }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    let response = try await HTTPClient.shared.execute(request, deadline: .now() + .minutes(10))
    let inbox = Inbox<TestEventStream.Item>()
    let stream = TestEventStream(status: Int(response.status.code), headers: response.headers, inbox: inbox)
    return try await withThrowingTaskGroup(of: String.self) { group in
        var errorBody = ""
        if response.status == .ok {
            group.addTask {
                var parser = TestEventStream.Parser()
                do {
                    for try await chunk in response.body {
                        for item in parser.feed(String(buffer: chunk)) { inbox.push(item) }
                    }
                } catch {}
                inbox.finish()
                return ""
            }
        } else {
            errorBody = String(buffer: try await response.body.collect(upTo: 1 << 20))
            inbox.finish()
        }
        defer { group.cancelAll() }
        return try await body(stream, errorBody)
    }
}

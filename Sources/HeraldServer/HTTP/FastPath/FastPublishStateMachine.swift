import NIOCore
import NIOHTTP1

/// The order of requests on one HTTP/1.1 connection when publishes are served ahead of the
/// router, as a pure state machine.
///
/// A request the fast path serves (``FastPublishRoute``) is collected here — head and body,
/// the body bounded by `maxBodyBytes` — and handed out whole; any other request is passed on
/// to the router part by part. Responses leave in request order however requests are
/// pipelined: while either side is answering, what arrives next is held (and reading stops,
/// so holding is bounded by one read), then handled in order once that answer is written.
struct FastPublishStateMachine {
    enum Action: Equatable {
        /// Nothing to do now.
        case none
        /// Pass this part on to the router.
        case forward(HTTPServerRequestPart)
        /// Serve this request (its body is complete, or `nil` when it was over the limit).
        case serve(HTTPRequestHead, FastPublishRoute, body: ByteBuffer?)
    }

    private enum State {
        case idle
        /// A fast request's body is arriving.
        case collecting(HTTPRequestHead, FastPublishRoute, body: ByteBuffer, tooLarge: Bool)
        /// Its response is being produced.
        case serving
        /// A request is going to the router part by part; `responded` once the router's
        /// response ended already (it may answer before the request is complete).
        case forwarding(responded: Bool)
        /// The router has the whole request; its response has not ended yet.
        case awaitingRouter
    }

    let maxBodyBytes: Int
    private var state = State.idle
    /// Parts that arrived while an answer was in progress, in order.
    private var held: [HTTPServerRequestPart] = []

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// Whether the connection should stop reading: an answer is in progress and something is
    /// already waiting behind it.
    var holdsReads: Bool {
        switch state {
        case .serving, .awaitingRouter: !held.isEmpty
        case .idle, .collecting, .forwarding: false
        }
    }

    /// A request part arrived from the decoder.
    mutating func received(_ part: HTTPServerRequestPart) -> Action {
        switch state {
        case .serving, .awaitingRouter:
            held.append(part)
            return .none
        case .idle:
            guard case .head(let head) = part else { return .forward(part) }
            guard let route = FastPublishRoute(head) else {
                state = .forwarding(responded: false)
                return .forward(part)
            }
            state = .collecting(head, route, body: ByteBuffer(), tooLarge: false)
            return .none
        case .forwarding(let responded):
            if case .end = part { state = responded ? .idle : .awaitingRouter }
            return .forward(part)
        case .collecting(let head, let route, var body, var tooLarge):
            switch part {
            case .head:
                // The decoder never sends a head inside a request; treat it as a new one.
                state = .idle
                return received(part)
            case .body(var chunk):
                if !tooLarge {
                    if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                        tooLarge = true
                        body = ByteBuffer()
                    } else {
                        body.writeBuffer(&chunk)
                    }
                }
                state = .collecting(head, route, body: body, tooLarge: tooLarge)
                return .none
            case .end:
                state = .serving
                return .serve(head, route, body: tooLarge ? nil : body)
            }
        }
    }

    /// The fast response was written. Returns the actions for what was held, in order, up
    /// to the next answer that must complete first.
    mutating func served() -> [Action] {
        state = .idle
        return replay()
    }

    /// The router's response ended (its `.end` went out).
    mutating func routerResponded() -> [Action] {
        switch state {
        case .forwarding:
            state = .forwarding(responded: true)
            return []
        case .awaitingRouter:
            state = .idle
            return replay()
        case .idle, .collecting, .serving:
            return []
        }
    }

    private mutating func replay() -> [Action] {
        var actions: [Action] = []
        while !held.isEmpty {
            switch state {
            case .serving, .awaitingRouter: return actions
            case .idle, .collecting, .forwarding: break
            }
            let part = held.removeFirst()
            let action = received(part)
            if action != .none { actions.append(action) }
        }
        return actions
    }
}

/// The requests the fast path serves: `POST /api/notify/{channel}` and `POST /api/broadcast`,
/// matched as the router matches them — empty path segments skipped (`/api/notify/x/` and
/// `//api/notify/x` are the same route), the channel segment not percent-decoded (so
/// `bad%20name` is refused as a channel name), a query ignored.
enum FastPublishRoute: Equatable {
    case notify(channel: String)
    case broadcast

    init?(_ head: HTTPRequestHead) {
        guard head.method == .POST else { return nil }
        var path = Substring(head.uri)
        if let query = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = path[..<query] }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        switch segments.count {
        case 2 where segments[0] == "api" && segments[1] == "broadcast":
            self = .broadcast
        case 3 where segments[0] == "api" && segments[1] == "notify":
            self = .notify(channel: String(segments[2]))
        default:
            return nil
        }
    }

    /// The route as `herald_http_requests_total` and the request log name it.
    var pattern: String {
        switch self {
        case .notify: "/api/notify/{channel}"
        case .broadcast: "/api/broadcast"
        }
    }
}


/// What one `herald bench` run does.
public struct BenchConfiguration: Sendable, Codable {
    public enum Mode: String, Sendable, Codable, CaseIterable {
        /// Many subscribers on few channels.
        case fanout
        /// Many channels with few subscribers each.
        case channels
        /// Idle connections only: connect rate and memory per connection.
        case connect
        /// Raise the rate until loss or p99 crosses its bound; report the best sustained rate.
        case max
        /// A reconnect storm: every subscriber on the first node, which is killed (`killPid`);
        /// they come back to the others with `since` while publishing goes on there.
        case storm
    }

    /// Which server protocol to speak.
    public enum Target: String, Sendable, Codable, CaseIterable {
        /// Herald: `/ws` + `subscribe` messages, `POST /api/notify/{channel}`.
        case herald
        /// Nchan: WebSocket `GET /sub/{channel}`, `POST /pub/{channel}`.
        case nchan
    }

    public var mode: Mode = .fanout
    public var target: Target = .herald
    /// Base URLs of the nodes (`http://127.0.0.1:8080`); subscribers are spread over them
    /// round-robin, publishes too.
    public var urls: [String] = ["http://127.0.0.1:8080"]
    public var subscribers = 100
    public var channels = 1
    /// Publishes per second (0: as fast as `publishers` allow).
    public var rate = 100.0
    public var seconds = 10.0
    public var publishers = 4
    /// Extra payload bytes per notification.
    public var payloadBytes = 0
    /// Publications per request: above 1, Herald's publishers send `POST /api/batch` (Nchan has
    /// no batch publish; it keeps publishing one at a time).
    public var batch = 1
    /// Server processes whose CPU time and resident memory are reported.
    public var pids: [Int32] = []
    /// `max` mode: p99 bound in milliseconds.
    public var maxP99Millis = 50.0
    /// `max` mode: at most this many doubling steps.
    public var maxSteps = 12
    /// `storm` mode: the process of the first node, killed (SIGKILL) to start the storm.
    public var killPid: Int32?
    /// API key for Herald's REST API.
    public var apiKey: String?

    public init() {}
}

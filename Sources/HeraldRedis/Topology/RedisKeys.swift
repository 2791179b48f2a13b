import NIOCore

/// Every Redis key and pub/sub channel Herald uses, named in one place, for the broker, the
/// registry and presence alike.
///
/// A channel's keys all carry the channel as their Redis Cluster hash tag — `{news}` in
/// `herald:hist:{news}` — so its stream, meta, idempotency keys, presence and pub/sub channel
/// hash to one slot, and a script that touches only them (publish, history, presence) is
/// valid in a cluster. The registry's node-wide keys carry the prefix as theirs
/// (`herald:{herald}:nodes`), so they sit together on one slot. Channel names and the prefix
/// never contain braces (``ChannelName``), so no name can move a key to another slot.
///
/// | key | type | holds |
/// |---|---|---|
/// | `<p>:ch:{<c>}` | pub/sub channel | the channel's publications and signals (``PublicationEnvelope``) |
/// | `<p>:probe:{<token>}` | pub/sub channel | one broker link's liveness probes (empty messages) |
/// | `<p>:hist:{<c>}` | stream | entry id `<offset>-0`, field `d`: the notification JSON |
/// | `<p>:meta:{<c>}` | hash | `e` epoch, `s` latest offset |
/// | `<p>:idem:{<c>}:<key>` | string | "id offset epoch" an idempotency key produced |
/// | `<p>:pres:{<c>}`, `<p>:presn:{<c>}`, `<p>:presi:{<c>}` | sorted sets, hash | presence (``RedisPresenceScripts``) |
/// | `<p>:cnt:{<c>}` | hash | node id → "<local subscribers> <expiry, ms of Redis time>" (``RedisScripts/setCount``) |
/// | `<p>:{<p>}:nodes` | set | ids of nodes that registered |
/// | `<p>:{<p>}:node:<id>` | string | a node's stats; its `:channels`, `:clients`, `:clientinfo` beside it |
/// | `<p>:{<p>}:wh:…` | stream, sets, strings | webhook events and who holds each channel and user (``RedisWebhookLog``) |
public struct RedisKeys: Sendable, Equatable {
    public let prefix: String
    /// `<p>:ch:{`, kept: every pub/sub message is matched against it.
    private let pubsubHead: [UInt8]

    public init(prefix: String) {
        self.prefix = prefix
        self.pubsubHead = Array("\(prefix):ch:{".utf8)
    }

    // MARK: A channel's keys (one slot per channel)

    /// The pub/sub channel of `channel`.
    public func pubsub(_ channel: String) -> ByteBuffer { ByteBuffer(string: "\(prefix):ch:{\(channel)}") }
    public func stream(_ channel: String) -> ByteBuffer { ByteBuffer(string: "\(prefix):hist:{\(channel)}") }
    public func meta(_ channel: String) -> ByteBuffer { ByteBuffer(string: "\(prefix):meta:{\(channel)}") }
    public func idempotency(_ channel: String, key: String) -> ByteBuffer {
        ByteBuffer(string: "\(prefix):idem:{\(channel)}:\(key)")
    }

    /// Each node's subscribers of `channel`, beside its other keys: the publish counts the
    /// other nodes' in the same round trip, on the channel's own shard.
    public func counts(_ channel: String) -> ByteBuffer { ByteBuffer(string: "\(prefix):cnt:{\(channel)}") }

    /// Presence of `channel`: expiry set, name set, info hash.
    public func presence(_ channel: String) -> [ByteBuffer] {
        ["pres", "presn", "presi"].map { ByteBuffer(string: "\(prefix):\($0):{\(channel)}") }
    }

    /// A node's liveness probe channel (``PubSubLiveness``): never a channel of clients.
    public func probe(_ token: String) -> ByteBuffer { ByteBuffer(string: "\(prefix):probe:{\(token)}") }

    /// The channel a pub/sub channel of ours belongs to; `nil` for anyone else's.
    public func channel(ofPubSub key: ByteBuffer) -> String? {
        let bytes = key.readableBytesView
        let head = pubsubHead
        guard bytes.count > head.count + 1, bytes.starts(with: head), bytes.last == UInt8(ascii: "}") else { return nil }
        return String(decoding: bytes.dropFirst(head.count).dropLast(), as: UTF8.self)
    }

    // MARK: The registry's keys (one slot per deployment)

    private var registry: String { "\(prefix):{\(prefix)}" }
    public var nodes: String { "\(registry):nodes" }
    /// Where a node's keys start: its stats key, and with a suffix its other keys.
    public var nodePrefix: String { "\(registry):node:" }
    public func node(_ id: String) -> String { nodePrefix + id }
    public func nodeChannels(_ id: String) -> String { node(id) + ":channels" }
    public func nodeClients(_ id: String) -> String { node(id) + ":clients" }
    public func nodeClientInfo(_ id: String) -> String { node(id) + ":clientinfo" }

    /// Where the webhook keys start (``RedisWebhookLog``), beside the registry's on its slot:
    /// `…:wh:events` (stream), `…:wh:nodes`, `…:wh:sender`, and per key and node
    /// `…:wh:holders:<c:channel|u:user>`, `…:wh:held:<node>`, `…:wh:alive:<node>`.
    public var webhooks: String { "\(registry):wh:" }

    /// A user's read positions (``RedisReadPositions``): a hash of channel → `offset:epoch`,
    /// beside the registry on its slot.
    public func readPositions(_ user: String) -> String { "\(registry):pos:\(user)" }
}

import RedisBridge

/// Which Redis Cluster master serves each of the 16384 slots, as `CLUSTER SLOTS` last said.
///
/// Only masters: Herald reads and writes at the master (a replica's history may lag the
/// positions clients already hold). Slots no master covers have no owner: their channels are
/// unavailable until the cluster covers them again.
public struct ClusterSlotMap: Sendable, Equatable {
    /// A master's address, `host:port` — how health, metrics and logs name it.
    public struct Node: Sendable, Hashable, Comparable, CustomStringConvertible {
        public let host: String
        public let port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { "\(host):\(port)" }

        public static func < (a: Node, b: Node) -> Bool { (a.host, a.port) < (b.host, b.port) }
    }

    /// Per slot, the index of its master in ``masters``; -1 for none.
    private var owners: [Int16]
    /// Every master that serves at least one slot, in address order.
    public private(set) var masters: [Node]

    public init(ranges: [(slots: ClosedRange<Int>, master: Node)]) {
        masters = Array(Set(ranges.map(\.master))).sorted()
        let index = Dictionary(uniqueKeysWithValues: masters.enumerated().map { ($1, Int16($0)) })
        owners = Array(repeating: -1, count: ClusterSlot.count)
        for (slots, master) in ranges {
            for slot in slots where slot >= 0 && slot < ClusterSlot.count { owners[slot] = index[master]! }
        }
    }

    /// The master serving `slot`, if any.
    public func owner(of slot: Int) -> Node? {
        let index = owners[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// The master serving `channel`'s keys.
    public func owner(ofChannel channel: String) -> Node? {
        owner(of: ClusterSlot.slot(ofTag: channel))
    }

    /// Slots no master serves.
    public var uncovered: Int { owners.lazy.filter { $0 < 0 }.count }

    /// Reads a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …], replicas…], …]`.
    /// An empty host means the node that was asked (`askedHost`). `nil` when the reply is not
    /// one.
    public static func parse(clusterSlots reply: RESPValue, askedHost: String) -> ClusterSlotMap? {
        guard let entries = reply.array else { return nil }
        var ranges: [(slots: ClosedRange<Int>, master: Node)] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let start = fields[0].int, let end = fields[1].int,
                start <= end, let master = fields[2].array, master.count >= 2, let host = master[0].string,
                let port = master[1].int
            else { return nil }
            ranges.append((start...end, Node(host: host.isEmpty || host == "?" ? askedHost : host, port: port)))
        }
        return ClusterSlotMap(ranges: ranges)
    }
}

import NIOCore
import RedisBridge
import ServiceLifecycle
import Synchronization

/// One `Member` (a broker, a presence store) per Redis Cluster master, following the slot map:
/// a master that appears gets a member, one that no longer serves any slot (failed over,
/// emptied by a reshard) has its member retired — its links closed, so nothing more is read
/// from or written to it.
///
/// Which member serves a channel is the map's owner of the channel's slot. What a member held
/// for channels that changed hands is moved by the owner of this object, from `onChange`.
final class ClusterMembers<Member: Sendable>: Sendable {
    private struct Entry: Sendable {
        let member: Member
        let retire: AsyncStream<Void>.Continuation
        let retired: AsyncStream<Void>
    }

    private struct State {
        var map: ClusterSlotMap?
        var entries: [ClusterSlotMap.Node: Entry] = [:]
    }

    /// What changed with a new map.
    struct Change {
        let map: ClusterSlotMap
        /// Members of masters that serve no slot now, retired once `onChange` returns.
        let retiring: [(node: ClusterSlotMap.Node, member: Member)]
        /// The current member of every master.
        let members: [ClusterSlotMap.Node: Member]
    }

    let monitor: ClusterMonitor
    private let make: @Sendable (RedisTopology) -> Member
    private let runMember: @Sendable (Member) async -> Void
    private let state = Mutex(State())
    private let created: AsyncStream<Entry>
    private let creator: AsyncStream<Entry>.Continuation
    private let topology: RedisTopology

    /// - Parameters:
    ///   - make: the member for one master, given its one-Redis topology.
    ///   - run: runs a member until its task is cancelled.
    init(
        topology: RedisTopology, make: @escaping @Sendable (RedisTopology) -> Member,
        run: @escaping @Sendable (Member) async -> Void
    ) {
        guard let monitor = topology.cluster else { preconditionFailure("ClusterMembers needs a Redis Cluster topology") }
        self.topology = topology
        self.monitor = monitor
        self.make = make
        self.runMember = run
        (created, creator) = AsyncStream.makeStream(of: Entry.self, bufferingPolicy: .unbounded)
    }

    /// Starts following the map; `onChange` runs for every new map, after members for new
    /// masters exist and before retired ones stop.
    func observe(_ onChange: @escaping @Sendable (Change) -> Void) {
        monitor.observe { [weak self] map in self?.update(map, onChange) }
    }

    private func update(_ map: ClusterSlotMap, _ onChange: (Change) -> Void) {
        let (change, retired) = state.withLock { state -> (Change, [Entry]) in
            state.map = map
            for node in map.masters where state.entries[node] == nil {
                let (retired, retire) = AsyncStream.makeStream(of: Void.self)
                let entry = Entry(member: make(topology.clusterNode(monitor.url(of: node))), retire: retire, retired: retired)
                state.entries[node] = entry
                creator.yield(entry)
            }
            let gone = state.entries.keys.filter { !map.masters.contains($0) }
            let retired = gone.compactMap { node in state.entries.removeValue(forKey: node).map { (node, $0) } }
            let change = Change(
                map: map, retiring: retired.map { ($0.0, $0.1.member) },
                members: state.entries.mapValues(\.member))
            return (change, retired.map(\.1))
        }
        onChange(change)
        for entry in retired { entry.retire.finish() }
    }

    /// The member serving `channel` now, and its master; `nil` while no master serves it.
    func of(_ channel: String) -> (node: ClusterSlotMap.Node, member: Member)? {
        state.withLock { state in
            guard let node = state.map?.owner(ofChannel: channel), let entry = state.entries[node] else { return nil }
            return (node, entry.member)
        }
    }

    /// The member of master `node`, if it still has one.
    func member(at node: ClusterSlotMap.Node?) -> Member? {
        guard let node else { return nil }
        return state.withLock { $0.entries[node]?.member }
    }

    /// `channels` grouped by the member that serves them now, leaving out channels no master
    /// serves (as ``Shards/grouped(_:)`` does for independent shards).
    func grouped(_ channels: [String]) -> [(Member, [String])] {
        let groups = state.withLock { state -> [ClusterSlotMap.Node: (Member, [String])] in
            var groups: [ClusterSlotMap.Node: (Member, [String])] = [:]
            for channel in channels {
                guard let node = state.map?.owner(ofChannel: channel), let entry = state.entries[node] else { continue }
                groups[node, default: (entry.member, [])].1.append(channel)
            }
            return groups
        }
        return Array(groups.values)
    }

    var map: ClusterSlotMap? { state.withLock { $0.map } }

    /// Every current member, by master.
    var all: [(node: ClusterSlotMap.Node, member: Member)] {
        state.withLock { state in state.entries.map { ($0.key, $0.value.member) }.sorted { $0.node < $1.node } }
    }

    /// Runs every member, each until it is retired, until cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await entry in created {
                group.addTask {
                    await withDiscardingTaskGroup { member in
                        member.addTask { await self.runMember(entry.member) }
                        for await _ in entry.retired {}
                        member.cancelAll()
                    }
                }
            }
        }
    }
}

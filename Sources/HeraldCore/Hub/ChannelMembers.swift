/// One channel's subscribers on one loop: a contiguous array to walk on every delivery and
/// an index to add and remove in O(1).
///
/// Fan-out walks this array once per publication, so it is kept dense (removal swaps the
/// last member into the hole) rather than walking a dictionary's sparse buckets. Order is
/// not kept: delivery order between different connections means nothing.
struct ChannelMembers {
    private(set) var connections: ContiguousArray<any HubConnection> = []
    private var slots: [UInt64: Int] = [:]

    var isEmpty: Bool { connections.isEmpty }

    mutating func insert(_ connection: any HubConnection) {
        guard slots[connection.sequence] == nil else { return }
        slots[connection.sequence] = connections.count
        connections.append(connection)
    }

    mutating func remove(_ connection: any HubConnection) {
        guard let slot = slots.removeValue(forKey: connection.sequence) else { return }
        let last = connections.removeLast()
        guard slot < connections.count else { return }
        connections[slot] = last
        slots[last.sequence] = slot
    }
}

/// Open things per client address, bounded: the table behind ``ConnectionGate`` (connections
/// per address) and ``PendingConnections`` (connections still owing a request head).
///
/// It holds only addresses with a count above zero (an entry leaves when its count does), so
/// it is bounded by what is open. Not thread-safe: its owners keep it under their lock.
struct AddressCounts: Sendable {
    private var counts: [String: Int] = [:]

    /// Takes one for `address` unless it has `limit` already (0: no limit).
    mutating func take(_ address: String, limit: Int) -> Bool {
        let open = counts[address, default: 0]
        if limit > 0, open >= limit { return false }
        counts[address] = open + 1
        return true
    }

    /// Gives one back; an address with none left leaves the table (never below zero).
    mutating func give(_ address: String) {
        guard let open = counts[address] else { return }
        counts[address] = open > 1 ? open - 1 : nil
    }

    func count(_ address: String) -> Int {
        counts[address, default: 0]
    }
}

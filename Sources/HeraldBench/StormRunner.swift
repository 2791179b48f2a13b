import AsyncHTTPClient
import Foundation
import NIOCore

extension BenchRunner {
    /// The `storm` mode: `subscribers` clients on `channels` channels, all on the first node;
    /// the node is killed, and while `rate` publications a second go to the surviving nodes for
    /// `seconds`, every client comes back to them with `since` (jittered backoff) and recovers.
    /// Measures the time until every client is subscribed again and has every notification of its
    /// channel, the surviving servers' CPU per reconnect, and loss.
    func runStorm(base: BenchResult) async throws -> BenchResult {
        let nodes = self.nodes
        guard nodes.count >= 2, let victim = configuration.killPid else {
            throw StormError.needsTwoNodesAndAVictim
        }
        let survivors = Array(nodes.dropFirst())
        let clients = (0..<configuration.subscribers).map { StormClient(index: $0, channel: channelName($0), group: group) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            var next = 0
            func add() {
                let client = clients[next]
                next += 1
                tasks.addTask { try await client.connect(to: nodes[0]) { Task { await client.reconnect(to: survivors) } } }
            }
            for _ in 0..<min(64, clients.count) { add() }
            while try await tasks.next() != nil { if next < clients.count { add() } }
        }
        progress("storm: \(clients.count) clients on \(nodes[0].base); killing pid \(victim)")
        let measured = configuration.pids.filter { $0 != victim }
        let before = measured.map { ($0, ProcessStats.read($0)) }
        let start = ContinuousClock.now
        kill(victim, SIGKILL)

        // Publish to the survivors meanwhile: what the clients must recover or receive live.
        let total = max(1, Int(configuration.rate * configuration.seconds))
        var published: [String: Int] = [:]
        let client = HTTPClient(eventLoopGroupProvider: .shared(group))
        var errors = 0
        for index in 0..<total {
            try await Task.sleep(until: start + .seconds(Double(index) / max(configuration.rate, 1)), clock: .continuous)
            let channel = channelName(index)
            var request = HTTPClientRequest(url: "\(survivors[index % survivors.count].base)/api/notify/\(channel)")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: #"{"title":"storm","data":{"seq":\#(index),"t":\#(WallClock.nanos())}}"#))
            request.headers.add(name: "Content-Type", value: "application/json")
            if let key = configuration.apiKey { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
            if let response = try? await client.execute(request, timeout: .seconds(10)), (200..<300).contains(Int(response.status.code)) {
                _ = try? await response.body.collect(upTo: 1 << 20)
                published[channel, default: 0] += 1
            } else {
                errors += 1
            }
        }
        try? await client.shutdown()

        // Until every client is back and has every notification of its channel (or 60 s).
        func done() -> Bool {
            clients.allSatisfy { client in
                let state = client.snapshot
                return state.subscribedAgain && state.unique >= (published[client.channel] ?? 0)
            }
        }
        while !done(), ContinuousClock.now - start < .seconds(60) {
            try await Task.sleep(for: .milliseconds(5))
        }
        let stormSeconds = Self.seconds(ContinuousClock.now - start)
        let after = measured.map { ($0, ProcessStats.read($0)) }
        let states = clients.map(\.snapshot)
        let expected = clients.reduce(0) { $0 + (published[$1.channel] ?? 0) }
        let received = states.reduce(0) { $0 + $1.unique }

        var result = base
        result.mode = BenchConfiguration.Mode.storm.rawValue
        result.seconds = stormSeconds
        result.stormSeconds = done() ? stormSeconds : nil
        result.published = published.values.reduce(0, +)
        result.publishErrors = errors
        result.expectedDeliveries = expected
        result.deliveries = received
        result.lost = max(0, expected - received)
        result.reconnected = states.count { $0.subscribedAgain }
        result.recovered = states.count { $0.recovered == true }
        result.servers = BenchResult.Server.deltas(before, after)
        let cpu = result.servers.reduce(0) { $0 + $1.cpuSeconds }
        if let reconnected = result.reconnected, reconnected > 0, !result.servers.isEmpty {
            result.serverCPUMicrosPerReconnect = cpu * 1e6 / Double(reconnected)
        }
        return result
    }

    enum StormError: Error, CustomStringConvertible {
        case needsTwoNodesAndAVictim

        var description: String { "storm mode needs two --url (the first is killed) and --kill-pid, the first node's process" }
    }
}

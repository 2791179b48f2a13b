import HeraldCore
import NIOCore
import Testing

/// The pure parts of webhooks: when a node claims and releases, and the in-memory log's contract.
struct WebhookOccupancyTests {
    @Test func aReleaseWaitsForTheDelayAndAReturnCancelsIt() {
        var machine = VacateDelayStateMachine()
        let key = OccupancyKey.channel("chat:1")
        #expect(machine.occupied(key) == .claim(key))
        #expect(machine.occupied(key) == nil, "already held")
        guard case .scheduleRelease(_, let first) = machine.vacated(key) else {
            Issue.record("no release scheduled")
            return
        }
        // Back before the delay: the claim stands, the due release does nothing.
        #expect(machine.occupied(key) == nil)
        #expect(machine.releaseDue(key, token: first) == nil)
        #expect(machine.held == [key])
        guard case .scheduleRelease(_, let second) = machine.vacated(key) else {
            Issue.record("no release scheduled")
            return
        }
        #expect(machine.releaseDue(key, token: first) == nil, "an earlier timer is stale")
        #expect(machine.releaseDue(key, token: second) == .release(key))
        #expect(machine.held.isEmpty)
        #expect(machine.occupied(key) == .claim(key))
    }

    @Test func usersPrivateChannelsAreUsers() {
        #expect(OccupancyKey(hubChannel: UserChannel.name(of: "ada")) == .user("ada"))
        #expect(OccupancyKey(hubChannel: "chat:1") == .channel("chat:1"))
        #expect(OccupancyKey(encoded: OccupancyKey.user("a:b").encoded) == .user("a:b"))
    }

    @Test func theInMemoryLogQueuesTransitionsOnceAndKeepsThemUntilRemoved() async throws {
        let log = InMemoryWebhookLog(clock: { 1_000 })
        try await log.apply([OccupancyChange(.channel("a"), held: true), OccupancyChange(.channel("a"), held: true)])
        try await log.apply([OccupancyChange(.user("ada"), held: true), OccupancyChange(.channel("a"), held: false)])
        let events = try await log.next(max: 10, wait: .zero)
        #expect(events.map(\.name) == [.channelOccupied, .userOnline, .channelVacated])
        #expect(events.map(\.id) == ["1000-0", "1000-1", "1000-2"])
        // Not removed: the same events again (a failed send is retried as it was).
        #expect(try await log.next(max: 2, wait: .zero) == Array(events.prefix(2)))
        try await log.remove(events.prefix(2).map(\.id))
        #expect(try await log.next(max: 10, wait: .zero) == [events[2]])
        #expect(try await log.depth().count == 1)
        // A resync releases what is no longer held.
        try await log.resync([])
        #expect(try await log.next(max: 10, wait: .zero).last?.name == .userOffline)
    }

    @Test func aWaitingReadWakesWhenAnEventIsQueued() async throws {
        let log = InMemoryWebhookLog()
        async let events = log.next(max: 10, wait: .seconds(30))
        try await log.apply([OccupancyChange(.channel("late"), held: true)])
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try await events.map(\.channel) == ["late"])
        #expect(clock.now - started < .seconds(10))
    }
}

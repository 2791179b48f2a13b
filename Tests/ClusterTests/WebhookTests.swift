import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// Webhooks: cluster-wide occupancy events, sent once by one node, at least once to a real
/// HTTP receiver, in order per channel and user.
@Suite(.serialized) struct WebhookTests {
    static let secret = Array("webhook-user-secret-long-enough-for-hs256".utf8)

    static func token(_ user: String) async throws -> String {
        try await TokenMinter.mint(
            ConnectionClaims(subject: user, expires: Date().addingTimeInterval(300), channels: nil), with: .hs256(secret: secret))
    }

    static func configure(_ receiver: WebhookReceiver, vacateDelay: TimeAmount = .milliseconds(500)) -> @Sendable (inout HeraldConfiguration) -> Void {
        let (url, secret) = (receiver.url, receiver.secret)
        return { configuration in
            configuration.webhooks.url = url
            configuration.webhooks.secret = secret
            configuration.webhooks.vacateDelay = vacateDelay
            configuration.auth = AuthConfiguration(secret: Self.secret, allowAnonymous: true)
        }
    }

    /// Waits until `subject`'s events are `expected`, then checks that no other event came for it.
    static func expectEvents(_ receiver: WebhookReceiver, _ subject: String, _ expected: [String], timeout: Duration = .seconds(10)) async throws {
        do {
            try await waitUntil("\(subject) to have \(expected)", timeout: timeout) { receiver.events(for: subject).count >= expected.count }
        } catch {
            Issue.record("\(subject) has \(receiver.events(for: subject)); all: \(receiver.events.count) events, \(receiver.backend.calls("webhook").count) requests")
            throw error
        }
        #expect(receiver.events(for: subject) == expected, "\(subject)")
    }

    @Test func twoNodesSubscribersMakeOneOccupiedAndOneVacatedAndAQuickReconnectMakesNone() async throws {
        try await withWebhookReceiver { receiver in
            try await withRedis { redis in
                try await withCluster(3, redis: redis, Self.configure(receiver)) { nodes in
                    let first = try await nodes[0].subscriber("chat:1")
                    let second = try await nodes[1].subscriber("chat:1")
                    try await Self.expectEvents(receiver, "chat:1", ["channel_occupied"])
                    await first.close()
                    await second.close()
                    try await Self.expectEvents(receiver, "chat:1", ["channel_occupied", "channel_vacated"])

                    // A user on two nodes: online once, offline once.
                    let phone = try await nodes[0].connect(path: "/ws?token=\(try await Self.token("ada"))")
                    let laptop = try await nodes[2].connect(path: "/ws?token=\(try await Self.token("ada"))")
                    try await Self.expectEvents(receiver, "user:ada", ["user_online"])
                    await phone.close()
                    await laptop.close()
                    try await Self.expectEvents(receiver, "user:ada", ["user_online", "user_offline"])

                    // Leaves node 1 and is back on node 3 within the vacate delay: no event at all.
                    let flapping = try await nodes[0].subscriber("chat:2")
                    try await Self.expectEvents(receiver, "chat:2", ["channel_occupied"])
                    await flapping.close()
                    let back = try await nodes[2].subscriber("chat:2")
                    // A channel vacated after chat:2's release was due marks the point where a
                    // flap would have shown (one sender, events in order).
                    let marker = try await nodes[0].subscriber("marker")
                    await marker.close()
                    try await Self.expectEvents(receiver, "marker", ["channel_occupied", "channel_vacated"])
                    #expect(receiver.events(for: "chat:2") == ["channel_occupied"])
                    await back.close()
                    try await Self.expectEvents(receiver, "chat:2", ["channel_occupied", "channel_vacated"])

                    let ids = receiver.events.map(\.id)
                    #expect(Set(ids).count == ids.count, "an event was delivered twice")
                    #expect(receiver.signatureFailures == 0)
                }
            }
        }
    }

    @Test func eventsWaitForAReceiverThatIsDownAndArriveOnceAndInOrder() async throws {
        try await withWebhookReceiver { receiver in
            try await withRedis { redis in
                try await withCluster(3, redis: redis, Self.configure(receiver, vacateDelay: .milliseconds(200))) { nodes in
                    await receiver.backend.stop()
                    let downAt = ContinuousClock.now
                    // Ten rounds of occupied/vacated on three channels, from every node.
                    for round in 0..<10 {
                        let sockets = try await (0..<3).asyncMap { try await nodes[($0 + round) % 3].subscriber("room:\($0)") }
                        for socket in sockets { await socket.close() }
                        try await waitUntil("round \(round)'s channels to empty") {
                            await nodes[0].clusterSubscriberCount("room:0") == 0
                        }
                        // Away longer than the vacate delay: each round is a real vacated.
                        try await Task.sleep(for: .milliseconds(300))
                    }
                    try await Task.sleep(until: downAt + .seconds(10))
                    try await receiver.backend.restart()
                    for room in 0..<3 {
                        let expected = Array(repeating: ["channel_occupied", "channel_vacated"], count: 10).flatMap { $0 }
                        try await Self.expectEvents(receiver, "room:\(room)", expected, timeout: .seconds(20))
                    }
                    let ids = receiver.events.map(\.id)
                    #expect(Set(ids).count == ids.count, "an event was delivered twice")
                }
            }
        }
    }

    @Test func anotherNodeSendsWhatAKilledSenderHadPending() async throws {
        try await withWebhookReceiver { receiver in
            try await withRedis { redis in
                let prefix = "wh" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
                receiver.accept(false)
                // Started first, the doomed node takes the sender lease.
                try await withNodeProcess(
                    arguments: ["--redis-url", "redis://127.0.0.1:\(redis.port)", "--redis-prefix", prefix, "--node-id", "doomed",
                                "--registry-interval", "0.3", "--webhook-url", receiver.url, "--webhook-secret", receiver.secret,
                                "--webhook-vacate-delay", "0.2"]
                ) { doomed in
                    try await waitUntil("the doomed node to send the webhooks") {
                        try await redis.command("GET", "\(prefix):{\(prefix)}:wh:sender").string == "doomed"
                    }
                    try await withCluster(2, redis: redis, prefix: prefix, Self.configure(receiver, vacateDelay: .milliseconds(200))) { nodes in
                        let onDoomed = try await TestWebSocket.connect(port: doomed.port)
                        try await onDoomed.send(.subscribe(channel: "lost-node"))
                        _ = try await onDoomed.next { if case .subscribed = $0 { true } else { false } }
                        let survivor = try await nodes[0].subscriber("kept")
                        // Both events were read by the doomed sender and refused by the receiver.
                        try await waitUntil("the doomed node to have tried to send both events") {
                            receiver.backend.calls("webhook").contains { call in
                                let text = String(decoding: call.rawBody, as: UTF8.self)
                                return text.contains("lost-node") && text.contains("kept")
                            }
                        }
                        _ = try await doomed.stop(signal: SIGKILL)
                        receiver.accept(true)
                        try await Self.expectEvents(receiver, "kept", ["channel_occupied"], timeout: .seconds(30))
                        // The dead node's channel is vacated once its liveness expires (3 × 0.3 s).
                        try await Self.expectEvents(receiver, "lost-node", ["channel_occupied", "channel_vacated"], timeout: .seconds(30))
                        await survivor.close()
                        try await Self.expectEvents(receiver, "kept", ["channel_occupied", "channel_vacated"])
                        let ids = receiver.events.map(\.id)
                        #expect(Set(ids).count == ids.count, "an event was delivered twice")
                        let sender = try await redis.command("GET", "\(prefix):{\(prefix)}:wh:sender").string
                        #expect(sender == "node1" || sender == "node2")
                    }
                }
            }
        }
    }

    @Test func aBatchRefusedForLongerThanRetryForIsDroppedAndCountedAndLaterEventsStillGo() async throws {
        try await withWebhookReceiver { receiver in
            let configure = Self.configure(receiver)
            try await withNode({ configure(&$0); $0.webhooks.retryFor = .seconds(1) }) { node in
                receiver.accept(false)
                let socket = try await node.subscriber("refused")
                try await waitUntil("the refused batch to be dropped and counted") {
                    try await node.request(.GET, "/metrics").text.contains(
                        #"herald_webhook_events_total{name="channel_occupied",outcome="dropped"} 1"#)
                }
                receiver.accept(true)
                await socket.close()
                try await Self.expectEvents(receiver, "refused", ["channel_vacated"])
                // Counted once the receiver's answer is back at the sender: a moment after it got the event.
                try await waitUntil("the sent event to be counted") {
                    try await node.request(.GET, "/metrics").text.contains(
                        #"herald_webhook_events_total{name="channel_vacated",outcome="sent"} 1"#)
                }
            }
        }
    }

    @Test func aSingleNodeReportsWithoutRedis() async throws {
        try await withWebhookReceiver { receiver in
            try await withNode(Self.configure(receiver)) { node in
                let socket = try await node.subscriber("solo")
                try await Self.expectEvents(receiver, "solo", ["channel_occupied"])
                await socket.close()
                let again = try await node.subscriber("solo")
                let marker = try await node.subscriber("marker")
                await marker.close()
                try await Self.expectEvents(receiver, "marker", ["channel_occupied", "channel_vacated"])
                #expect(receiver.events(for: "solo") == ["channel_occupied"])
                await again.close()
                try await Self.expectEvents(receiver, "solo", ["channel_occupied", "channel_vacated"])
                #expect(receiver.signatureFailures == 0)
            }
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

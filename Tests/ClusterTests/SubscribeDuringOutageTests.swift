import Foundation
import HeraldProtocol
import HeraldTesting
import Testing

/// A client that subscribes while its node's pub/sub link is down (a failover, a Redis restart)
/// is subscribed once the link is back, not refused and left without the channel; only a
/// link that stays down past ``HeraldRedis/RedisBroker/subscribeWait`` refuses it.
@Suite(.serialized) struct SubscribeDuringOutageTests {
    @Test func aSubscribeWaitsForTheLinkAndIsRefusedOnlyWhenItStaysDown() async throws {
        try await withRedis { redis in
            try await withCluster(1, redis: redis) { nodes in
                let node = nodes[0]
                try await redis.kill()
                try await waitUntil("the node to notice the outage") { !node.broker.status.isUp }
                let late = try await node.connect()
                try await late.send(.subscribe(channel: "late"))
                try await redis.launch()
                let reply = try await late.next(timeout: .seconds(15)) {
                    switch $0 {
                    case .subscribed, .error: true
                    default: false
                    }
                }
                guard case .subscribed = reply else {
                    Issue.record("refused instead of waiting for the link: \(reply)")
                    return
                }
                try await waitUntil("the node to publish again") {
                    (try? await node.request(.POST, "/api/notify/late", body: #"{"title":"made it"}"#).status) == 200
                }
                #expect(try await late.notification(titled: "made it").channel == "late")

                // A link that stays down: refused, after the wait and not much later.
                try await redis.kill()
                try await waitUntil("the node to notice the second outage") { !node.broker.status.isUp }
                let unlucky = try await node.connect()
                let started = ContinuousClock.now
                try await unlucky.send(.subscribe(channel: "never"))
                let error = try await unlucky.nextError(timeout: .seconds(15))
                let waited = ContinuousClock.now - started
                #expect(error.code == .unavailable)
                #expect(waited >= .seconds(4) && waited < .seconds(10), "refused after \(waited)")
            }
        }
    }
}

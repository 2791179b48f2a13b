import HeraldCore
import HeraldProtocol
import HeraldTesting
import Testing

/// Server-Sent Events across the cluster and through the load balancer.
@Suite(.serialized) struct SSEClusterTests {
    @Test func anSSEClientOnOneNodeGetsWhatIsPublishedOnAnotherEvenThroughNginx() async throws {
        try await withRedis { redis in
            try await withCluster(2, redis: redis) { nodes in
                try await withNginx(upstreamPorts: nodes.map(\.port)) { nginx in
                    for url in [nodes[1].baseURL, "http://127.0.0.1:\(nginx.port)"] {
                        try await withEventStream(url + "/sse?channel=cross") { stream, _ in
                            #expect(stream.status == 200)
                            _ = try await stream.nextEvent()  // welcome
                            _ = try await stream.nextEvent()  // subscribed (the Redis subscription is in effect)
                            let published = try await nodes[0].request(.POST, "/api/notify/cross", body: #"{"title":"from node1"}"#)
                            #expect(published.status == 200)
                            let (notification, id) = try await stream.nextNotification(timeout: .seconds(10))
                            #expect(notification.title == "from node1")
                            #expect(id.flatMap(ResumeToken.decode)?["cross"] == notification.position)
                        }
                    }
                }
            }
        }
    }
}

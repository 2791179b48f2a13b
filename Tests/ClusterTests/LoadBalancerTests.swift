import HeraldCore
import HeraldServer
import HeraldProtocol
import HeraldTesting
import Testing

/// The deployment topology without Docker: redis-server, three nodes, nginx on one port.
@Suite(.serialized) struct LoadBalancerTests {
    @Test func clientsOnOnePortLandOnDifferentNodesAndAllReceive() async throws {
        try await withRedis { redis in
            try await withCluster(3, redis: redis) { nodes in
                try await withNginx(upstreamPorts: nodes.map(\.port)) { balancer in
                    var clients: [TestWebSocket] = []
                    var landedOn: [String: Int] = [:]
                    for _ in 0..<6 {
                        let client = try await TestWebSocket.connect(port: balancer.port, readWelcome: false)
                        guard case .welcome(_, let node, _) = try await client.nextMessage() else {
                            Issue.record("no welcome through nginx")
                            return
                        }
                        landedOn[node, default: 0] += 1
                        try await client.send(.subscribe(channel: "lb"))
                        _ = try await client.next { if case .subscribed = $0 { true } else { false } }
                        clients.append(client)
                    }
                    #expect(landedOn.count == 3, "least_conn spreads six clients over three nodes: \(landedOn)")
                    try await waitUntil("all six subscribers registered") {
                        (await nodes[0].clusterSubscriberCount("lb")) == 6
                    }
                    let response = try await HTTPResult.send(
                        .POST, "http://127.0.0.1:\(balancer.port)/api/notify/lb", body: #"{"title":"through nginx"}"#)
                    #expect(response.status == 200)
                    #expect(try response.object()["delivered"] == .integer(6))
                    for client in clients {
                        #expect(try await client.nextNotification().title == "through nginx")
                    }
                }
            }
        }
    }
}

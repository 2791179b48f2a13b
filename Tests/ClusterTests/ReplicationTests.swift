import Foundation
import HeraldProtocol
import HeraldTesting
import NIOCore
import Testing

/// `HERALD_REDIS_MIN_REPLICAS`: a publish is acknowledged only once enough replicas have it.
@Suite(.serialized) struct ReplicationTests {
    @Test func aPublishWaitsForItsReplicaAndSaysSoWhenItCannot() async throws {
        try await withRedis { master in
            try await withRedis(arguments: ["--replicaof", "127.0.0.1", String(master.port)]) { replica in
                try await waitUntil("the replica to sync", timeout: .seconds(10)) {
                    (try await replica.command("INFO", "replication").string ?? "").contains("master_link_status:up")
                }
                try await withCluster(1, redis: master, {
                    $0.replication.minReplicas = 1
                    $0.replication.timeout = .milliseconds(1000)
                }) { nodes in
                    let node = nodes[0]
                    let subscriber = try await node.subscriber("durable")
                    let accepted = try await node.request(.POST, "/api/notify/durable", body: #"{"title":"replicated"}"#)
                    #expect(accepted.status == 200, "\(accepted.text)")
                    #expect(try await subscriber.nextNotification().title == "replicated")

                    // A replica that does not answer: refused with the code, within the wait.
                    replica.freeze(true)
                    let started = ContinuousClock.now
                    let refused = try await node.request(
                        .POST, "/api/notify/durable", body: #"{"title":"unsure"}"#, headers: [("Idempotency-Key", "k-1")])
                    replica.freeze(false)
                    #expect(ContinuousClock.now - started < .seconds(4), "answered within the wait, not after")
                    #expect(refused.status == 503)
                    #expect(try refused.object()["code"] == .string("replication_timeout"))
                    // It was published all the same; the retry with its key is not a second one.
                    #expect(try await subscriber.nextNotification().title == "unsure")
                    try await waitUntil("the retry to be acknowledged") {
                        let retry = try await node.request(
                            .POST, "/api/notify/durable", body: #"{"title":"unsure"}"#, headers: [("Idempotency-Key", "k-1")])
                        return try retry.status == 200 && retry.object()["duplicate"] == .bool(true)
                    }
                    _ = try await node.request(.POST, "/api/notify/durable", body: #"{"title":"next"}"#)
                    #expect(try await subscriber.nextNotification().title == "next")
                }
                // Asking for more replicas than there are is refused every time.
                try await withCluster(1, redis: master, {
                    $0.replication.minReplicas = 2
                    $0.replication.timeout = .milliseconds(100)
                }) { nodes in
                    let refused = try await nodes[0].request(.POST, "/api/notify/durable", body: #"{"title":"never enough"}"#)
                    #expect(refused.status == 503)
                    #expect(try refused.object()["code"] == .string("replication_timeout"))
                }
            }
        }
    }
}

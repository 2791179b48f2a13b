import Foundation
import HeraldProtocol
import HeraldRedis
import HeraldTesting
import Testing

/// A batch over several Redis shards: one round trip per shard, every channel's items in order
/// on the other node.
@Suite(.serialized) struct BatchClusterTests {
    static func publishTimings(_ node: RunningNode) async throws -> Int {
        let text = try await node.request(.GET, "/metrics").text
        return text.split(separator: "\n").filter {
            $0.hasPrefix("herald_redis_command_duration_seconds_count{") && $0.contains(#"operation="publish""#)
        }.reduce(0) { $0 + Int(Double($1.split(separator: " ").last ?? "0") ?? 0) }
    }

    @Test func aBatchGoesToEachShardInOneRoundTripAndArrivesInOrderOnAnotherNode() async throws {
        try await withRedisShards(3) { shards in
            try await withCluster(2, shards: shards) { nodes in
                let byShard = ShardTests.channelsByShard("b", 30)
                #expect(byShard.allSatisfy { !$0.isEmpty })
                let channels = Array(byShard.joined())
                let subscriber = try await nodes[1].subscriber(channels)
                // Every channel: their counts live on three shards, each written on its own.
                for channel in channels {
                    try await waitUntil("node 1 to count node 2's subscriber of \(channel)") {
                        await nodes[0].clusterSubscriberCount(channel) == 1
                    }
                }
                var items: [String] = []
                for round in 0..<10 {
                    for channel in channels { items.append(#"{"channel":"\#(channel)","title":"\#(channel)-\#(round)"}"#) }
                }
                let before = try await Self.publishTimings(nodes[0])
                let response = try await nodes[0].request(.POST, "/api/batch", body: #"{"items":[\#(items.joined(separator: ","))]}"#)
                #expect(response.status == 200)
                let object = try response.object()
                #expect(object["published"] == .integer(Int64(items.count)) && object["failed"] == .integer(0))
                #expect(try await Self.publishTimings(nodes[0]) - before == 3, "one pipelined write per shard")
                guard case .array(let results)? = object["results"] else { Issue.record("no results"); return }
                // Offsets consecutive per channel, in the batch's order; delivered counts node 2's subscriber.
                var offsets: [String: [Int64]] = [:]
                for case .object(let result) in results {
                    guard case .string(let channel)? = result["channel"], case .integer(let offset)? = result["offset"] else { continue }
                    offsets[channel, default: []].append(offset)
                    #expect(result["delivered"] == .integer(1))
                }
                #expect(offsets.values.allSatisfy { $0 == Array(1...10) })
                var seen: [String: [String]] = [:]
                for _ in 0..<items.count {
                    let notification = try await subscriber.nextNotification(timeout: .seconds(10))
                    seen[notification.channel, default: []].append(notification.title ?? "")
                }
                for channel in channels { #expect(seen[channel] == (0..<10).map { "\(channel)-\($0)" }) }
            }
        }
    }
}

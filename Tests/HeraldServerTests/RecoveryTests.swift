import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

/// History, positions and recovery on one node (in-memory broker), against real sockets.
@Suite(.bothPublishPaths) struct RecoveryTests {
    /// Sends `subscribe` and reads the `subscribed` reply.
    func subscribe(
        _ client: TestWebSocket, _ channel: String, since: StreamPosition? = nil
    ) async throws -> (count: Int, position: StreamPosition?, recovery: ServerMessage.Recovery?) {
        try await client.send(.subscribe(channel: channel, since: since))
        let reply = try await client.next { if case .subscribed(channel, _, _, _) = $0 { true } else { false } }
        guard case .subscribed(_, let count, let position, let recovery) = reply else { throw TestWebSocket.UnexpectedMessage(message: reply) }
        return (count, position, recovery)
    }

    func publish(_ node: RunningNode, _ channel: String, _ title: String, key: String? = nil) async throws -> [String: JSONValue] {
        let response = try await node.request(
            .POST, "/api/notify/\(channel)", body: #"{"title":"\#(title)"}"#, headers: key.map { [("Idempotency-Key", $0)] } ?? [])
        #expect(response.status == 200, "\(response.text)")
        return try response.object()
    }

    @Test func aClientThatWasAwayGetsExactlyWhatItMissedInOrder() async throws {
        try await withNode { node in
            let first = try await node.connect()
            let start = try await subscribe(first, "news")
            let epoch = try #require(start.position?.epoch)
            #expect(start.position?.offset == 0)
            #expect(start.recovery == nil, "a plain subscribe says nothing of recovery")
            _ = try await publish(node, "news", "seen")
            let seen = try await first.nextNotification()
            #expect(seen.position == StreamPosition(offset: 1, epoch: epoch))
            await first.close()

            // Away: five notifications go by, and another subscriber keeps the channel alive.
            let bystander = try await node.subscriber("news")
            for index in 1...5 { _ = try await publish(node, "news", "missed-\(index)") }
            for _ in 1...5 { _ = try await bystander.nextNotification() }

            let back = try await node.connect()
            let resumed = try await subscribe(back, "news", since: seen.position)
            #expect(resumed.recovery == .init(recovered: true, replayed: 5))
            #expect(resumed.position == StreamPosition(offset: 6, epoch: epoch))
            for index in 1...5 {
                let notification = try await back.nextNotification()
                #expect(notification.title == "missed-\(index)")
                #expect(notification.position == StreamPosition(offset: Int64(1 + index), epoch: epoch))
            }
            // Then the live stream, with nothing repeated at the seam.
            _ = try await publish(node, "news", "live")
            #expect(try await back.nextNotification().title == "live")
            try await back.send(.ping)
            _ = try await back.next { if case .pong = $0 { true } else { false } }
        }
    }

    @Test func aPublicationDuringTheReplayIsNeitherLostNorRepeated() async throws {
        try await withNode { node in
            let seen = try await publish(node, "race", "0")
            let epoch = try #require(seen["epoch"].flatMap { if case .string(let e) = $0 { e } else { nil } })
            for index in 1...20 { _ = try await publish(node, "race", "\(index)") }
            let client = try await node.connect()
            try await client.send(.subscribe(channel: "race", since: StreamPosition(offset: 1, epoch: epoch)))
            // Publish while the subscribe is being answered.
            for index in 21...40 { _ = try await publish(node, "race", "\(index)") }
            var titles: [String] = []
            while titles.count < 40 {
                if case .notification(let notification) = try await client.nextMessage() { titles.append(notification.title ?? "") }
            }
            #expect(titles == (1...40).map(String.init))
        }
    }

    @Test func aWrongEpochOrAnOffsetNoLongerRetainedIsNotRecovered() async throws {
        try await withNode({ $0.history.size = 3 }) { node in
            let client = try await node.connect()
            let start = try await subscribe(client, "short")
            let epoch = try #require(start.position?.epoch)
            for index in 1...10 { _ = try await publish(node, "short", "\(index)") }
            for _ in 1...10 { _ = try await client.nextNotification() }

            let other = try await node.connect()
            let wrongEpoch = try await subscribe(other, "short", since: StreamPosition(offset: 9, epoch: "not-\(epoch)"))
            #expect(wrongEpoch.recovery == .init(recovered: false, replayed: 0))
            #expect(wrongEpoch.position == StreamPosition(offset: 10, epoch: epoch))

            let third = try await node.connect()
            let tooOld = try await subscribe(third, "short", since: StreamPosition(offset: 2, epoch: epoch))
            #expect(tooOld.recovery == .init(recovered: false, replayed: 0))
            // Within the three retained: recovered.
            let fourth = try await node.connect()
            let recent = try await subscribe(fourth, "short", since: StreamPosition(offset: 7, epoch: epoch))
            #expect(recent.recovery == .init(recovered: true, replayed: 3))
            #expect(try await fourth.nextNotification().title == "8")

            // Nothing was replayed where recovery failed: the next message is live.
            _ = try await publish(node, "short", "after")
            #expect(try await other.nextNotification().title == "after")
            #expect(try await third.nextNotification().title == "after")
        }
    }

    @Test func aRestartedNodeStartsNewEpochs() async throws {
        let first = try await withNode { node in
            _ = try await publish(node, "restart", "before")
            let client = try await node.connect()
            return try await subscribe(client, "restart").position
        }
        try await withNode { node in
            let client = try await node.connect()
            let resumed = try await subscribe(client, "restart", since: first)
            #expect(resumed.recovery == .init(recovered: false, replayed: 0))
            #expect(resumed.position?.epoch != first?.epoch)
        }
    }

    @Test func badSinceValuesGetAnErrorWithACode() async throws {
        try await withNode { node in
            let client = try await node.connect()
            for bad in [
                #"{"type":"subscribe","channel":"c","since":{"offset":-1,"epoch":"e"}}"#,
                #"{"type":"subscribe","channel":"c","since":{"offset":1.5,"epoch":"e"}}"#,
                #"{"type":"subscribe","channel":"c","since":{"offset":"1","epoch":"e"}}"#,
                #"{"type":"subscribe","channel":"c","since":{"offset":1,"epoch":7}}"#,
                #"{"type":"subscribe","channel":"c","since":{"offset":1}}"#,
                #"{"type":"subscribe","channel":"c","since":{"offset":1,"epoch":""}}"#,
                #"{"type":"subscribe","channel":"c","since":[1]}"#,
            ] {
                try await client.send(text: bad)
                let error = try await client.nextError()
                #expect(error.code == .invalidField, "\(bad): \(error)")
            }
            // The connection is fine and was subscribed to nothing.
            try await client.send(.listSubscriptions)
            #expect(try await client.next { if case .subscriptions = $0 { true } else { false } } == .subscriptions(channels: []))
        }
    }

    @Test func restPublishesReturnTheirPositionAndHistoryReadsBack() async throws {
        try await withNode { node in
            let first = try await publish(node, "log", "one")
            #expect(first["offset"] == .integer(1))
            guard case .string(let epoch) = first["epoch"] else {
                Issue.record("no epoch in \(first)")
                return
            }
            _ = try await publish(node, "log", "two")
            _ = try await publish(node, "log", "three")
            let history = try await node.request(.GET, "/api/history/log?since=1&limit=10").object()
            #expect(history["channel"] == .string("log"))
            #expect(history["epoch"] == .string(epoch))
            #expect(history["offset"] == .integer(3))
            #expect(history["complete"] == .bool(true))
            guard case .array(let publications) = history["publications"] else {
                Issue.record("no publications in \(history)")
                return
            }
            let titles = publications.compactMap { row -> String? in
                if case .object(let fields) = row, case .string(let title) = fields["title"] { title } else { nil }
            }
            #expect(titles == ["two", "three"])
            // Each one exactly as a subscriber gets it.
            if case .object(let fields) = publications.first {
                #expect(fields["type"] == .string("notification"))
                #expect(fields["offset"] == .integer(2))
                #expect(fields["epoch"] == .string(epoch))
            }
            let limited = try await node.request(.GET, "/api/history/log?limit=1").object()
            #expect(limited["publications"].map { if case .array(let rows) = $0 { rows.count } else { 0 } } == 1)
            for bad in ["/api/history/log?since=-1", "/api/history/log?since=x", "/api/history/log?limit=0", "/api/history/bad%20name"] {
                let refused = try await node.request(.GET, bad)
                #expect(refused.status == 400, "\(bad)")
            }
        }
    }

    @Test func withHistoryOffThereAreNoPositions() async throws {
        try await withNode({ $0.history.size = 0 }) { node in
            let client = try await node.connect()
            let start = try await subscribe(client, "plain")
            #expect(start.position == nil)
            let published = try await publish(node, "plain", "x")
            #expect(published["offset"] == nil)
            #expect(published["epoch"] == nil)
            #expect(try await client.nextNotification().position == nil)
            let resumed = try await subscribe(try await node.connect(), "plain", since: StreamPosition(offset: 0, epoch: "e"))
            #expect(resumed.recovery == .init(recovered: false, replayed: 0))
            #expect(try await node.request(.GET, "/api/history/plain").status == 404)
        }
    }

    @Test func aRetriedPublishWithTheSameKeyDeliversOnce() async throws {
        try await withNode { node in
            let client = try await node.subscriber("once")
            let first = try await publish(node, "once", "first", key: "order-42")
            let retry = try await publish(node, "once", "retry", key: "order-42")
            #expect(retry["duplicate"] == .bool(true))
            #expect(retry["id"] == first["id"])
            #expect(retry["offset"] == first["offset"])
            #expect(retry["epoch"] == first["epoch"])
            #expect(retry["delivered"] == .integer(0))
            #expect(first["duplicate"] == nil)
            _ = try await publish(node, "once", "marker")
            #expect(try await client.nextNotification().title == "first")
            #expect(try await client.nextNotification().title == "marker")
            // Another key, or another channel, is another publish.
            let other = try await publish(node, "once", "other", key: "order-43")
            #expect(other["duplicate"] == nil)
            for bad in ["", String(repeating: "k", count: 129), "with space", "ünicode"] {
                let refused = try await node.request(
                    .POST, "/api/notify/once", body: "{}", headers: [("Idempotency-Key", bad)])
                #expect(refused.status == 400, "key \(bad.debugDescription)")
            }
        }
    }
}

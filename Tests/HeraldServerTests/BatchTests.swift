import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

/// `POST /api/batch` against a real node: per-item results in order, per-item errors and
/// idempotency, the limits, and `all_or_nothing`.
@Suite struct BatchTests {
    static func results(_ response: HTTPResult) throws -> [[String: JSONValue]] {
        guard case .array(let items)? = try response.object()["results"] else { return [] }
        return items.compactMap { if case .object(let item) = $0 { item } else { nil } }
    }

    @Test func everyItemIsAnsweredInOrderAndOnlyTheBadOnesFail() async throws {
        try await withNode(AuthTests.secured(anonymous: true)) { node in
            let news = try await node.subscriber("news")
            let ada = try await node.connect(path: "/ws?token=\(try await AuthTests.token("ada"))")
            let body = #"""
                {"items":[
                  {"channel":"news","title":"one"},
                  {"channel":"bad name","title":"x"},
                  {"user":"ada","title":"for ada"},
                  {"channel":"news","title":"two","data":{"n":2}},
                  {"title":"nowhere"},
                  "not an object",
                  {"channel":"news","title":"three","conflate_key":""}
                ]}
                """#
            let response = try await node.request(.POST, "/api/batch", body: body)
            #expect(response.status == 200)
            let object = try response.object()
            #expect(object["published"] == .integer(3) && object["failed"] == .integer(4))
            let results = try Self.results(response)
            #expect(results.count == 7)
            #expect(results[0]["channel"] == .string("news") && results[0]["offset"] == .integer(1) && results[0]["delivered"] == .integer(1))
            #expect(results[1]["code"] == .string("invalid_channel"))
            #expect(results[2]["user"] == .string("ada") && results[2]["delivered"] == .integer(1))
            #expect(results[3]["offset"] == .integer(2))
            #expect(results[4]["code"] == .string("invalid_field") && results[5]["code"] == .string("invalid_field"))
            #expect(results[6]["code"] == .string("invalid_field"), "an empty conflate_key")
            #expect(try await news.nextNotification().title == "one")
            let second = try await news.nextNotification()
            #expect(second.title == "two" && second.data == .object(["n": .integer(2)]))
            #expect(try await ada.nextNotification().title == "for ada")
            try await news.expectSilence(for: .milliseconds(200))
        }
    }

    @Test func eachItemHasItsOwnIdempotencyKey() async throws {
        try await withNode { node in
            let items = #"{"items":[{"channel":"orders","title":"paid","idempotency_key":"order-1"},{"channel":"orders","title":"paid again","idempotency_key":"order-1"},{"channel":"orders","title":"shipped","idempotency_key":"order-2"}]}"#
            let first = try Self.results(try await node.request(.POST, "/api/batch", body: items))
            #expect(first[0]["duplicate"] == nil && first[1]["duplicate"] == .bool(true) && first[1]["id"] == first[0]["id"])
            #expect(first[2]["offset"] == .integer(2))
            // The whole batch again (a publisher's retry): nothing new.
            let retry = try Self.results(try await node.request(.POST, "/api/batch", body: items))
            #expect(retry.allSatisfy { $0["duplicate"] == .bool(true) })
            #expect(retry.map { $0["id"] } == first.map { $0["id"] })
            let bad = try Self.results(try await node.request(.POST, "/api/batch", body: #"{"items":[{"channel":"orders","idempotency_key":"has space"}]}"#))
            #expect(bad[0]["code"] == .string("invalid_field"))
        }
    }

    @Test func theLimitsAreRefusedWithAStableCodeAndAllOrNothingPublishesNothing() async throws {
        try await withNode({
            $0.maxBatch = 3
            $0.maxBatchBytes = 2048
        }) { node in
            let watcher = try await node.subscriber("guarded")
            let four = #"{"items":[{"channel":"guarded"},{"channel":"guarded"},{"channel":"guarded"},{"channel":"guarded"}]}"#
            let tooMany = try await node.request(.POST, "/api/batch", body: four)
            #expect(tooMany.status == 400)
            #expect(try tooMany.object()["code"] == .string("invalid_field"))
            let big = #"{"items":[{"channel":"guarded","body":"\#(String(repeating: "x", count: 4096))"}]}"#
            let tooLarge = try await node.request(.POST, "/api/batch", body: big)
            #expect(tooLarge.status == 413)
            #expect(try tooLarge.object()["code"] == .string("payload_too_large"))
            for (body, code) in [
                ("", "invalid_json"), ("[]", "invalid_json"), (#"{"items":{}}"#, "invalid_field"), (#"{}"#, "missing_field"),
                (#"{"items":[]}"#, "invalid_field"), (#"{"items":[{"channel":"guarded"}],"all_or_nothing":"yes"}"#, "invalid_field"),
            ] {
                let response = try await node.request(.POST, "/api/batch", body: body)
                #expect(response.status == 400, "\(body)")
                #expect(try response.object()["code"] == .string(code), "\(body)")
            }
            let strict = try await node.request(
                .POST, "/api/batch", body: #"{"items":[{"channel":"guarded","title":"first"},{"channel":"no way"}],"all_or_nothing":true}"#)
            #expect(strict.status == 400)
            #expect(try strict.object()["error"] == .string("item 1: channel name may only contain letters, digits and _ - : ."))
            try await watcher.expectSilence(for: .milliseconds(300))
        }
    }
}

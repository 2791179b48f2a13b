import HeraldCore
import HeraldProtocol
import HeraldTesting
import NIOCore
import Testing

/// Limits that protect the node and its other clients: rate limit, heartbeat, slow consumers.
@Suite struct ResilienceTests {
    @Test func aFloodIsRateLimitedWhileOthersKeepReceiving() async throws {
        try await withNode({
            // Almost no refill: the count does not depend on how fast this machine sends.
            $0.sessionLimits.rateLimit = 0.01
            $0.sessionLimits.rateBurst = 5
            $0.sessionLimits.rateLimitStrikes = 20
        }) { node in
            let flooder = try await node.subscriber("busy")
            let bystander = try await node.subscriber("busy")
            for _ in 0..<40 { try await flooder.send(.ping) }

            var rateLimited = 0
            var pongs = 0
            while true {
                let frame = try await flooder.nextFrame()
                if frame.opcode == .connectionClose { break }
                switch try ServerMessage.decode(frame.unmaskedData.readableBytesView) {
                case .error(let error) where error.code == .rateLimited: rateLimited += 1
                case .pong: pongs += 1
                default: break
                }
            }
            // The burst of five, less the token the subscribe took.
            #expect(pongs == 4, "the burst allows four pings after the subscribe, got \(pongs)")
            #expect(rateLimited >= 19, "each refused message got rate_limited before the close")

            // The bystander on the same channel is unaffected.
            for index in 0..<3 {
                _ = try await node.request(.POST, "/api/notify/busy", body: #"{"title":"n\#(index)"}"#)
                #expect(try await bystander.nextNotification().title == "n\(index)")
            }
        }
    }

    @Test func aPersistentFloodIsClosedWith1008() async throws {
        try await withNode({
            $0.sessionLimits.rateLimit = 1
            $0.sessionLimits.rateBurst = 2
            $0.sessionLimits.rateLimitStrikes = 5
        }) { node in
            let flooder = try await node.connect()
            for _ in 0..<20 { try await flooder.send(.ping) }
            let close = try await flooder.nextClose()
            #expect(close.code == 1008)
        }
    }

    @Test func heartbeatPingsLiveClientsAndClosesSilentOnes() async throws {
        try await withNode({
            $0.pingInterval = .milliseconds(200)
            $0.pingTimeout = .seconds(1)
        }) { node in
            let live = try await node.subscriber("hb")
            let silent = try await node.subscriber("hb")
            #expect(node.hub.subscriberCount("hb") == 2)

            // The live client answers every ping while the silent one says nothing, until the
            // notification sent at the end arrives.
            async let answering = { () async throws -> Int in
                var answered = 0
                while true {
                    switch try await live.nextMessage(timeout: .seconds(5)) {
                    case .ping:
                        try await live.send(.pong)
                        answered += 1
                    case .notification(let notification) where notification.title == "alive":
                        return answered
                    default:
                        break
                    }
                }
            }()

            // The silent client is closed with 1000/"timeout" and leaves the channel...
            let close = try await silent.nextClose(timeout: .seconds(5))
            #expect(close.code == 1000)
            #expect(close.reason == "timeout")
            // ...even though it never answers the close frame (a zombie).
            try await waitUntil("the zombie to leave the hub") { node.hub.subscriberCount("hb") == 1 }

            // Meanwhile the live client, answering pings, stayed well past the timeout.
            _ = try await node.request(.POST, "/api/notify/hb", body: #"{"title":"alive"}"#)
            let answered = try await answering
            #expect(answered >= 5, "pings answered: \(answered)")
            #expect(node.hub.subscriberCount("hb") == 1)
        }
    }

    @Test func aSlowConsumerIsDroppedWithoutHurtingOthers() async throws {
        try await withNode({
            $0.sendQueueBytes = 64 * 1024
            $0.slowConsumer = .disconnect
        }) { node in
            let slow = try await node.subscriber("firehose")
            let healthy = try await node.subscriber("firehose")
            // The slow client stops reading from its socket.
            try await slow.channel.setOption(ChannelOptions.autoRead, value: false).get()

            let body = String(repeating: "x", count: 32 * 1024)
            var published = 0
            // Loopback socket buffers absorb a few MiB before the server's queue fills; the
            // bound below is far beyond that, so reaching it means nothing was dropped.
            while node.connectionCount == 2, published < 2000 {
                _ = try await node.request(.POST, "/api/notify/firehose", body: #"{"body":"\#(body)"}"#)
                published += 1
                #expect(try await healthy.nextNotification().body?.count == body.count)
            }
            #expect(node.connectionCount == 1, "the slow consumer was dropped after \(published) publishes")
            #expect(published < 2000)
            #expect(node.hub.subscriberCount("firehose") == 1)
            // Memory stayed bounded: at most the send queue plus kernel buffers were ever held
            // for the slow client; the healthy one got every notification (checked above).
        }
    }
}

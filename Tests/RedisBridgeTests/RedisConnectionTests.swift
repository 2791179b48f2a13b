import HeraldTesting
import NIOCore
import NIOPosix
import RedisBridge
import Testing

/// The connection against a real redis-server.
@Suite struct RedisConnectionTests {
    @Test func commandsGetReplies() async throws {
        try await withRedis { redis in
            let connection = try await RedisConnection.connect(
                to: RedisURL(host: "127.0.0.1", port: redis.port), group: MultiThreadedEventLoopGroup.singleton)
            defer { connection.close() }
            #expect(try await connection.sendFuture([ByteBuffer(string: "PING")]).get().string == "PONG")
        }
    }

    /// Found by the benchmark script: a node hung on shutdown when Redis went away. A command
    /// sent on a connection that has closed and shed its handlers never reached the handler
    /// that fails replies, so its reply was awaited forever.
    @Test func aCommandOnAClosedConnectionFailsInsteadOfWaitingForever() async throws {
        try await withRedis { redis in
            let connection = try await RedisConnection.connect(
                to: RedisURL(host: "127.0.0.1", port: redis.port), group: MultiThreadedEventLoopGroup.singleton)
            connection.close()
            try await connection.closeFuture.get()
            // Closed, handlers possibly still there: fails at once too.
            #expect(try await outcome(of: connection.sendFuture([ByteBuffer(string: "PING")])) == "failed")
            // NIO removes the handlers a few loop turns after the close; wait for that state.
            let channel = connection.channel
            var turns = 0
            while try await channel.eventLoop.submit({
                (try? channel.pipeline.syncOperations.handler(type: RESPChannelHandler.self)) != nil
            }).get() {
                turns += 1
                try #require(turns < 1000, "the closed channel kept its handler")
            }
            #expect(try await outcome(of: connection.sendFuture([ByteBuffer(string: "PING")])) == "failed")
        }
    }

    /// Whichever comes first; a reply that never comes must fail the test, not hang it.
    func outcome(of reply: EventLoopFuture<RESPValue>) async throws -> String {
        let outcome = reply.eventLoop.makePromise(of: String.self)
        reply.whenComplete { result in
            if case .failure = result { outcome.succeed("failed") } else { outcome.succeed("replied") }
        }
        let timeout = reply.eventLoop.scheduleTask(in: .seconds(5)) { outcome.succeed("still waiting") }
        defer { timeout.cancel() }
        return try await outcome.futureResult.get()
    }
}

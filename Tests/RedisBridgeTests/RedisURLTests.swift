import NIOCore
import RedisBridge
import Testing

@Suite struct RedisURLTests {
    @Test func parsesURLs() {
        #expect(RedisURL("redis://localhost") == RedisURL(host: "localhost"))
        #expect(RedisURL("redis://:secret@redis:6380/2") == RedisURL(host: "redis", port: 6380, password: "secret", database: 2))
        #expect(RedisURL("redis://user:pw@10.0.0.1:6379/0") == RedisURL(host: "10.0.0.1", username: "user", password: "pw"))
        #expect(RedisURL("http://x") == nil)
        #expect(RedisURL("redis://host:notaport") == nil)
        #expect(RedisURL("redis://:pw@h/abc") == nil)
        #expect(RedisURL("redis://:secret@redis:6380/2")!.description == "redis://:***@redis:6380/2")
    }
}

@testable import HeraldServer
import NIOCore
import Testing

struct WebhookRetryPolicyTests {
    @Test func backsOffThenDropsOnceTheOldestEventIsTooOld() {
        let policy = WebhookRetryPolicy(retryFor: .seconds(60))
        #expect(policy.decide(failures: 1, age: .seconds(1)) == .retry(after: .milliseconds(250)))
        #expect(policy.decide(failures: 3, age: .seconds(1)) == .retry(after: .seconds(1)))
        #expect(policy.decide(failures: 30, age: .seconds(1)) == .retry(after: .seconds(5)))
        // Never sleeps far past the moment it gives up.
        #expect(policy.decide(failures: 30, age: .seconds(59)) == .retry(after: .seconds(1)))
        #expect(policy.decide(failures: 1, age: .seconds(60)) == .drop)
    }
}

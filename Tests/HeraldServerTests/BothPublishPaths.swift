import HeraldTesting
import Testing

/// Runs every test of a suite twice — with publishes served by the fast path, then by the
/// router — so that plain `swift test` holds both ways in to the same tests.
///
/// A failure message does not name the way; a thrown error does (``Failure``).
struct BothPublishPaths: SuiteTrait, TestTrait, TestScoping {
    struct Failure: Error, CustomStringConvertible {
        var path: PublishPath
        var underlying: any Error
        var description: String { "through the \(path.rawValue) path: \(underlying)" }
    }

    var isRecursive: Bool { true }

    /// Once per test case; the suite as a whole needs no scope.
    func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        for path in PublishPath.allCases {
            do {
                try await PublishPath.$current.withValue(path) { try await function() }
            } catch {
                throw Failure(path: path, underlying: error)
            }
        }
    }
}

extension Trait where Self == BothPublishPaths {
    /// Every test of the suite through the fast path and through the router.
    static var bothPublishPaths: Self { BothPublishPaths() }
}

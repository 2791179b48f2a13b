import NIOCore

/// A wait that ran out of time, naming what was awaited.
public struct TimeoutError: Error, CustomStringConvertible {
    public var what: String
    public var description: String { "timed out waiting for \(what)" }

    public init(what: String) {
        self.what = what
    }
}

/// Re-checks `condition` until it holds or `timeout` passes. For state that has no event to
/// await (a count in another process); everything with an event uses that event instead.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw TimeoutError(what: what)
}

/// Re-reads `value` until it gives something or `timeout` passes; returns it.
public func waitUntilValue<T>(
    _ what: String, timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20),
    _ value: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let found = try await value() { return found }
        try await Task.sleep(for: interval)
    }
    if let found = try await value() { return found }
    throw TimeoutError(what: what)
}

/// Runs `body`, cancelling it and throwing ``TimeoutError`` if it takes longer than `timeout`.
/// For awaits that have no timeout of their own (a server that accepts a connection and never
/// answers): a test kit wait must end.
public func withTimeout<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else { throw TimeoutError(what: what) }
        return result
    }
}

/// Runs `body` with `resource`, then `stop`s it whether `body` returns or throws: the one shape
/// of every scoped `with…` helper here.
public func using<R, T>(_ resource: R, stop: (R) async -> Void, _ body: (R) async throws -> T) async throws -> T {
    do {
        let result = try await body(resource)
        await stop(resource)
        return result
    } catch {
        await stop(resource)
        throw error
    }
}

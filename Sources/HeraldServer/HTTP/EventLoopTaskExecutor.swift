import NIOCore

/// Runs a Swift task's jobs on one NIO event loop.
///
/// Hummingbird serves each HTTP connection from a Swift task that reads and writes the
/// channel through `NIOAsyncChannel`. Left on the global concurrent pool, every request hops
/// threads at least twice (loop → pool to read it, pool → loop to write the answer), and each
/// hop is a futex wake-up and a context switch: at 2000 publishes per second that was a
/// sixth of a REST publish's CPU (386 → 323 µs). With this executor as the connection task's preference,
/// the task runs on the channel's own loop, so reading the request, publishing (the Hub's
/// shard for that loop is local) and writing the response stay on one thread.
///
/// Only non-isolated async code follows the preference; actor-isolated work still runs on
/// its actor. Work on the loop must not block, like any other code on an event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}

extension EventLoop {
    /// `makeFutureWithTask`, with the task running on this loop rather than on the global
    /// executor's threads.
    ///
    /// For work that is mostly a chain of futures completing on NIO loops (a history read, a
    /// subscriber count), the global executor only adds two thread hops — a futex wake-up
    /// each — to every subscribe; profiled on 5,000 connects, those hops were 8 % of a
    /// connect's CPU. Not for CPU work such as a token's signature check: that stays off the
    /// loop.
    func makeFutureWithLoopTask<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> EventLoopFuture<T> {
        let promise = makePromise(of: T.self)
        Task(executorPreference: EventLoopTaskExecutor(self)) {
            promise.succeed(await body())
        }
        return promise.futureResult
    }
}

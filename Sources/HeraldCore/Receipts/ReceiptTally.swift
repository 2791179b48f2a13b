import Synchronization

/// One publication's receipt on a delivering node: each event loop with subscribers of the
/// channel adds what it wrote; the last one hands the total (and, for acks, which connections
/// were written) to `done`. A node without subscribers of the channel makes none and reports
/// nothing (it was not counted among the nodes to wait for).
final class ReceiptTally: Sendable {
    let request: ReceiptRequest
    private let state: Mutex<(remaining: Int, written: Int, sequences: [UInt64])>
    private let done: @Sendable (_ written: Int, _ sequences: [UInt64]) -> Void

    init(request: ReceiptRequest, loops: Int, done: @escaping @Sendable (Int, [UInt64]) -> Void) {
        self.request = request
        self.state = Mutex((loops, 0, []))
        self.done = done
    }

    /// One loop delivered it: `sequences` are the connections it was written to.
    func add(_ sequences: [UInt64]) {
        let finished = state.withLock { state -> (Int, [UInt64])? in
            state.remaining -= 1
            state.written += sequences.count
            if request.wantsAcks { state.sequences += sequences }
            return state.remaining == 0 ? (state.written, state.sequences) : nil
        }
        if let (written, sequences) = finished { done(written, sequences) }
    }
}

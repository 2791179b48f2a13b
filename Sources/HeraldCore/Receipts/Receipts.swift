import HeraldProtocol
import NIOCore
import Synchronization

/// This node's receipts, both sides: as the publishing node it collects the nodes' reports
/// (``collector``); as a delivering node it reports what it wrote (and, for `wait=acked`, the
/// acknowledgements that follow) to the publishing node — directly when that is this node,
/// else on the publishing node's receipt channel through the broker (one small message per
/// node and receipt, never one per subscriber).
public final class Receipts: Sendable {
    /// The longest a publisher may wait, and how long acknowledgements are watched for.
    public static let maxWait = TimeAmount.seconds(30)

    public let nodeID: String
    public let collector: ReceiptCollector
    let watch: AckWatch
    private let broker: any Broker
    /// Whether this node listens on its receipt channel: from its first waiting publish on, so
    /// a node that never waits costs Redis no subscription.
    private let listening = Atomic<Bool>(false)

    init(nodeID: String, broker: any Broker) {
        self.nodeID = nodeID
        self.broker = broker
        self.collector = ReceiptCollector()
        self.watch = AckWatch()
    }

    /// The channel this node's reports arrive on.
    public var channel: String { ReceiptRequest.channel(of: nodeID) }

    /// Succeeds on `loop` once reports for this node reach it (at once after the first time).
    func listen(on loop: any EventLoop) -> EventLoopFuture<Void> {
        if !listening.exchange(true, ordering: .relaxed) { broker.setInterest(in: channel, true) }
        return broker.whenSubscribed(channel, on: loop)
    }

    /// A report for this node arrived on its receipt channel.
    func received(_ publication: Publication) {
        guard let report = ReceiptReport(String(buffer: publication.payload)) else { return }
        collector.received(report)
    }

    /// This node finished delivering a publication whose publisher waits for a receipt.
    func delivered(_ publication: Publication, request: ReceiptRequest, written: Int, sequences: [UInt64]) {
        if request.wantsAcks, let position = publication.position {
            watch.watch(request, channel: publication.channel, position: position, sequences: sequences, until: .now() + Self.maxWait)
        }
        report(.written(written), for: request)
    }

    /// Connection `sequence` acknowledged `channel` up to `position`.
    public func acknowledged(_ sequence: UInt64, channel: String, position: StreamPosition) {
        var counts: [ReceiptRequest: Int] = [:]
        for request in watch.acknowledged(sequence, channel: channel, position: position) { counts[request, default: 0] += 1 }
        for (request, count) in counts { report(.acked(count), for: request) }
    }

    private func report(_ kind: ReceiptReport.Kind, for request: ReceiptRequest) {
        let report = ReceiptReport(id: request.id, node: nodeID, kind: kind)
        guard request.origin != nodeID else { return collector.received(report) }
        let publication = Publication(
            channel: ReceiptRequest.channel(of: request.origin), payload: ByteBuffer(string: report.encoded),
            kind: .message(type: "receipt"))
        let broker = self.broker
        // Best effort: a report that cannot be sent leaves this node among `missing_nodes`.
        Task { try? await broker.publishTransient(publication) }
    }
}

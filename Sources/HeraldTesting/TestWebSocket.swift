import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// A WebSocket client for tests that does nothing on its own: no automatic pong, no close
/// handshake, no UTF-8 checks. Tests send any frame, read every frame, and see exactly what
/// the server did.
public final class TestWebSocket: Sendable {
    public struct NotUpgraded: Error {}

    public let channel: any Channel
    let inbox: Inbox<WebSocketFrame>
    /// `welcome.clientId`, when connected to `/ws`.
    public let clientID: String?

    init(channel: any Channel, inbox: Inbox<WebSocketFrame>, clientID: String?) {
        self.channel = channel
        self.inbox = inbox
        self.clientID = clientID
    }

    /// Connects and, on `/ws`, reads the `welcome` message.
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String = "/ws", headers: [(String, String)] = [],
        readWelcome: Bool? = nil, tls: TLSConfiguration? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, receiveBufferBytes: Int? = nil
    ) async throws -> TestWebSocket {
        let inboxSlot = NIOLockedValueBox<Inbox<WebSocketFrame>?>(nil)
        let channel = try await WebSocketDialer.connect(
            host: host, port: port, path: path, headers: headers, tls: tls, group: group, receiveBufferBytes: receiveBufferBytes
        ) {
            pipeline in
            let inbox = Inbox<WebSocketFrame>()
            inboxSlot.withLockedValue { $0 = inbox }
            try pipeline.addHandler(InboxHandler(inbox: inbox))
        }
        guard let inbox = inboxSlot.withLockedValue({ $0 }) else { throw UnexpectedFrame(description: "no inbox after the upgrade") }
        var clientID: String?
        if readWelcome ?? (path.hasPrefix("/ws") && !path.hasPrefix("/ws/echo")) {
            let welcome = try await TestWebSocket(channel: channel, inbox: inbox, clientID: nil).nextMessage()
            guard case .welcome(let id, _, _) = welcome else { throw UnexpectedMessage(message: welcome) }
            clientID = id
        }
        return TestWebSocket(channel: channel, inbox: inbox, clientID: clientID)
    }

    // MARK: Sending

    /// Sends one masked frame; every field can be set wrong on purpose.
    public func sendFrame(
        opcode: WebSocketOpcode, data: [UInt8], fin: Bool = true, masked: Bool = true, rsv1: Bool = false
    ) async throws {
        // NIO's frame encoder applies the mask when the frame carries a key.
        let buffer = channel.allocator.buffer(bytes: data)
        let key: WebSocketMaskingKey? = masked ? .random() : nil
        let frame = WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, maskKey: key, data: buffer)
        try await channel.writeAndFlush(frame)
    }

    public func send(text: String) async throws {
        try await sendFrame(opcode: .text, data: Array(text.utf8))
    }

    public func send(_ message: ClientMessage) async throws {
        try await send(text: String(decoding: try JSONEncoder().encode(message), as: UTF8.self))
    }

    // MARK: Receiving

    public struct UnexpectedMessage: Error, CustomStringConvertible {
        public var message: ServerMessage
        public var description: String { "unexpected message: \(message)" }

        public init(message: ServerMessage) {
            self.message = message
        }
    }

    public struct UnexpectedFrame: Error, CustomStringConvertible {
        public var description: String
    }

    /// The next frame of any kind.
    public func nextFrame(timeout: TimeAmount = .seconds(5)) async throws -> WebSocketFrame {
        switch await inbox.next(timeout: timeout) {
        case .element(let frame): return frame
        case .finished: throw UnexpectedFrame(description: "connection closed")
        case .timedOut: throw TimeoutError(what: "a frame")
        }
    }

    /// The next server message (text frame), decoded.
    public func nextMessage(timeout: TimeAmount = .seconds(5)) async throws -> ServerMessage {
        let frame = try await nextFrame(timeout: timeout)
        guard frame.opcode == .text else {
            throw UnexpectedFrame(description: "expected a text frame, got \(frame.opcode) \(Self.closeInfo(frame))")
        }
        return try ServerMessage.decode(frame.unmaskedData.readableBytesView)
    }

    /// The next message for which `predicate` holds, skipping the others (and pings).
    public func next(
        timeout: TimeAmount = .seconds(5), where predicate: (ServerMessage) -> Bool
    ) async throws -> ServerMessage {
        let deadline = NIODeadline.now() + timeout
        while true {
            let left = deadline - .now()
            guard left > .zero else { throw TimeoutError(what: "a matching message") }
            let message = try await nextMessage(timeout: left)
            if predicate(message) { return message }
        }
    }

    /// The next `error` message's payload.
    public func nextError(timeout: TimeAmount = .seconds(5)) async throws -> ProtocolError {
        let message = try await next(timeout: timeout) { if case .error = $0 { true } else { false } }
        guard case .error(let error) = message else { throw UnexpectedMessage(message: message) }
        return error
    }

    /// The next notification.
    public func nextNotification(timeout: TimeAmount = .seconds(5)) async throws -> HeraldNotification {
        let message = try await next(timeout: timeout) { if case .notification = $0 { true } else { false } }
        guard case .notification(let notification) = message else { throw UnexpectedMessage(message: message) }
        return notification
    }

    /// The next notification titled `title`, skipping the others: what a test waits for when
    /// earlier attempts may or may not have been published (a retried publish after an outage).
    public func notification(titled title: String, timeout: TimeAmount = .seconds(10)) async throws -> HeraldNotification {
        let message = try await next(timeout: timeout) {
            if case .notification(let notification) = $0 { notification.title == title } else { false }
        }
        guard case .notification(let notification) = message else { throw UnexpectedMessage(message: message) }
        return notification
    }

    /// Waits for the server's close frame, skipping other frames; returns its code and reason.
    public func nextClose(timeout: TimeAmount = .seconds(5)) async throws -> (code: UInt16?, reason: String) {
        let deadline = NIODeadline.now() + timeout
        while true {
            let frame = try await nextFrame(timeout: max(deadline - .now(), .milliseconds(1)))
            if frame.opcode == .connectionClose {
                var data = frame.unmaskedData
                let code = data.readInteger(as: UInt16.self)
                return (code, data.readString(length: data.readableBytes) ?? "")
            }
        }
    }

    /// Waits until the server has closed the TCP connection.
    public func waitForDisconnect(timeout: TimeAmount = .seconds(5)) async throws {
        let deadline = NIODeadline.now() + timeout
        while true {
            let left = deadline - .now()
            guard left > .zero else { throw TimeoutError(what: "disconnect") }
            if case .finished = await inbox.next(timeout: left) { return }
        }
    }

    /// Waits for no frame at all during `duration`; throws if one arrives.
    public func expectSilence(for duration: TimeAmount) async throws {
        if case .element(let frame) = await inbox.next(timeout: duration) {
            throw UnexpectedFrame(description: "expected silence, got \(frame.opcode) \(String(buffer: frame.unmaskedData))")
        }
    }

    public func close() async {
        try? await channel.close()
    }

    private static func closeInfo(_ frame: WebSocketFrame) -> String {
        guard frame.opcode == .connectionClose else { return "" }
        var data = frame.unmaskedData
        return "code \(data.readInteger(as: UInt16.self).map(String.init) ?? "none")"
    }
}

extension ServerMessage {
    /// The message without what varies from run to run — positions and recovery outcomes of
    /// `subscribed`, the reconnect hint of `server_shutdown` — for tests that compare the rest.
    public var essentials: ServerMessage {
        switch self {
        case .subscribed(let channel, let count, _, _): .subscribed(channel: channel, subscriberCount: count)
        case .serverShutdown(let message, _): .serverShutdown(message: message)
        default: self
        }
    }
}

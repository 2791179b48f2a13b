import HeraldCore
import HeraldProtocol
import HeraldTesting
import NIOCore
import NIOWebSocket
import Testing

/// Every error path of `/ws`, each with its code, over a real socket.
@Suite struct WebSocketProtocolTests {
    /// A WebSocket handshake sent as a plain HTTP request, to see refusals' HTTP status.
    static let upgradeHeaders = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]

    @Test func malformedMessagesGetErrorsAndTheConnectionStaysUsable() async throws {
        try await withNode { node in
            let client = try await node.connect()
            let cases: [(String, ErrorCode)] = [
                ("{oops", .invalidJSON),
                ("[]", .invalidMessage),
                (#"{"channel":"x"}"#, .missingField),
                (#"{"type":"teleport"}"#, .unknownType),
                (#"{"type":"subscribe"}"#, .missingField),
                (#"{"type":"subscribe","channel":12}"#, .invalidField),
                (#"{"type":"subscribe","channel":"no spaces"}"#, .invalidChannel),
                (#"{"type":"subscribe","channel":"\#(String(repeating: "a", count: 129))"}"#, .invalidChannel),
                (#"{"type":"unsubscribe","channel":"never"}"#, .notSubscribed),
                (#"{"type":"message","channel":"never","text":"x"}"#, .notSubscribed),
                (#"{"type":"set_name","name":""}"#, .invalidField),
            ]
            for (text, expected) in cases {
                try await client.send(text: text)
                let error = try await client.nextError()
                #expect(error.code == expected, "\(text)")
                #expect(!error.error.isEmpty)
            }
            try await client.send(.subscribe(channel: "still-works"))
            #expect(try await client.nextMessage().essentials == .subscribed(channel: "still-works", subscriberCount: 1))
        }
    }

    @Test func limitsOnSubscriptionsAndNames() async throws {
        try await withNode({
            $0.sessionLimits.maxSubscriptions = 2
            $0.sessionLimits.maxNameLength = 8
        }) { node in
            let client = try await node.subscriber("one", "two")
            try await client.send(.subscribe(channel: "three"))
            #expect(try await client.nextError().code == .tooManySubscriptions)
            try await client.send(.setName("12345678"))
            #expect(try await client.nextMessage() == .nameSet(name: "12345678"))
            try await client.send(.setName("123456789"))
            #expect(try await client.nextError().code == .nameTooLong)
        }
    }

    @Test func binaryFramesClose1003() async throws {
        try await withNode { node in
            let client = try await node.connect()
            try await client.sendFrame(opcode: .binary, data: [1, 2, 3])
            #expect(try await client.nextClose().code == 1003)
        }
    }

    @Test func oversizedFramesClose1009() async throws {
        try await withNode({ $0.maxMessageBytes = 1024 }) { node in
            let client = try await node.connect()
            try await client.send(text: #"{"type":"set_name","name":""# + String(repeating: "x", count: 2000) + #""}"#)
            #expect(try await client.nextClose().code == 1009)
        }
    }

    @Test func oversizedFragmentedMessagesClose1009() async throws {
        try await withNode({ $0.maxMessageBytes = 1024 }) { node in
            let client = try await node.connect()
            for index in 0..<3 {
                try await client.sendFrame(opcode: index == 0 ? .text : .continuation, data: Array(repeating: 32, count: 500), fin: false)
            }
            #expect(try await client.nextClose().code == 1009)
        }
    }

    @Test func invalidUTF8Closes1007() async throws {
        try await withNode { node in
            let client = try await node.connect()
            try await client.sendFrame(opcode: .text, data: [0x7B, 0xC3, 0x28, 0x7D])
            #expect(try await client.nextClose().code == 1007)
        }
    }

    @Test func unmaskedFramesClose1002() async throws {
        try await withNode { node in
            let client = try await node.connect()
            try await client.sendFrame(opcode: .text, data: Array(#"{"type":"ping"}"#.utf8), masked: false)
            #expect(try await client.nextClose().code == 1002)
        }
    }

    @Test func fragmentedMessagesAreReassembled() async throws {
        try await withNode { node in
            let client = try await node.connect()
            let text = Array(#"{"type":"subscribe","channel":"frag"}"#.utf8)
            try await client.sendFrame(opcode: .text, data: Array(text[..<10]), fin: false)
            try await client.sendFrame(opcode: .ping, data: [7])
            try await client.sendFrame(opcode: .continuation, data: Array(text[10...]))
            let pong = try await client.nextFrame()
            #expect(pong.opcode == .pong)
            #expect(Array(pong.unmaskedData.readableBytesView) == [7])
            #expect(try await client.nextMessage().essentials == .subscribed(channel: "frag", subscriberCount: 1))
        }
    }

    @Test func peerCloseIsEchoed() async throws {
        try await withNode { node in
            let client = try await node.connect()
            try await client.sendFrame(opcode: .connectionClose, data: [0x03, 0xE8])
            #expect(try await client.nextClose().code == 1000)
            try await client.waitForDisconnect()
            try await waitUntil("the hub to forget the client") { node.connectionCount == 0 }
        }
    }

    @Test func unknownWebSocketPathIs404() async throws {
        try await withNode { node in
            let response = try await node.request(
                .GET, "/ws/nope",
                headers: Self.upgradeHeaders)
            #expect(response.status == 404)
        }
    }

    @Test func connectionLimitRefusesWith503() async throws {
        try await withNode({ $0.maxConnections = 2 }) { node in
            let first = try await node.connect()
            let second = try await node.connect()
            let refused = try await node.request(
                .GET, "/ws",
                headers: Self.upgradeHeaders)
            #expect(refused.status == 503)
            #expect(try refused.object()["code"] == .string("unavailable"))
            await first.close()
            try await waitUntil("a slot to free up") { node.connectionCount == 1 }
            let third = try await node.connect()
            #expect(third.clientID != nil)
            _ = second
        }
    }

    @Test func websocketsFromOtherOriginsAreRefusedWith403() async throws {
        try await withNode({ $0.allowedOrigins = ["https://app.example"] }) { node in
            let refused = try await node.request(.GET, "/ws", headers: Self.upgradeHeaders + [("Origin", "https://evil.example")])
            #expect(refused.status == 403)
            #expect(try refused.object()["code"] == .string("forbidden"))
            let allowed = try await node.connect(headers: [("Origin", "https://app.example")])
            #expect(allowed.clientID != nil)
            // Non-browser clients send no Origin and are not affected.
            let tool = try await node.connect()
            #expect(tool.clientID != nil)
        }
    }

    @Test func echoEndpointEchoesTextAndBinary() async throws {
        try await withNode { node in
            let client = try await node.connect(path: "/ws/echo")
            try await client.sendFrame(opcode: .text, data: Array("héllo".utf8))
            let text = try await client.nextFrame()
            #expect(text.opcode == .text)
            #expect(String(buffer: text.unmaskedData) == "héllo")
            try await client.sendFrame(opcode: .binary, data: [0, 1, 255])
            let binary = try await client.nextFrame()
            #expect(binary.opcode == .binary)
            #expect(Array(binary.unmaskedData.readableBytesView) == [0, 1, 255])
        }
    }
}


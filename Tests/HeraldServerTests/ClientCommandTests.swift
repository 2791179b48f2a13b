import Foundation
import HeraldCore
import HeraldTesting
import Testing

/// `herald client`, driven through a terminal like a person would.
@Suite struct ClientCommandTests {
    @Test func subscribesAndPrintsANotification() async throws {
        try await withNode { node in
            try await withTerminal(try NodeProcess.executable, ["client", "ws://127.0.0.1:\(node.port)/ws"]) { terminal in
                try await terminal.waitFor("✓ Connected to")
                terminal.type("name Dora")
                terminal.type("sub news")
                try await terminal.waitFor("✓ Subscribed to \"news\" (1 subscribers)")
                _ = try await node.request(.POST, "/api/notify/news", body: #"{"title":"Printed","body":"on the terminal"}"#)
                try await terminal.waitFor("🔔 NOTIFICATION [news]")
                try await terminal.waitFor("║ Title: Printed")
                terminal.type("unsub nothing")
                try await terminal.waitFor("✗ Error [not_subscribed]")
                terminal.type("quit")
                #expect(try await terminal.waitForExit() == 0)
            }
        }
    }

    @Test func jsonModePrintsRawMessagesAndShowsReconnects() async throws {
        try await withNode { node in
            try await withTerminal(
                try NodeProcess.executable, ["client", "--json", "ws://127.0.0.1:\(node.port)/ws"], terminal: false
            ) { terminal in
                try await terminal.waitFor(#""type":"welcome""#)
                terminal.type("sub feed")
                try await terminal.waitFor(#"{"channel":"feed","epoch":"#)
                try await terminal.waitFor(#""offset":0,"subscriberCount":1,"type":"subscribed"}"#)
                try await node.stop()
                // The node is gone: the client says it is reconnecting.
                try await terminal.waitFor("reconnecting")
                terminal.type("quit")
                #expect(try await terminal.waitForExit() == 0)
            }
        }
    }
}

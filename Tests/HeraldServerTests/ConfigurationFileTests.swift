import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import NIOCore
import Testing

/// The configuration file (`--config`): namespaces over the global settings, the order of
/// sources, refusals naming file and key, and a SIGHUP reload on a running node.
@Suite struct ConfigurationFileTests {
    func withFile<T>(_ text: String, name: String = "herald.yaml", _ body: (String) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try await body(path)
    }

    @Test func namespacesTakeWhatTheyLeaveOutFromTheGlobalSettingsAndVariablesWinOverTheFile() async throws {
        let yaml = """
            history_size: 30
            history_ttl: 90
            unknown_namespaces: reject
            namespaces:
              chat:
                history_size: 50
                join_leave: true
                subscribe_hook: true
              ticker:
                history_size: 0
                client_publish: false
            """
        try await withFile(yaml) { path in
            let config = try await HeraldConfiguration.load(
                flags: [.config: path],
                environment: ["HERALD_HISTORY_SIZE": "20", "HERALD_SUBSCRIBE_HOOK_URL": "http://127.0.0.1:9/subscribe"])
            #expect(config.history.size == 20, "the variable wins over the file")
            #expect(config.history.ttl == .seconds(90), "the file wins over the default")
            let namespaces = config.namespaces
            #expect(namespaces.unknown == .reject)
            let chat = try #require(namespaces.policy(for: "chat:1"))
            #expect(chat.history.size == 50 && chat.history.ttl == .seconds(90) && chat.joinLeave == true && chat.subscribeHook)
            let ticker = try #require(namespaces.policy(for: "ticker:aapl"))
            #expect(ticker.history.size == 0 && !ticker.clientPublish && ticker.joinLeave == nil)
            #expect(namespaces.policy(for: "orders:1") == nil)
            #expect(namespaces.policy(for: "plain")?.history.size == 20)
            #expect(namespaces.policy(for: "private:x")?.isPrivate == true)
        }
    }

    @Test func aBadFileIsRefusedWithTheFileTheKeyAndTheReason() async throws {
        let cases: [(String, String)] = [
            ("namespaces:\n  chat:\n    histroy_size: 5\n", "namespaces.chat.histroy_size"),
            ("namespaces:\n  chat:\n    history_size: lots\n", "namespaces.chat.history_size"),
            ("namespaces:\n  \"a:b\":\n    presence: true\n", "namespaces"),
            ("prot: 80\n", "prot"),
            ("namespaces:\n  chat:\n    publish_hook: true\n", "namespaces.chat.publish_hook"),
            ("namespaces: [\n", "YAML"),
            ("namespaces:\n  chat:\n    slow_consumer: sometimes\n", "namespaces.chat.slow_consumer"),
            // Nothing to catch up from.
            ("namespaces:\n  chat:\n    history_size: 0\n    slow_consumer: catch_up\n", "namespaces.chat.slow_consumer"),
        ]
        for (yaml, key) in cases {
            try await withFile(yaml) { path in
                do {
                    _ = try await HeraldConfiguration.load(flags: [.config: path], environment: [:])
                    Issue.record("accepted: \(yaml)")
                } catch {
                    #expect("\(error)".contains(path), "\(error)")
                    #expect("\(error)".contains(key), "\(error) does not name \(key)")
                }
            }
        }
        await #expect(throws: ConfigurationError.self) {
            _ = try await HeraldConfiguration.load(flags: [.config: "/nonexistent/herald.yaml"], environment: [:])
        }
    }

    @Test func theSlowConsumerPolicyFollowsHistoryUnlessANamespaceOrTheGlobalSettingSaysOtherwise() async throws {
        let yaml = """
            namespaces:
              ticker:
                slow_consumer: latest
              live:
                history_size: 0
              chat:
                slow_consumer: disconnect
            """
        try await withFile(yaml) { path in
            let config = try await HeraldConfiguration.load(flags: [.config: path], environment: [:])
            let namespaces = config.namespaces
            #expect(namespaces.policy(for: "plain")?.slowConsumer == .catchUp, "history on: catch_up")
            #expect(namespaces.policy(for: "ticker:x")?.slowConsumer == .latest)
            #expect(namespaces.policy(for: "live:x")?.slowConsumer == .disconnect, "no history: disconnect")
            #expect(namespaces.policy(for: "chat:x")?.slowConsumer == .disconnect)
            let global = try await HeraldConfiguration.load(flags: [.config: path], environment: ["HERALD_SLOW_CONSUMER": "latest"])
            #expect(global.namespaces.policy(for: "plain")?.slowConsumer == .latest)
            #expect(global.namespaces.policy(for: "live:x")?.slowConsumer == .latest, "inherited")
        }
        #expect(throws: ConfigurationError.self) {
            _ = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_SLOW_CONSUMER": "catch_up", "HERALD_HISTORY_SIZE": "0"])
        }
        #expect(throws: ConfigurationError.self) {
            _ = try HeraldConfiguration.resolve(flags: [:], environment: ["HERALD_SLOW_CONSUMER": "never"])
        }
    }

    @Test func aJSONFileWorksToo() async throws {
        try await withFile(#"{"namespaces":{"ticker":{"history_size":0}}}"#, name: "herald.json") { path in
            let config = try await HeraldConfiguration.load(flags: [.config: path], environment: [:])
            #expect(config.namespaces.policy(for: "ticker:x")?.history.size == 0)
        }
    }

    @Test func sighupReloadsTheNamespacesWithoutDroppingAConnection() async throws {
        try await withFile("namespaces:\n  ticker:\n    history_size: 0\n") { path in
            try await withNodeProcess(arguments: ["--config", path]) { node in
                let client = try await TestWebSocket.connect(port: node.port)
                try await client.send(.subscribe(channel: "ticker:a"))
                guard case .subscribed("ticker:a", _, let before, _) = try await client.nextMessage() else {
                    Issue.record("not subscribed")
                    return
                }
                #expect(before == nil)
                // An invalid file is refused and the node keeps its rules.
                try "namespaces:\n  ticker:\n    history_size: -1\n".write(toFile: path, atomically: true, encoding: .utf8)
                node.child.signal(SIGHUP)
                try await waitUntil("the refused reload to be logged", timeout: .seconds(10)) {
                    node.outputText.contains("configuration reload refused")
                }
                try "namespaces:\n  ticker:\n    history_size: 10\n".write(toFile: path, atomically: true, encoding: .utf8)
                node.child.signal(SIGHUP)
                try await waitUntil("the reload to be logged", timeout: .seconds(10)) { node.outputText.contains("configuration reloaded") }
                try await client.send(.subscribe(channel: "ticker:b"))
                guard case .subscribed("ticker:b", _, let after, _) = try await client.nextMessage() else {
                    Issue.record("the same connection could not subscribe after the reload")
                    return
                }
                #expect(after != nil, "ticker keeps history after the reload")
            }
        }
    }
}

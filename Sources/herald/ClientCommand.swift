import ArgumentParser
import Foundation
import HeraldClient
import HeraldCore
import HeraldProtocol
import NIOSSL

/// `herald client`: the interactive client of the original design, on the reconnecting library.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Connect to a Herald node and subscribe, post and watch notifications interactively.",
        discussion: """
            Commands: sub <channel>, unsub <channel>, name <name>, list, who <channel>, ping, send <channel> <text>, help, quit.
            The connection is restored automatically after a drop, with its name and subscriptions.
            """
    )

    @Argument(help: "WebSocket URL (env: HERALD_URL; default ws://localhost:8080/ws).")
    var url: String?

    @Flag(help: "Print every server message as one raw JSON line (for scripts).")
    var json = false

    @Option(help: "Connection token, sent in an `auth` message (env: HERALD_TOKEN; see `herald token`).")
    var token: String?

    @Option(help: "PEM file of the certificate authority to trust for wss:// (e.g. a self-signed certificate).")
    var caFile: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let target = url ?? environment["HERALD_URL"] ?? "ws://localhost:8080/ws"
        var settings = HeraldClient.Configuration()
        settings.token = token ?? environment["HERALD_TOKEN"]
        if let caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(caFile)
            settings.tls = tls
        }
        let client = try HeraldClient(url: target, configuration: settings)
        let output = ClientOutput(json: json)
        if !json { output.line("Connecting to \(target)… (type help for commands)") }

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask {
                for await event in client.events { output.show(event) }
            }
            group.addTask {
                for await line in Self.standardInputLines() {
                    if await Self.perform(line, client: client, output: output) == false { break }
                }
                client.close()
            }
        }
    }

    /// Carries out one typed command; `false` means quit.
    static func perform(_ line: String, client: HeraldClient, output: ClientOutput) async -> Bool {
        let parts = line.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 2).map(String.init)
        guard let command = parts.first?.lowercased() else { return true }
        do {
            switch (command, parts.count) {
            case ("sub", 2): try await client.subscribe(parts[1])
            case ("unsub", 2): try await client.unsubscribe(parts[1])
            case ("name", 2...): try await client.setName(parts.dropFirst().joined(separator: " "))
            case ("list", 1): try await client.send(.listSubscriptions)
            case ("who", 2): try await client.send(.presence(channel: parts[1]))
            case ("ping", 1): try await client.send(.ping)
            case ("send", 3): try await client.send(.message(channel: parts[1], text: parts[2]))
            case ("quit", _), ("exit", _): return false
            case ("help", _): output.note(help)
            default: output.note("Unknown command: \(line) (type help)")
            }
        } catch {
            output.note("✗ \(error)")
        }
        return true
    }

    static let help = """
        sub <channel>          subscribe
        unsub <channel>        unsubscribe
        name <name>            set your name
        list                   list your subscriptions
        who <channel>          who is subscribed to a channel you are in
        ping                   ping the server
        send <channel> <text>  post to a channel you are subscribed to
        quit                   leave
        """

    /// Lines from standard input, read on a thread of their own so no task blocks on it.
    static func standardInputLines() -> AsyncStream<String> {
        AsyncStream { continuation in
            let thread = Thread {
                while let line = readLine() { continuation.yield(line) }
                continuation.finish()
            }
            thread.start()
        }
    }
}

/// Renders events for people (or as JSON lines with `--json`).
final class ClientOutput: Sendable {
    let json: Bool

    init(json: Bool) {
        self.json = json
    }

    func show(_ event: HeraldClient.Event) {
        switch event {
        case .message(let message):
            if json {
                line(String(decoding: message.jsonBytes(), as: UTF8.self))
            } else if case .welcome = message {
                // Already announced by the `connected` state.
            } else {
                line(Self.describe(message))
            }
        case .state(let state):
            note(Self.describe(state))
        }
    }

    /// Status lines: on stdout for people, on stderr in JSON mode so stdout stays parseable.
    func note(_ text: String) {
        if json {
            FileHandle.standardError.write(Data((text + "\n").utf8))
        } else {
            line(text)
        }
    }

    func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func describe(_ state: HeraldClient.State) -> String {
        switch state {
        case .connecting(let attempt): attempt == 1 ? "… connecting" : "… connecting (attempt \(attempt))"
        case .connected(let id, let node): "✓ Connected to \(node) as \(id)"
        case .reconnecting(let attempt, let delay): "⚠ Connection lost — reconnecting in \(delay) (attempt \(attempt))"
        case .closed: "Connection closed"
        }
    }

    static func describe(_ message: ServerMessage) -> String {
        switch message {
        case .welcome(let id, let node, _): return "✓ Welcome \(id) (node \(node))"
        case .authenticated(let user, _): return "✓ Authenticated as \(user)"
        case .subscribed(let channel, let count, _, let recovery):
            let line = "✓ Subscribed to \"\(channel)\" (\(count) subscribers)"
            switch recovery {
            case nil: return line
            case .some(let recovery) where recovery.recovered:
                return line + "\n↺ Recovered \(recovery.replayed) missed notification\(recovery.replayed == 1 ? "" : "s") on \"\(channel)\""
            case .some:
                return line + "\n⚠ Could not recover what was missed on \"\(channel)\" (the history no longer has it)"
            }
        case .unsubscribed(let channel): return "✓ Unsubscribed from \"\(channel)\""
        case .nameSet(let name): return "✓ Name set to \"\(name)\""
        case .subscriptions(let channels):
            return "✓ Your subscriptions: \(channels.isEmpty ? "(none)" : channels.joined(separator: ", "))"
        case .pong: return "✓ Pong"
        case .ping: return "· ping (answered)"
        case .error(let error): return "✗ Error [\(error.code.rawValue)]: \(error.error)"
        case .serverShutdown(let text, _): return "⚠ Server is shutting down: \(text)"
        case .presence(let channel, let members, let total):
            let names = members.map { $0.name ?? $0.user ?? $0.clientId }
            let more = total > members.count ? " and \(total - members.count) more" : ""
            return "👥 \(total) in \"\(channel)\": \(names.joined(separator: ", "))\(more)"
        case .join(let channel, let member): return "→ \(member.name ?? member.user ?? member.clientId) joined \"\(channel)\""
        case .leave(let channel, let member): return "← \(member.name ?? member.user ?? member.clientId) left \"\(channel)\""
        case .presenceChanged(let channel, let joined, let left):
            return "👥 \"\(channel)\" changed: \(joined) joined, \(left) left (type who \(channel))"
        case .disconnect(let code, let reason): return "✗ Disconnected by the server (\(code)): \(reason)"
        case .notification(let notification):
            let target = notification.user.map { "@\($0)" } ?? notification.channel
            var lines = ["", "╔══════════════════════════════════════════", "║ 🔔 NOTIFICATION [\(target)]"]
            if let title = notification.title { lines.append("║ Title: \(title)") }
            if let body = notification.body, !body.isEmpty { lines.append("║ Body: \(body)") }
            if let from = notification.from {
                let user = notification.fromUser.map { " (user \($0))" } ?? ""
                lines.append("║ From: \(notification.fromName ?? from)\(user)")
            }
            if let data = notification.data {
                lines.append("║ Data: \(String(decoding: (try? JSONEncoder().encode(data)) ?? Data(), as: UTF8.self))")
            }
            lines.append("╚══════════════════════════════════════════")
            return lines.joined(separator: "\n")
        }
    }
}

import ArgumentParser
import Foundation
import HeraldBench

/// `herald bench`: the load generator. Progress on stderr, one JSON result on stdout.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test Herald (or Nchan): subscribers, REST publishes, latency, loss, CPU and memory.",
        discussion: "The JSON result's fields are described in docs/benchmarks.md."
    )

    @Option(help: "fanout, channels, connect, max or storm.") var mode: String = "fanout"
    @Option(help: "herald or nchan (protocol of the server under test).") var target: String = "herald"
    @Option(name: .customLong("url"), help: "Node base URL; repeat for several nodes.") var urls: [String] = ["http://127.0.0.1:8080"]
    @Option(help: "Subscriber connections.") var subscribers: Int = 100
    @Option(help: "Channels the subscribers are spread over.") var channels: Int = 1
    @Option(help: "Publishes per second (0: as fast as the publishers go).") var rate: Double = 100
    @Option(help: "Seconds of publishing.") var seconds: Double = 10
    @Option(help: "Concurrent REST publishers.") var publishers: Int = 4
    @Option(name: .customLong("payload-bytes"), help: "Padding bytes per notification.") var payloadBytes: Int = 0
    @Option(help: "Publications per request: above 1, Herald's publishers send POST /api/batch (the rate still counts publications).") var batch: Int = 1
    @Option(name: .customLong("pid"), help: "Server process to measure (CPU, RSS); repeatable.") var pids: [Int32] = []
    @Option(name: .customLong("kill-pid"), help: "storm mode: the first node's process, killed to start the storm.") var killPid: Int32?
    @Option(name: .customLong("max-p99-ms"), help: "max mode: the p99 bound in milliseconds.") var maxP99: Double = 50
    @Option(name: .customLong("api-key"), help: "Herald API key (or HERALD_API_KEY).") var apiKey: String?

    func run() async throws {
        var configuration = BenchConfiguration()
        guard let mode = BenchConfiguration.Mode(rawValue: mode) else { throw ValidationError("unknown mode \(mode)") }
        guard let target = BenchConfiguration.Target(rawValue: target) else { throw ValidationError("unknown target \(target)") }
        guard batch >= 1 else { throw ValidationError("batch must be at least 1") }
        guard subscribers > 0, channels > 0, publishers > 0, seconds > 0, rate >= 0 else {
            throw ValidationError("subscribers, channels, publishers and seconds must be positive")
        }
        configuration.mode = mode
        configuration.target = target
        configuration.urls = urls
        configuration.subscribers = subscribers
        configuration.channels = channels
        configuration.rate = rate
        configuration.seconds = seconds
        configuration.publishers = publishers
        configuration.payloadBytes = payloadBytes
        configuration.batch = batch
        configuration.pids = pids
        configuration.killPid = killPid
        configuration.maxP99Millis = maxP99
        configuration.apiKey = apiKey ?? ProcessInfo.processInfo.environment["HERALD_API_KEY"]
        let runner = BenchRunner(configuration: configuration) { line in
            FileHandle.standardError.write(Data(("bench: " + line + "\n").utf8))
        }
        let result = try await runner.run()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        FileHandle.standardOutput.write(try encoder.encode(result) + Data("\n".utf8))
    }
}

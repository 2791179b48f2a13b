import ArgumentParser

@main
struct Herald: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Herald: a horizontally scalable real-time notification server.",
        subcommands: [Serve.self, ClientCommand.self, BenchCommand.self, TokenCommand.self],
        defaultSubcommand: Serve.self
    )
}

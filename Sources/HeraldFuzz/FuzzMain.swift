/// One executable, three fuzz targets, chosen by name: `HeraldFuzz client-message …`,
/// `HeraldFuzz json-reader …` or `HeraldFuzz resp …`.
///
/// Built with `-DFUZZING` and sanitizer coverage (scripts/fuzz) it is a libFuzzer binary and
/// the remaining arguments are libFuzzer's; in a normal build it replays the corpus files
/// it is given, so inputs found by fuzzing stay regression tests.
let targets: [String: @Sendable (UnsafeBufferPointer<UInt8>) -> Void] = [
    "client-message": fuzzClientMessage,
    "json-reader": fuzzJSONReader,
    "resp": fuzzRESP,
]

#if FUZZING
import HeraldProtocol
import CFuzzDriver

/// The chosen target, read by the C callback libFuzzer calls (which cannot capture).
nonisolated(unsafe) var chosen: (UnsafeBufferPointer<UInt8>) -> Void = { _ in }

/// SwiftPM links an executable's entry point under this name; libFuzzer takes over from it.
@_cdecl("HeraldFuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    guard argc > 1, let name = argv[1].map({ String(cString: $0) }), let target = targets[name] else {
        print("usage: HeraldFuzz \(targets.keys.sorted().joined(separator: "|")) [libFuzzer options] [corpus…]")
        return 2
    }
    chosen = target
    // libFuzzer sees the program name followed by its own arguments.
    argv[1] = argv[0]
    var count = argc - 1
    var rest: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv + 1
    return LLVMFuzzerRunDriver(&count, &rest) { start, size in
        chosen(UnsafeBufferPointer(start: start, count: size))
        return 0
    }
}
#else
@main
enum Replay {
    static func main() throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let target = targets[name] else {
            print("usage: HeraldFuzz \(targets.keys.sorted().joined(separator: "|")) CORPUS…")
            return
        }
        try replayFiles(arguments.dropFirst(), target)
    }
}
#endif

import Foundation

/// Runs `body` on every file named (directories: every file inside), like libFuzzer does
/// with a corpus, so the inputs found by fuzzing stay regression tests in a normal build.
func replayFiles(_ paths: ArraySlice<String>, _ body: (UnsafeBufferPointer<UInt8>) -> Void) throws {
    var count = 0
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
        let files = isDirectory.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" }
            : [path]
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            data.withUnsafeBytes { body($0.bindMemory(to: UInt8.self)) }
            count += 1
        }
    }
    print("replayed \(count) inputs")
}

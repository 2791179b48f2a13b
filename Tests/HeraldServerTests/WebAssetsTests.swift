import Foundation
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

/// herald.js and the console as a node serves them.
@Suite struct WebAssetsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    static func file(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test func theNodeServesHeraldJSAsTheRepositoryHasItCacheableAndVersioned() async throws {
        try await withNode { node in
            let script = try await node.request(.GET, "/herald.js")
            #expect(script.status == 200)
            #expect(script.headers.first(name: "Content-Type") == "text/javascript; charset=utf-8")
            #expect(script.headers.first(name: "Cache-Control") == "public, max-age=300")
            // The embedded copy is the file (scripts/embed-web keeps them together).
            #expect(script.text == (try Self.file("clients/js/herald.js")), "run scripts/embed-web")
            let version = try #require(script.headers.first(name: "X-Herald-Client-Version"))
            #expect(script.text.contains(#"export const VERSION = "\#(version)""#))
            let etag = try #require(script.headers.first(name: "ETag"))
            let cached = try await node.request(.GET, "/herald.js", headers: [("If-None-Match", etag)])
            #expect(cached.status == 304)
            #expect(cached.body.isEmpty)
            let head = try await node.request(.HEAD, "/herald.js")
            #expect(head.status == 200)
            #expect(head.headers.first(name: "ETag") == etag)
            #expect(head.headers.first(name: "Content-Length") == String(script.body.count))
            #expect(head.body.isEmpty)
        }
    }

    @Test func theConsoleIsServedWithItsSecurityHeaders() async throws {
        try await withNode { node in
            let page = try await node.request(.GET, "/console?subscribe=news")
            #expect(page.status == 200)
            #expect(page.headers.first(name: "Content-Type") == "text/html; charset=utf-8")
            #expect(page.headers.first(name: "Content-Security-Policy")?.contains("frame-ancestors 'none'") == true)
            #expect(page.text == (try Self.file("clients/console/console.html")), "run scripts/embed-web")
            #expect(page.text.contains(#"import { Herald } from "/herald.js""#))
        }
    }

    /// herald.d.ts lists exactly the error codes the server has.
    @Test func theTypesOfHeraldJSNameEveryErrorCode() throws {
        let types = try Self.file("clients/js/herald.d.ts")
        let start = try #require(types.range(of: "export type ErrorCode ="))
        let end = try #require(types.range(of: ";", range: start.upperBound..<types.endIndex))
        let listed = types[start.upperBound..<end.lowerBound].split(separator: "|").map {
            $0.trimmingCharacters(in: CharacterSet(charactersIn: " \n\"")) }.filter { !$0.isEmpty }
        #expect(Set(listed) == Set(ErrorCode.allCases.map(\.rawValue)))
    }
}

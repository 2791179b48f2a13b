import Foundation
import HeraldServer
import HeraldTesting
import Testing

/// docs/openapi.yaml against the server: the same routes, and each answers as documented.
@Suite(.bothPublishPaths) struct OpenAPIRouteTests {
    /// `METHOD /path` for every operation in the document.
    static func documentedOperations() throws -> [String: Set<Int>] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/openapi.yaml").standardized
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var operations: [String: Set<Int>] = [:]
        var inPaths = false
        var path: String?
        var operation: String?
        for line in lines {
            if line == "paths:" { inPaths = true; continue }
            if inPaths, !line.isEmpty, !line.hasPrefix(" ") { break }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
                operation = "\(method) \(path)"
                operations[operation!] = []
            } else if let operation, let match = line.firstMatch(of: /^        "(\d{3})":/) {
                operations[operation]?.insert(Int(match.1)!)
            }
        }
        return operations
    }

    @Test func everyRouteIsDocumentedAndEveryDocumentedRouteExists() async throws {
        let documented = try Self.documentedOperations()
        #expect(documented.count >= 7)
        // The JSON API; the event stream, the metrics text and the browser files have pages
        // of their own (api.md, operations.md, javascript.md).
        let others: Set = ["GET /sse", "GET /metrics", "GET /herald.js", "HEAD /herald.js", "GET /console"]
        let routes = try await withNode { $0.node.restRoutes() }
        #expect(Set(routes).subtracting(others) == Set(documented.keys))
        #expect(others.isSubset(of: Set(routes)))
    }

    @Test func eachOperationAnswersWithADocumentedStatus() async throws {
        let documented = try Self.documentedOperations()
        try await withNode({ $0.apiKeys = ["k"] }) { node in
            for (operation, statuses) in documented {
                let parts = operation.split(separator: " ")
                let path = parts[1].replacingOccurrences(of: "{channel}", with: "docs-check")
                    .replacingOccurrences(of: "{user}", with: "docs-user")
                let body: String? = parts[0] == "POST" ? #"{"channels":["docs-check"],"channel":"docs-check","items":[{"channel":"docs-check"}]}"# : nil
                let result = try await node.request(
                    parts[0] == "POST" ? .POST : .GET, path, body: body, headers: [("Authorization", "Bearer k")])
                #expect(result.status == 200, "\(operation) answered \(result.status): \(result.text)")
                #expect(statuses.contains(result.status), "\(operation) may not answer \(result.status)")
                #expect(result.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true)
                if statuses.contains(401), path.hasPrefix("/api") {
                    let anonymous = try await node.request(parts[0] == "POST" ? .POST : .GET, path, body: body)
                    #expect(anonymous.status == 401, "\(operation) without a key answered \(anonymous.status)")
                }
            }
        }
    }
}

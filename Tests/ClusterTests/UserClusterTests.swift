import Foundation
import HeraldCore
import HeraldProtocol
import HeraldServer
import HeraldTesting
import Testing

/// A user on several nodes: notify and disconnect through any node reach every connection.
@Suite(.serialized) struct UserClusterTests {
    static let secret = Array("cluster-user-secret-long-enough-for-hs256".utf8)

    static func token(_ user: String) async throws -> String {
        try await TokenMinter.mint(
            ConnectionClaims(subject: user, expires: Date().addingTimeInterval(300), channels: nil), with: .hs256(secret: secret))
    }

    @Test func aUsersNotificationAndDisconnectReachItsConnectionsOnEveryNode() async throws {
        try await withRedis { redis in
            try await withCluster(3, redis: redis, { $0.auth = AuthConfiguration(secret: Self.secret, allowAnonymous: false) }) { nodes in
                let onNode2 = try await nodes[1].connect(path: "/ws?token=\(try await Self.token("ada"))")
                let onNode3 = try await nodes[2].connect(path: "/ws?token=\(try await Self.token("ada"))")
                let bob = try await nodes[2].connect(path: "/ws?token=\(try await Self.token("bob"))")
                try await waitUntil("node1 to count Ada's two connections") {
                    await nodes[0].clusterSubscriberCount(UserChannel.name(of: "ada")) == 2
                }
                let response = try await nodes[0].request(.POST, "/api/users/ada/notify", body: #"{"title":"cross-node"}"#)
                #expect(try response.object()["delivered"] == .integer(2))
                for socket in [onNode2, onNode3] {
                    let notification = try await socket.nextNotification(timeout: .seconds(10))
                    #expect(notification.user == "ada" && notification.title == "cross-node")
                }
                let disconnected = try await nodes[0].request(.POST, "/api/users/ada/disconnect")
                #expect(try disconnected.object()["disconnected"] == .integer(2))
                for socket in [onNode2, onNode3] {
                    #expect(try await socket.nextClose(timeout: .seconds(10)).code == CloseCode.disconnectedByServer.rawValue)
                }
                // Bob, on the same node as one of them, is still served.
                _ = try await nodes[0].request(.POST, "/api/users/bob/notify", body: #"{"title":"still here"}"#)
                #expect(try await bob.nextNotification(timeout: .seconds(10)).title == "still here")
            }
        }
    }
}

import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

@Suite struct ChannelAccessTests {
    let identity = ClientIdentity(userID: "alice", grant: try! ChannelGrant(["private:ops", "chat:*"]), expiresAtMillis: 0)

    @Test func rulesTable() {
        #expect(ChannelAccess.open.maySubscribe("news") && ChannelAccess.open.mayPost("news"))
        #expect(!ChannelAccess.open.maySubscribe("private:ops") && !ChannelAccess.open.mayPost("private:ops"))
        #expect(ChannelAccess.anonymous.maySubscribe("news") && !ChannelAccess.anonymous.mayPost("news"))
        #expect(!ChannelAccess.anonymous.maySubscribe("private:ops"))
        let token = ChannelAccess.token(identity)
        #expect(token.maySubscribe("news") && !token.mayPost("news"))
        #expect(token.maySubscribe("private:ops") && token.mayPost("private:ops"))
        #expect(token.mayPost("chat:lobby"))
        #expect(!token.maySubscribe("private:hr"))
        #expect(token.userID == "alice")
    }
}

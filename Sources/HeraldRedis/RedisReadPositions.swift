import HeraldCore
import HeraldProtocol
import NIOCore
import RedisBridge
import ServiceLifecycle

/// Users' read positions in Redis (``ReadPositions``' contract): one hash per user
/// (``RedisKeys/readPositions(_:)``) of channel → `offset:epoch`, on the registry's slot, its TTL
/// renewed by every acknowledgement. The cumulative rule and the bound run in one script, so
/// two devices acknowledging at once never lower a position.
public final class RedisReadPositions: ReadPositions, Service {
    private let link: RedisSupervisor
    private let keys: RedisKeys
    private let scripts = ScriptCache()
    private let unreachable: String
    public let maxChannelsPerUser: Int
    public let retentionSeconds: Int

    public init(
        topology: RedisTopology, maxChannelsPerUser: Int = ReadPositionLimits.maxChannelsPerUser,
        retentionSeconds: Int = ReadPositionLimits.retentionSeconds
    ) {
        self.link = topology.link("positions")
        self.keys = topology.keys
        self.unreachable = topology.unreachable
        self.maxChannelsPerUser = maxChannelsPerUser
        self.retentionSeconds = retentionSeconds
    }

    /// KEYS[1] the user's hash; ARGV channel, offset, epoch, the bound, the TTL in seconds.
    /// Returns 1 when stored (or already as high), -1 past the bound.
    static let acknowledge = LoadedScript(name: "acknowledgePosition", source: """
        local stored = redis.call('HGET', KEYS[1], ARGV[1])
        if stored then
          local colon = string.find(stored, ':', 1, true)
          if string.sub(stored, colon + 1) == ARGV[3] and tonumber(string.sub(stored, 1, colon - 1)) >= tonumber(ARGV[2]) then
            redis.call('EXPIRE', KEYS[1], ARGV[5])
            return 1
          end
        elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
          return -1
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
        redis.call('EXPIRE', KEYS[1], ARGV[5])
        return 1
        """)

    private func connection() throws(ReadPositionsError) -> RedisConnection {
        guard let connection = link.connection else { throw .unavailable(unreachable) }
        return connection
    }

    public func acknowledge(user: String, channel: String, position: StreamPosition) async throws(ReadPositionsError) {
        let connection = try connection()
        let arguments = [channel, String(position.offset), position.epoch, String(maxChannelsPerUser), String(retentionSeconds)]
        let reply: RESPValue
        do {
            reply = try await Self.acknowledge.run(
                [ByteBuffer(string: keys.readPositions(user))], arguments.map { ByteBuffer(string: $0) }, on: connection, sha: scripts
            ).get()
        } catch {
            throw .unavailable("\(error)")
        }
        if reply.int == -1 { throw .tooManyChannels(maxChannelsPerUser) }
    }

    public func position(user: String, channel: String) async throws(ReadPositionsError) -> StreamPosition? {
        let connection = try connection()
        do {
            return try await connection.send(["HGET", keys.readPositions(user), channel]).string.flatMap(Self.position)
        } catch {
            throw .unavailable("\(error)")
        }
    }

    public func positions(user: String) async throws(ReadPositionsError) -> [String: StreamPosition] {
        let connection = try connection()
        let fields: [RESPValue]
        do {
            fields = try await connection.send(["HGETALL", keys.readPositions(user)]).array ?? []
        } catch {
            throw .unavailable("\(error)")
        }
        var positions: [String: StreamPosition] = [:]
        var index = 0
        while index + 1 < fields.count {
            if let channel = fields[index].string, let position = fields[index + 1].string.flatMap(Self.position) {
                positions[channel] = position
            }
            index += 2
        }
        return positions
    }

    /// `offset:epoch` (epochs are hex, never `:`).
    static func position(_ stored: String) -> StreamPosition? {
        guard let colon = stored.firstIndex(of: ":"), let offset = Int64(stored[..<colon]) else { return nil }
        return StreamPosition(offset: offset, epoch: String(stored[stored.index(after: colon)...]))
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.link.run() }
    }
}

import NIOConcurrencyHelpers
import NIOCore
import RedisBridge

/// The Lua scripts behind positions, history and idempotency in Redis.
///
/// Each runs atomically in Redis, which is what makes an offset unique across nodes: the
/// offset, the stream entry, the expiry and the `PUBLISH` happen in one step, so every node
/// sees the position in the pub/sub message and no two publications share one. Scripts are
/// loaded once per connection (`SCRIPT LOAD`) and called by `EVALSHA`; after a Redis restart
/// the first call answers `NOSCRIPT` and the script is loaded again.
///
/// Keys of a channel (under the deployment prefix): `<p>:hist:<channel>` — a stream whose entry
/// ids are the offsets (`N-0`), field `d` the notification JSON with its position;
/// `<p>:meta:<channel>` — hash `e` (epoch), `s` (latest offset); `<p>:idem:<channel>:<key>` —
/// "id offset epoch" of the publication an idempotency key produced.
enum RedisScripts {
    /// KEYS: stream, meta, idempotency key (or ""), pub/sub channel, the registry's node set
    /// (or "": nothing to count).
    /// ARGV: notification JSON without position, history size (0: off), ttl (ms), epoch
    /// candidate, idempotency window (ms), notification id, excluded client id (or ""), the
    /// moment it was accepted (µs of Unix time, for the latency metric), the registry's node
    /// key prefix, this node's id, the channel. Returns {duplicate (0/1), id, offset, epoch,
    /// subscribers on the other live nodes (-1: not counted)}: counting here saves `delivered`
    /// a round trip of its own (the registry's keys are read, not declared: Redis Cluster is
    /// not supported, as for the registry itself).
    static let publish = """
        local idem = KEYS[3]
        if idem ~= '' then
          local prior = redis.call('GET', idem)
          if prior then
            local id, offset, epoch = string.match(prior, '^(%S+) (%d+) ?(%S*)$')
            return {1, id, tonumber(offset), epoch, -1}
          end
        end
        local size = tonumber(ARGV[2])
        local payload = ARGV[1]
        local offset, epoch = 0, ''
        local message
        if size > 0 then
          if redis.call('HSETNX', KEYS[2], 'e', ARGV[4]) == 1 then
            -- A new epoch: whatever stream is left belongs to an older one.
            redis.call('DEL', KEYS[1])
          end
          epoch = redis.call('HGET', KEYS[2], 'e')
          offset = redis.call('HINCRBY', KEYS[2], 's', 1)
          payload = string.sub(payload, 1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', size, offset .. '-0', 'd', payload)
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PEXPIRE', KEYS[2], ARGV[3])
          message = '#' .. offset .. ' ' .. epoch .. ' ' .. ARGV[7] .. ' ' .. ARGV[8] .. '\\n' .. payload
        else
          message = '!' .. ARGV[7] .. ' ' .. ARGV[8] .. '\\n' .. payload
        end
        redis.call('PUBLISH', KEYS[4], message)
        if idem ~= '' then
          redis.call('SET', idem, ARGV[6] .. ' ' .. offset .. ' ' .. epoch, 'PX', ARGV[5])
        end
        local others = -1
        if KEYS[5] ~= '' then
          others = 0
          for _, node in ipairs(redis.call('SMEMBERS', KEYS[5])) do
            if node ~= ARGV[10] and redis.call('EXISTS', ARGV[9] .. node) == 1 then
              others = others + tonumber(redis.call('HGET', ARGV[9] .. node .. ':channels', ARGV[11]) or '0')
            end
          end
        end
        return {0, ARGV[6], offset, epoch, others}
        """

    /// KEYS: stream, meta. ARGV: epoch candidate, after offset (-1: position only), limit,
    /// ttl (ms). Returns {epoch, latest offset, oldest retained offset, id1, d1, id2, d2, …}.
    /// A channel without history gets its epoch here, so a subscriber's position stays valid.
    static let history = """
        if redis.call('HSETNX', KEYS[2], 'e', ARGV[1]) == 1 then
          redis.call('HSET', KEYS[2], 's', 0)
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
          redis.call('DEL', KEYS[1])
        end
        local epoch = redis.call('HGET', KEYS[2], 'e')
        local offset = tonumber(redis.call('HGET', KEYS[2], 's') or '0')
        local oldest = offset + 1
        local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
        if #first > 0 then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
        local result = {epoch, offset, oldest}
        local after = tonumber(ARGV[2])
        local limit = tonumber(ARGV[3])
        if after >= 0 and limit > 0 and after < offset then
          for _, entry in ipairs(redis.call('XRANGE', KEYS[1], (after + 1) .. '-0', '+', 'COUNT', limit)) do
            result[#result + 1] = entry[1]
            result[#result + 1] = entry[2][2]
          end
        end
        return result
        """
}

/// A script loaded on one connection, called by `EVALSHA`, reloaded after `NOSCRIPT`.
struct LoadedScript: Sendable {
    let source: String

    /// Runs the script: `EVALSHA` written at once, on the connection's loop; a task only to
    /// load the script the first time, or again after `NOSCRIPT` (a restart flushes them).
    func run(_ keys: [ByteBuffer], _ arguments: [ByteBuffer], on connection: RedisConnection, sha: ScriptCache) -> EventLoopFuture<RESPValue> {
        let loop = connection.eventLoop
        guard let known = sha.value(for: source) else {
            return loop.makeFutureWithTask { try await load(keys, arguments, on: connection, sha: sha) }
        }
        return connection.sendFuture(Self.command("EVALSHA", known, keys, arguments)).flatMapError { error in
            guard case RedisConnectionError.server(let message) = error, message.hasPrefix("NOSCRIPT") else {
                return loop.makeFailedFuture(error)
            }
            return loop.makeFutureWithTask { try await load(keys, arguments, on: connection, sha: sha) }
        }
    }

    /// Loads the script (unless another call did meanwhile), then runs it.
    private func load(_ keys: [ByteBuffer], _ arguments: [ByteBuffer], on connection: RedisConnection, sha: ScriptCache) async throws -> RESPValue {
        let known = sha.value(for: source)
        if let known {
            do {
                return try await connection.send(Self.command("EVALSHA", known, keys, arguments))
            } catch RedisConnectionError.server(let message) where message.hasPrefix("NOSCRIPT") {
                // Redis lost its scripts: load again below.
            }
        }
        guard let loaded = try await connection.send([ByteBuffer(string: "SCRIPT"), ByteBuffer(string: "LOAD"), ByteBuffer(string: source)]).string
        else { throw RedisConnectionError.server("SCRIPT LOAD returned no sha") }
        sha.store(loaded, for: source)
        return try await connection.send(Self.command("EVALSHA", loaded, keys, arguments))
    }

    private static func command(_ verb: String, _ sha: String, _ keys: [ByteBuffer], _ arguments: [ByteBuffer]) -> [ByteBuffer] {
        [ByteBuffer(string: verb), ByteBuffer(string: sha), ByteBuffer(string: String(keys.count))] + keys + arguments
    }
}

/// The sha of each loaded script.
final class ScriptCache: Sendable {
    private let shas = NIOLockedValueBox<[String: String]>([:])

    func value(for source: String) -> String? { shas.withLockedValue { $0[source] } }
    func store(_ sha: String, for source: String) { shas.withLockedValue { $0[source] = sha } }
}

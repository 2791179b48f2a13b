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
/// Every script touches only the keys of one channel (``RedisKeys``: stream, meta,
/// idempotency key, pub/sub channel, counts — one Redis Cluster slot); the count of the other
/// nodes' subscribers is a script of its own over the channel's count hash, written in the
/// same round trip as the publish, on the same shard.
enum RedisScripts {
    /// KEYS: stream, meta, idempotency key (or ""), pub/sub channel — all of one channel.
    /// ARGV: notification JSON without position, history size (0: off), ttl (ms), epoch
    /// candidate, idempotency window (ms), notification id, excluded client id (or ""), the
    /// moment it was accepted (µs of Unix time, for the latency metric), the floor: the epoch
    /// and offset of the newest position the calling node delivered for the channel ("" and 0
    /// if none), the publish command (`PUBLISH`, or `SPUBLISH` in a cluster). Returns
    /// {duplicate (0/1), id, offset, epoch}.
    ///
    /// In a Redis Cluster only the stream and meta are declared (KEYS), the idempotency key
    /// and the pub/sub channel follow in ARGV 12 and 13 (same slot, by their hash tag): while
    /// a slot migrates, Redis refuses with `TRYAGAIN` any call that declares keys of which some
    /// exist and some do not — a pub/sub channel never exists, so declaring it would refuse
    /// every publish until the migration ended.
    ///
    /// A floor above the channel's latest offset in the same epoch means Redis lost writes
    /// whose positions clients already hold (a failover with asynchronous replication): the
    /// script starts a new epoch rather than hand those positions out again with other content.
    static let publish = """
        local idem = KEYS[3] or ARGV[12]
        if idem ~= '' then
          local prior = redis.call('GET', idem)
          if prior then
            local id, offset, epoch = string.match(prior, '^(%S+) (%d+) ?(%S*)$')
            return {1, id, tonumber(offset), epoch}
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
          if ARGV[9] == epoch and tonumber(redis.call('HGET', KEYS[2], 's') or '0') < tonumber(ARGV[10]) then
            epoch = ARGV[4]
            redis.call('DEL', KEYS[1])
            redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
          end
          offset = redis.call('HINCRBY', KEYS[2], 's', 1)
          payload = string.sub(payload, 1, -2) .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}'
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', size, offset .. '-0', 'd', payload)
          redis.call('PEXPIRE', KEYS[1], ARGV[3])
          redis.call('PEXPIRE', KEYS[2], ARGV[3])
          message = '#' .. offset .. ' ' .. epoch .. ' ' .. ARGV[7] .. ' ' .. ARGV[8] .. '\\n' .. payload
        else
          message = '!' .. ARGV[7] .. ' ' .. ARGV[8] .. '\\n' .. payload
        end
        redis.call(ARGV[11], KEYS[4] or ARGV[13], message)
        if idem ~= '' then
          redis.call('SET', idem, ARGV[6] .. ' ' .. offset .. ' ' .. epoch, 'PX', ARGV[5])
        end
        return {0, ARGV[6], offset, epoch}
        """

    /// KEYS: count hashes of channels (``RedisKeys/counts(_:)``; in a Redis Cluster, of one
    /// slot). ARGV: node id, how long the entries live (ms), then per key this node's local
    /// subscribers of that channel (0: none). Writes each entry with its expiry in Redis' own
    /// clock (nodes' clocks may differ), drops other nodes' expired entries (a node that died,
    /// or restarted under a new id, leaves nothing behind for long) and keeps each key alive at
    /// least as long as its longest-lived entry. One call for many channels: a heartbeat
    /// rewrites them all.
    static let setCount = """
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local node, ttl = ARGV[1], tonumber(ARGV[2])
        for k = 1, #KEYS do
          local key, count = KEYS[k], tonumber(ARGV[k + 2])
          local fields = redis.call('HGETALL', key)
          for i = 1, #fields, 2 do
            if fields[i] ~= node and tonumber(string.match(fields[i + 1], ' (%d+)$') or '0') <= ms then
              redis.call('HDEL', key, fields[i])
            end
          end
          if count > 0 then
            redis.call('HSET', key, node, count .. ' ' .. (ms + ttl))
            -- Never shorter than another node's entry (a node with a shorter heartbeat).
            if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
          else
            redis.call('HDEL', key, node)
          end
        end
        return #KEYS
        """

    /// KEYS: a channel's count hash. ARGV: the calling node's id. Returns the subscribers of
    /// the channel on the other nodes whose entries have not expired.
    static let countChannel = """
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local fields = redis.call('HGETALL', KEYS[1])
        local total = 0
        for i = 1, #fields, 2 do
          if fields[i] ~= ARGV[1] then
            local count, expires = string.match(fields[i + 1], '^(%d+) (%d+)$')
            if count and tonumber(expires) > ms then total = total + tonumber(count) end
          end
        end
        return total
        """

    /// As `countChannel`, returning {total, node, node, …}: the other live nodes with subscribers.
    static let countChannelNodes = """
        local now = redis.call('TIME')
        local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
        local fields = redis.call('HGETALL', KEYS[1])
        local result = {0}
        for i = 1, #fields, 2 do
          if fields[i] ~= ARGV[1] then
            local count, expires = string.match(fields[i + 1], '^(%d+) (%d+)$')
            if count and tonumber(expires) > ms and tonumber(count) > 0 then
              result[1] = result[1] + tonumber(count)
              result[#result + 1] = fields[i]
            end
          end
        end
        return result
        """

    /// KEYS: stream, meta. ARGV: epoch candidate, after offset (-1: position only), limit,
    /// ttl (ms), the floor's epoch and offset (as for `publish`). Returns {epoch, latest
    /// offset, oldest retained offset, id1, d1, id2, d2, …}. A channel without history gets
    /// its epoch here, so a subscriber's position stays valid; a channel whose latest offset
    /// fell below the floor (lost writes) gets a new one, as in `publish`.
    static let history = """
        if redis.call('HSETNX', KEYS[2], 'e', ARGV[1]) == 1 then
          redis.call('HSET', KEYS[2], 's', 0)
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
          redis.call('DEL', KEYS[1])
        elseif ARGV[5] == redis.call('HGET', KEYS[2], 'e')
          and tonumber(redis.call('HGET', KEYS[2], 's') or '0') < tonumber(ARGV[6]) then
          redis.call('HSET', KEYS[2], 'e', ARGV[1], 's', 0)
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
    /// A short name the sha is cached under: looking a script up by its source would hash
    /// the whole text on every call (measured: on every publish).
    let name: String
    let source: String

    static let publish = LoadedScript(name: "publish", source: RedisScripts.publish)
    static let history = LoadedScript(name: "history", source: RedisScripts.history)
    static let setCount = LoadedScript(name: "setCount", source: RedisScripts.setCount)
    static let countChannel = LoadedScript(name: "countChannel", source: RedisScripts.countChannel)
    static let countChannelNodes = LoadedScript(name: "countChannelNodes", source: RedisScripts.countChannelNodes)

    /// Runs the script: `EVALSHA` written at once, on the connection's loop; a task only to
    /// load the script the first time, or again after `NOSCRIPT` (a restart flushes them).
    func run(_ keys: [ByteBuffer], _ arguments: [ByteBuffer], on connection: RedisConnection, sha: ScriptCache) -> EventLoopFuture<RESPValue> {
        let loop = connection.eventLoop
        guard let known = sha.value(for: name) else {
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
        let known = sha.value(for: name)
        if let known {
            do {
                return try await connection.send(Self.command("EVALSHA", known, keys, arguments))
            } catch RedisConnectionError.server(let message) where message.hasPrefix("NOSCRIPT") {
                // Redis lost its scripts: load again below.
            }
        }
        guard let loaded = try await connection.send([ByteBuffer(string: "SCRIPT"), ByteBuffer(string: "LOAD"), ByteBuffer(string: source)]).string
        else { throw RedisConnectionError.server("SCRIPT LOAD returned no sha") }
        sha.store(loaded, for: name)
        return try await connection.send(Self.command("EVALSHA", loaded, keys, arguments))
    }

    static func command(_ verb: String, _ sha: String, _ keys: [ByteBuffer], _ arguments: [ByteBuffer]) -> [ByteBuffer] {
        [ByteBuffer(string: verb), ByteBuffer(string: sha), ByteBuffer(string: String(keys.count))] + keys + arguments
    }
}

/// One command of a pipeline: plain, or a script called by `EVALSHA`.
enum PipelinedCommand {
    case plain([ByteBuffer])
    case script(LoadedScript, keys: [ByteBuffer], arguments: [ByteBuffer])

    /// Writes `commands` in one write — one round trip — and returns their replies in order.
    /// A script this Redis is not known to have yet sends the calls one by one instead (the
    /// first loads it); a `NOSCRIPT` reply (Redis restarted meanwhile) reruns only that
    /// script, which Redis did not run, so nothing runs twice.
    static func send(_ commands: [PipelinedCommand], on connection: RedisConnection, sha: ScriptCache) -> [EventLoopFuture<RESPValue>] {
        var encoded: [[ByteBuffer]] = []
        for command in commands {
            switch command {
            case .plain(let arguments):
                encoded.append(arguments)
            case .script(let script, let keys, let arguments):
                guard let known = sha.value(for: script.name) else { return oneByOne(commands, on: connection, sha: sha) }
                encoded.append(LoadedScript.command("EVALSHA", known, keys, arguments))
            }
        }
        let replies = connection.sendFutures(encoded)
        return zip(commands, replies).map { command, reply in
            guard case .script(let script, let keys, let arguments) = command else { return reply }
            return reply.flatMapError { error in
                guard case RedisConnectionError.server(let message) = error, message.hasPrefix("NOSCRIPT") else {
                    return connection.eventLoop.makeFailedFuture(error)
                }
                return script.run(keys, arguments, on: connection, sha: sha)
            }
        }
    }

    private static func oneByOne(_ commands: [PipelinedCommand], on connection: RedisConnection, sha: ScriptCache) -> [EventLoopFuture<RESPValue>] {
        var previous = connection.eventLoop.makeSucceededVoidFuture()
        return commands.map { command in
            let reply = previous.flatMap { () -> EventLoopFuture<RESPValue> in
                switch command {
                case .plain(let arguments): connection.sendFuture(arguments)
                case .script(let script, let keys, let arguments): script.run(keys, arguments, on: connection, sha: sha)
                }
            }
            previous = reply.map { _ in }.recover { _ in }
            return reply
        }
    }
}

/// The sha of each loaded script.
final class ScriptCache: Sendable {
    private let shas = NIOLockedValueBox<[String: String]>([:])

    func value(for name: String) -> String? { shas.withLockedValue { $0[name] } }
    func store(_ sha: String, for name: String) { shas.withLockedValue { $0[name] = sha } }
}

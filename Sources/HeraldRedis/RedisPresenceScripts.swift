/// The Lua scripts behind presence in Redis.
///
/// Keys of a channel (``RedisKeys``, the channel's slot): `<p>:pres:{<channel>}` — sorted set
/// of client ids scored by when each entry expires (ms, Redis' clock); `<p>:presn:{<channel>}`
/// — the same ids with score 0, so `ZRANGEBYLEX` pages them in id order;
/// `<p>:presi:{<channel>}` — hash client id → member JSON. Each node refreshes its members' expiry every registry
/// heartbeat, and the keys' own TTL with it, so the entries of a node that died vanish within
/// three heartbeats (readers drop them) and a channel nobody is in leaves no keys behind.
/// Scripts are sent with `EVAL` (Redis caches them by hash), so a batch is written in call
/// order, never after a later one.
enum RedisPresenceScripts {
    /// KEYS: expiry set, name set, info hash. ARGV: ttl (ms), then operations:
    /// `+ id json` (add or refresh) and `- id` (remove).
    static let update = """
        local t = redis.call('TIME')
        local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
        local i = 2
        while i <= #ARGV do
          if ARGV[i] == '+' then
            redis.call('ZADD', KEYS[1], expiry, ARGV[i + 1])
            redis.call('ZADD', KEYS[2], 0, ARGV[i + 1])
            redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
            i = i + 3
          else
            redis.call('ZREM', KEYS[1], ARGV[i + 1])
            redis.call('ZREM', KEYS[2], ARGV[i + 1])
            redis.call('HDEL', KEYS[3], ARGV[i + 1])
            i = i + 2
          end
        end
        for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
        return 0
        """

    /// KEYS: expiry set, name set, info hash. ARGV: cursor (last client id of the previous
    /// page, or ""), limit. Drops up to 1000 expired members first. Returns {total, json…}.
    static let read = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
        if #expired > 0 then
          redis.call('ZREM', KEYS[1], unpack(expired))
          redis.call('ZREM', KEYS[2], unpack(expired))
          redis.call('HDEL', KEYS[3], unpack(expired))
        end
        local result = {redis.call('ZCARD', KEYS[1])}
        local from = '-'
        if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
        local ids = redis.call('ZRANGEBYLEX', KEYS[2], from, '+', 'LIMIT', 0, tonumber(ARGV[2]))
        if #ids > 0 then
          local infos = redis.call('HMGET', KEYS[3], unpack(ids))
          for j = 1, #ids do result[#result + 1] = infos[j] or '' end
        end
        return result
        """
}

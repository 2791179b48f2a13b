/// The webhook log's scripts (``RedisWebhookLog``). Each runs atomically, so the cluster-wide
/// transition a claim or release makes is decided and queued in one step: two nodes releasing
/// a channel's last two holds at once queue exactly one `channel_vacated`.
///
/// Every key sits on the registry's slot (``RedisKeys/webhooks``); the events stream and the
/// node set are passed as keys, the per-key sets are named from the same prefix.
/// Shared arguments: 1 the key prefix, 2 this node's id, 3 its liveness TTL in ms, 4 the
/// stream's bound. A key is `c:<channel>` or `u:<user>`.
enum RedisWebhookScripts {
    /// The helpers every script starts with.
    private static let common = """
        local base, node, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
        local names = { c = { 'channel_occupied', 'channel_vacated' }, u = { 'user_online', 'user_offline' } }
        local fields = { c = 'channel', u = 'user' }
        local function event(key, occupied)
          local kind = string.sub(key, 1, 1)
          redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*',
            'name', names[kind][occupied and 1 or 2], fields[kind], string.sub(key, 3))
        end
        local function claim(holder, key)
          local holders = base .. 'holders:' .. key
          if redis.call('SADD', holders, holder) == 1 and redis.call('SCARD', holders) == 1 then event(key, true) end
          redis.call('SADD', base .. 'held:' .. holder, key)
        end
        local function release(holder, key)
          local holders = base .. 'holders:' .. key
          if redis.call('SREM', holders, holder) == 1 and redis.call('SCARD', holders) == 0 then event(key, false) end
          redis.call('SREM', base .. 'held:' .. holder, key)
        end
        local function alive()
          redis.call('SET', base .. 'alive:' .. node, '1', 'PX', ttl)
          redis.call('SADD', KEYS[2], node)
        end

        """

    /// ARGV 5…: `+key` (claim) or `-key` (release), in order.
    static let apply = LoadedScript(name: "webhookApply", source: common + """
        alive()
        for i = 5, #ARGV do
          local change = ARGV[i]
          if string.sub(change, 1, 1) == '+' then claim(node, string.sub(change, 2)) else release(node, string.sub(change, 2)) end
        end
        return 1
        """)

    /// ARGV 5…: every key the node holds. Releases the others it held, claims these.
    static let resync = LoadedScript(name: "webhookResync", source: common + """
        alive()
        local wanted = {}
        for i = 5, #ARGV do wanted[ARGV[i]] = true end
        for _, key in ipairs(redis.call('SMEMBERS', base .. 'held:' .. node)) do
          if not wanted[key] then release(node, key) end
        end
        for i = 5, #ARGV do claim(node, ARGV[i]) end
        return 1
        """)

    /// Releases every key held by a node whose liveness expired; returns how many nodes.
    static let sweep = LoadedScript(name: "webhookSweep", source: common + """
        local swept = 0
        for _, holder in ipairs(redis.call('SMEMBERS', KEYS[2])) do
          if redis.call('EXISTS', base .. 'alive:' .. holder) == 0 then
            for _, key in ipairs(redis.call('SMEMBERS', base .. 'held:' .. holder)) do release(holder, key) end
            redis.call('DEL', base .. 'held:' .. holder)
            redis.call('SREM', KEYS[2], holder)
            swept = swept + 1
          end
        end
        return swept
        """)

    /// KEYS[1] the sender lease; ARGV node, ttl. 2: acquired now; 1: renewed; 0: another holds it.
    static let lease = LoadedScript(name: "webhookLease", source: """
        local holder = redis.call('GET', KEYS[1])
        if not holder then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return 2
        end
        if holder == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        return 0
        """)

    /// KEYS[1] the sender lease; ARGV node. Gives the lease up if this node holds it.
    static let resign = LoadedScript(name: "webhookResign", source: """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)
}

/// Which of a node's independent Redis shards a channel lives on.
///
/// A channel's shard is the Jump consistent hash (Lamping & Veach, 2014) of the 64-bit FNV-1a
/// hash of its UTF-8 name, over the number of shards — the function centrifuge uses for its
/// Redis shards, so any tool can compute where a channel is:
///
/// ```
/// key = FNV-1a-64(utf8(channel))   // offset basis 0xcbf29ce484222325, prime 0x100000001b3
/// b = -1; j = 0
/// while j < shards { b = j; key = key &* 2862933555777941757 &+ 1
///                    j = Int(Double(b + 1) * (Double(1 << 31) / Double((key >> 33) + 1))) }
/// shard = b
/// ```
///
/// Shards are numbered in the order `HERALD_REDIS_URL` lists them. Appending a shard moves
/// about 1/(n+1) of the channels, every one of them to the new shard; reordering or removing
/// shards moves far more, so the order is part of a deployment's configuration.
public struct ShardMap: Sendable, Equatable {
    public let count: Int

    public init(count: Int) {
        precondition(count >= 1, "a shard map needs at least one shard")
        self.count = count
    }

    /// The shard of `channel`, in `0..<count`.
    @inlinable
    public func shard(of channel: String) -> Int {
        count == 1 ? 0 : Self.jump(Self.fnv1a64(channel), buckets: count)
    }

    /// The 64-bit FNV-1a hash of `text`'s UTF-8 bytes.
    @inlinable
    public static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// Jump consistent hash of `key` into `0..<buckets`.
    @inlinable
    public static func jump(_ key: UInt64, buckets: Int) -> Int {
        var key = key
        var b: Int64 = -1
        var j: Int64 = 0
        while j < Int64(buckets) {
            b = j
            key = key &* 2_862_933_555_777_941_757 &+ 1
            j = Int64(Double(b + 1) * (Double(Int64(1) << 31) / Double((key >> 33) + 1)))
        }
        return Int(b)
    }
}

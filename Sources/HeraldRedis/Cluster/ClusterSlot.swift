/// Redis Cluster's key-to-slot function: CRC16 (XMODEM: polynomial 0x1021, initial value 0)
/// of the key's hash tag, modulo 16384.
///
/// Every key Herald keeps for a channel carries the channel as its hash tag (``RedisKeys``),
/// so a channel's slot is the slot of its name: `CLUSTER KEYSLOT "{news}"` = `slot(ofTag: "news")`.
public enum ClusterSlot {
    public static let count = 16384

    /// The slot of keys whose hash tag is `tag`.
    public static func slot(ofTag tag: String) -> Int {
        Int(crc16(tag.utf8) & 0x3FFF)
    }

    public static func crc16(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}

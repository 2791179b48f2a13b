#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Random version-4 UUID strings (lowercase) for notification and client ids.
///
/// Foundation's `UUID()` on Linux opens and reads `/dev/urandom` for every id; at thousands
/// of publishes per second those file opens were a few percent of the node's CPU. One call to
/// the C library's `arc4random_buf` (glibc ≥ 2.36 draws it from `getrandom(2)`, no file)
/// gives the same 122 random bits. glibc 2.36's `arc4random_buf` still makes one
/// `getrandom(2)` call per request, though — one syscall per publish in `perf trace` — so the
/// bits come from a pool refilled 4 KiB (256 ids) at a time.
public enum RandomID {
    public static func make() -> String {
        var (high, low) = pool.withLock { $0.next() }
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & ~(0xC000 << 48)) | (0x8000 << 48)  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { out in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            func put(_ value: UInt64, nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    out[index] = digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            func dash() {
                out[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high >> 32, nibbles: 8)
            dash()
            put(high >> 16, nibbles: 4)
            dash()
            put(high, nibbles: 4)
            dash()
            put(low >> 48, nibbles: 4)
            dash()
            put(low, nibbles: 12)
            return index
        }
    }

    private static let pool = Mutex(Pool())

    /// Random words handed out once each, refilled from the kernel when used up.
    private struct Pool: ~Copyable {
        private var words = [UInt64](repeating: 0, count: 512)
        private var used = 512

        mutating func next() -> (UInt64, UInt64) {
            if used == words.count {
                words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
                used = 0
            }
            defer {
                // Spent bits are not kept around for anyone reading memory later.
                words[used] = 0
                words[used + 1] = 0
                used += 2
            }
            return (words[used], words[used + 1])
        }
    }
}

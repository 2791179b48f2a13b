#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Synchronization

/// The `Date` header value (RFC 9110's IMF-fixdate), formatted once per second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static var now: String {
        var seconds = time(nil)
        return cache.withLock { cache in
            if cache.second == Int(seconds) { return cache.text }
            var parts = tm()
            gmtime_r(&seconds, &parts)
            var buffer = [CChar](repeating: 0, count: 64)
            let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
            let text = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            cache = (Int(seconds), text)
            return text
        }
    }
}

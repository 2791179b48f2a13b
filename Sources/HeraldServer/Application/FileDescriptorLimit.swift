#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The process's open-file limit, which bounds how many connections a node can hold: every
/// connection is a descriptor.
///
/// `herald serve` raises the soft limit to the hard one at start — as Go's runtime and nginx's
/// `worker_rlimit_nofile` do — since the soft default (often 1024) is a historical accident,
/// and `HERALD_MAX_CONNECTIONS=auto` (the default) is derived from the result.
public enum FileDescriptorLimit {
    /// The soft limit now.
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: min(limit.rlim_cur, rlim_t(Int32.max)))
    }

    /// Raises the soft limit to the hard limit; returns the soft limit in effect afterwards.
    @discardableResult
    public static func raiseToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) != 0 {
                // Some systems refuse an unlimited hard limit as the soft one; take a large value.
                raised.rlim_cur = min(limit.rlim_max, 1 << 20)
                _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
            }
        }
        return current
    }

    /// Connections that fit in `limit` descriptors, leaving a tenth (at least 64) for the
    /// listener, Redis, the event loops and log files.
    public static func connections(within limit: Int) -> Int {
        max(limit - max(limit / 10, 64), 1)
    }
}

import Glibc
import Logging

/// The process's open-file limit, raised to its hard maximum at start-up (as Go programs do, so DTM's): the
/// soft default of 1024 is below what `MaxConnections` allows on two listeners.
enum DescriptorLimit {
    static func raise(for maxConnections: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            logger.warning("cannot read the open-file limit", metadata: ["error": .string(String(cString: strerror(errno)))])
            return
        }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                limit = raised
            } else {
                logger.warning("cannot raise the open-file limit", metadata: ["error": .string(String(cString: strerror(errno)))])
            }
        }
        // Both listeners full, plus branch connections, the store and the runtime's own descriptors.
        let needed = UInt64(2 * maxConnections + 1024)
        if limit.rlim_cur != rlim_t.max && UInt64(limit.rlim_cur) < needed {
            logger.warning(
                "the open-file limit is below what MaxConnections allows; connections beyond it are refused by the kernel",
                metadata: ["limit": .stringConvertible(limit.rlim_cur), "max_connections": .stringConvertible(maxConnections)])
        }
    }
}

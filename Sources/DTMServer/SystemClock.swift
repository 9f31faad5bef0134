package import DTMCore
import Glibc

/// The real clock: wall time from `clock_gettime(CLOCK_REALTIME)`, sleeping with `Task.sleep`.
package struct SystemClock: CoordinatorClock {
    package init() {}

    package func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(microseconds: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000)
    }

    package func sleep(seconds: Double) async throws {
        try await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
    }
}

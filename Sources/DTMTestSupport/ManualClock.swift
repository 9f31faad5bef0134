package import DTMCore
import Synchronization

/// The tests' and harnesses' one clock: it stands still until moved by hand. `sleep` does not wait: it yields, so
/// that a loop that pauses goes round again, or — `sleepCancels` — ends the sleeper as a cancellation, for the fuzz
/// harnesses, which must never loop.
package final class ManualClock: CoordinatorClock {
    private let current: Mutex<Timestamp>
    private let sleepCancels: Bool

    package init(_ start: Timestamp = Timestamp(seconds: 1_800_000_000), sleepCancels: Bool = false) {
        current = Mutex(start)
        self.sleepCancels = sleepCancels
    }

    package func now() -> Timestamp { current.withLock { $0 } }
    package func advance(_ seconds: Double) { current.withLock { $0 = $0.adding(seconds: seconds) } }

    package func sleep(seconds: Double) async throws {
        if sleepCancels { throw CancellationError() }
        await Task.yield()
    }
}

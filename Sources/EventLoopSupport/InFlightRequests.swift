import Synchronization

/// Requests being answered by a listener, so that a graceful shutdown can wait for them to end (up to a grace
/// period) without polling.
package final class InFlightRequests: Sendable {
    private struct State {
        var count = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    package init() {}

    package func started() { state.withLock { $0.count += 1 } }

    package func finished() {
        let woken = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.count -= 1
            guard s.count <= 0 else { return [] }
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns when no request is in flight, or after `grace`, whichever comes first.
    package func idle(within grace: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.untilIdle() }
            group.addTask {
                try? await Task.sleep(for: grace)
                self.wakeAll()  // the grace is over (or the wait ended first): no waiter stays suspended
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func wakeAll() {
        let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for waiter in waiting { waiter.resume() }
    }

    private func untilIdle() async {
        await withCheckedContinuation { continuation in
            let idleNow = state.withLock { s -> Bool in
                if s.count <= 0 { return true }
                s.waiters.append(continuation)
                return false
            }
            if idleNow { continuation.resume() }
        }
    }
}

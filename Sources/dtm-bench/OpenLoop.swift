import EventLoopSupport
import NIOCore
import NIOPosix
import Synchronization

/// One submitter, used by one submission at a time (handed over through the pacer's lock), hence unchecked
/// Sendable.
final class LoadSlot: @unchecked Sendable {
    let worker: any SubmitWorker

    init(_ worker: any SubmitWorker) { self.worker = worker }
}

/// Open loop: saga `i` is due at `start + i / rate`. One timer on an NIO event loop wakes at the next due time
/// (at most every 200 µs) and starts every due saga on a free slot; a saga finding no free slot waits for one,
/// and its latency still counts from its due time. One wake-up serves every saga due by then, so pacing costs
/// no per-saga timer or thread hop at high rates; the
/// measurements go to one shared outcome under the same lock that returns the slot (per-slot histograms
/// would cost hundreds of KiB each).
final class OpenLoopPacer: @unchecked Sendable {
    private struct Shared {
        var free: [LoadSlot]
        var outcome = LoadOutcome()
        var issuing = true
        var done: CheckedContinuation<Void, Never>?
    }

    private let slots: [LoadSlot]
    private let clock: Timebase
    private let start: Int64
    private let end: Int64
    private let interval: Double
    private let loop: any EventLoop
    /// Submissions run on the event loops in turn, each on the loop of the connection it uses: no thread hop
    /// per submit in the generator, whose CPU competes with the coordinator's on this machine.
    private let executors: [EventLoopTaskExecutor]
    private let shared: Mutex<Shared>
    /// Touched only on `loop`.
    private var next = 0
    /// Shortest time between two wake-ups of the pacer.
    private static let minimumTick: Int64 = 200_000

    init(slots: [LoadSlot], rate: Double, start: Int64, end: Int64, clock: Timebase) {
        self.slots = slots
        self.clock = clock
        self.start = start
        self.end = end
        self.interval = 1e9 / rate
        self.loop = MultiThreadedEventLoopGroup.singleton.next()
        self.executors = MultiThreadedEventLoopGroup.singleton.makeIterator().map { EventLoopTaskExecutor(eventLoop: $0) }
        self.shared = Mutex(Shared(free: slots))
    }

    /// Returns once every due saga was submitted and answered; then the measurements.
    func run() async -> LoadOutcome {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            shared.withLock { $0.done = c }
            loop.execute { self.tick() }
        }
        return shared.withLock { $0.outcome }
    }

    private func tick() {
        let now = clock.now()
        while true {
            let due = start + Int64(Double(next) * interval)
            if due >= end {
                finishIfIdle(issuing: false)
                return
            }
            if due > now {
                wake(in: due - now)
                return
            }
            guard let slot = shared.withLock({ $0.free.popLast() }) else {
                wake(in: 0)  // every slot busy: look again shortly
                return
            }
            let seq = next
            next += 1
            Task(executorPreference: executors[seq % executors.count]) { await self.fire(slot, seq: seq, due: due) }
        }
    }

    private func wake(in nanos: Int64) {
        loop.scheduleTask(in: .nanoseconds(max(nanos, Self.minimumTick))) { self.tick() }
    }

    private func fire(_ slot: LoadSlot, seq: Int, due: Int64) async {
        let lag = clock.now() - due
        let ok = await slot.worker.submit(seq: seq)
        let took = clock.now() - due
        shared.withLock {
            _ = $0.outcome.sendLag.record(UInt64(max(0, lag) / 1000))
            $0.outcome.record(seq: seq, from: due, took: took, ok: ok)
            $0.free.append(slot)
        }
        finishIfIdle(issuing: nil)
    }

    /// Resumes `run` once issuing has stopped and every slot is back.
    private func finishIfIdle(issuing: Bool?) {
        let done = shared.withLock { s -> CheckedContinuation<Void, Never>? in
            if let issuing { s.issuing = issuing }
            guard !s.issuing, s.free.count == slots.count, let c = s.done else { return nil }
            s.done = nil
            return c
        }
        done?.resume()
    }
}

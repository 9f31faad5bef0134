import EventLoopSupport
import Histogram
import NIOPosix
import Synchronization

/// How sagas are offered to the coordinator.
enum LoadMode: Sendable {
    /// `clients` tasks, each submitting its next saga as soon as the previous submit returned.
    case closed(clients: Int)
    /// Saga `i` is due at `start + i / rate`, whatever the coordinator does; at most `inFlight` submits are
    /// outstanding (for HTTP: that many connections). Latency is taken from the due time, so a stalled
    /// coordinator shows in the figures instead of silently slowing the generator (coordinated omission).
    case open(rate: Double, inFlight: Int)
}

/// Latency histograms in microseconds (1 µs to 1 s, growing when a value is larger; ~100 KiB each).
typealias MicrosHistogram = Histogram<UInt64>

func makeHistogram() -> MicrosHistogram {
    var h = MicrosHistogram(lowestDiscernibleValue: 1, highestTrackableValue: 1_000_000, numberOfSignificantValueDigits: .three)
    h.autoResize = true
    return h
}

/// What the load tasks measured.
struct LoadOutcome: Sendable {
    /// Submit latency (µs): from the actual send (closed loop) or the due time (open loop) to the answer.
    var submit = makeHistogram()
    /// Open loop: how late submits were sent after their due time (µs) — the generator's own lag.
    var sendLag = makeHistogram()
    /// Accepted submits: saga number and the time its latency is measured from.
    var starts: [BranchCounter.Arrival] = []
    var failures = 0
    var loadStart: Int64 = 0
    var loadEnd: Int64 = 0

    var submitted: Int { starts.count + failures }

    /// Records one answered submit: its latency (µs) and, when accepted, its start for the join.
    mutating func record(seq: Int, from: Int64, took: Int64, ok: Bool) {
        _ = submit.record(UInt64(max(0, took) / 1000))
        if ok { starts.append(BranchCounter.Arrival(seq: seq, at: from)) } else { failures += 1 }
    }

    mutating func merge(_ other: LoadOutcome) {
        submit.add(other.submit)
        sendLag.add(other.sendLag)
        starts += other.starts
        failures += other.failures
    }
}

private final class Sequencer: Sendable {
    let next = Atomic<Int>(0)
    func take() -> Int { next.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Runs `mode` against `scenario` for `seconds` and returns the merged measurements.
func runLoad(scenario: any Scenario, mode: LoadMode, seconds: Double, clock: Timebase) async -> LoadOutcome {
    let start = clock.now()
    let end = start + Int64(seconds * 1e9)
    var total: LoadOutcome
    switch mode {
    case .closed(let clients):
        total = await runClosedLoop(scenario: scenario, clients: clients, end: end, clock: clock)
    case .open(let rate, let inFlight):
        let slots = (0..<inFlight).map { _ in LoadSlot(scenario.makeWorker()) }
        total = await OpenLoopPacer(slots: slots, rate: rate, start: start, end: end, clock: clock).run()
        for slot in slots { await slot.worker.finish() }
    }
    total.loadStart = start
    total.loadEnd = max(end, clock.now())
    return total
}

/// `clients` tasks, each submitting its next saga as soon as the previous answer arrived. The clients run on
/// the event loops in turn, as the open loop's submissions do: each loop then has its own connection to the
/// coordinator (the pool keeps a loop's calls on its own connection), as two client processes would, and the
/// coordinator serves them on two of its loops rather than everything on one.
private func runClosedLoop(scenario: any Scenario, clients: Int, end: Int64, clock: Timebase) async -> LoadOutcome {
    let sequencer = Sequencer()
    let executors = MultiThreadedEventLoopGroup.singleton.makeIterator().map { EventLoopTaskExecutor(eventLoop: $0) }
    return await withTaskGroup(of: LoadOutcome.self) { group in
        for client in 0..<clients {
            group.addTask(executorPreference: executors[client % executors.count]) {
                let worker = scenario.makeWorker()
                var mine = LoadOutcome()
                while clock.now() < end {
                    let seq = sequencer.take()
                    let began = clock.now()
                    let ok = await worker.submit(seq: seq)
                    mine.record(seq: seq, from: began, took: clock.now() - began, ok: ok)
                }
                await worker.finish()
                return mine
            }
        }
        var total = LoadOutcome()
        for await part in group { total.merge(part) }
        return total
    }
}

import ArgumentParser
import DTMCore
import DTMGRPC
import Glibc
import HTTP2
import Synchronization

/// `dtm-bench`: drives a DTM-compatible coordinator with two-branch gRPC sagas and reports what completed.
///
/// It runs its own branch service (the HTTP2 target's gRPC server, answering OK to every method) and counts
/// a saga as completed when its last action reached that service — measured, not assumed.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dtm-bench", abstract: "Load generator for swift-dtm (gRPC sagas).")

    @Option(help: "Coordinator gRPC address (host:port).") var target = "127.0.0.1:36790"
    @Option(help: "Concurrent clients (closed loop).") var clients = 64
    @Option(help: "Seconds of load.") var seconds = 10.0
    @Option(help: "Submit with wait_result.") var waitResult = false
    @Option(help: "PID of the coordinator, to read its CPU time and memory from /proc.") var pid: Int32 = 0
    @Option(help: "Seconds to wait after the load for sagas still in flight.") var drain = 5.0

    func run() async throws {
        let counter = BranchCounter()
        let branches = try await GRPCServer.start(host: "127.0.0.1", port: 0) { request in
            counter.record(path: request.path)
            return .ok([])
        }
        let busi = "127.0.0.1:\(branches.port)"
        let pool = GRPCConnectionPool()
        let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let cpuBefore = ProcStat.cpuSeconds(pid)
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        let stats = LoadStats()

        let target = self.target
        let waitResult = self.waitResult
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    var n = 0
                    var mine: [Double] = []
                    while ContinuousClock.now < deadline {
                        n += 1
                        var r = TransactionRequest(gid: "b\(runID)-\(client)-\(n)", transType: "saga")
                        r.steps = [
                            TransStep(action: "\(busi)/busi.Busi/TransOut", compensate: "\(busi)/busi.Busi/TransOutRevert"),
                            TransStep(action: "\(busi)/busi.Busi/TransIn", compensate: "\(busi)/busi.Busi/TransInRevert"),
                        ]
                        r.payloads = [[0x08, 0x1E], [0x08, 0x1E]]
                        r.options.waitResult = waitResult
                        let began = ContinuousClock.now
                        let result = await pool.unary(authority: target, path: "/dtmgimp.Dtm/Submit", message: ProtoCodec.encodeRequest(r), timeout: .seconds(10))
                        let took = ContinuousClock.now - began
                        mine.append(Double(took.components.seconds) * 1e3 + Double(took.components.attoseconds) / 1e15)
                        if !result.isOK { stats.failures.add(1, ordering: .relaxed) }
                    }
                    stats.latencies.withLock { $0 += mine }
                }
            }
        }
        let loadEnd = ContinuousClock.now
        let submitted = stats.latencies.withLock { $0.count }
        // Let in-flight sagas finish, bounded.
        let drainUntil = loadEnd + .milliseconds(Int64(drain * 1000))
        while counter.completed < submitted - stats.failures.load(ordering: .relaxed) && ContinuousClock.now < drainUntil {
            try? await Task.sleep(for: .milliseconds(50))
        }
        let cpuAfter = ProcStat.cpuSeconds(pid)
        let elapsed = loadEnd - start
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let completed = counter.completed
        let sorted = stats.latencies.withLock { $0.sorted() }
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        let f = stats.failures.load(ordering: .relaxed)
        print("scenario: grpc saga (2 gRPC branches), clients=\(clients), wait_result=\(waitResult), \(fmt(wall, 1)) s")
        print("submitted: \(submitted) (\(fmt(Double(submitted) / wall, 0))/s), submit errors: \(f)")
        print("completed (last action reached the branch service): \(completed) (\(fmt(Double(completed) / wall, 0))/s over the load window)")
        print("submit latency ms: p50 \(fmt(pct(0.5), 2)) p99 \(fmt(pct(0.99), 2)) p999 \(fmt(pct(0.999), 2))")
        if pid > 0, let before = cpuBefore, let after = cpuAfter, completed > 0 {
            print("coordinator CPU per completed saga: \(fmt((after - before) / Double(completed) * 1e6, 0)) µs; resident memory: \(ProcStat.residentMiB(pid)) MiB")
        }
        await pool.shutdown()
        await branches.shutdown()
    }
}

/// A number with `digits` decimals (no Foundation).
func fmt(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (v * scale).rounded() / scale
    if digits == 0 { return String(Int(r)) }
    let whole = Int(r.rounded(.towardZero))
    let frac = Int((abs(r - Double(whole)) * scale).rounded())
    let f = String(frac)
    return "\(r < 0 && whole == 0 ? "-" : "")\(whole).\(String(repeating: "0", count: max(0, digits - f.count)))\(f)"
}

/// What the clients measured: submit latencies (ms) and failed submits.
final class LoadStats: Sendable {
    let latencies = Mutex<[Double]>([])
    let failures = Atomic<Int>(0)
}

/// Counts branch calls by method; a saga is complete when its second action (TransIn) arrived.
final class BranchCounter: Sendable {
    private let transIn = Atomic<Int>(0)
    var completed: Int { transIn.load(ordering: .relaxed) }
    func record(path: String) {
        if path.hasSuffix("/TransIn") { transIn.add(1, ordering: .relaxed) }
    }
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
enum ProcStat {
    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        return String(cString: buffer)
    }

    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard pid > 0, let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func residentMiB(_ pid: Int32) -> Int {
        guard let statm = read("/proc/\(pid)/statm") else { return 0 }
        let pages = Int(statm.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / (1024 * 1024)
    }
}

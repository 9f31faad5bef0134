import ArgumentParser
internal import CMimalloc
import Etcd
import Glibc
import Logging

/// `dtm-bench`: drives a DTM-compatible coordinator with two-branch sagas and reports what completed.
///
/// It runs its own branch service (gRPC and HTTP/1.1, answering success, or failure for methods whose name
/// contains `Fail`) and counts a saga as completed when its last action reached that service — per gid,
/// measured, not assumed — and cross-checks a sample of gids in the coordinator's store.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtm-bench", abstract: "Load generator for DTM-compatible coordinators (gRPC and HTTP sagas).")

    enum Kind: String, ExpressibleByArgument, CaseIterable { case grpc, http }

    @Option(help: "grpc: gRPC submit with gRPC branches; http: JSON submit with HTTP branches.") var scenario: Kind = .grpc
    @Option(help: "Coordinator gRPC address (host:port); several, comma-separated, share the submits in turn.") var target = "127.0.0.1:36790"
    @Option(help: "Coordinator HTTP address (host:port), or several comma-separated: HTTP submits (in turn) and the store check (the first).")
    var httpTarget = "127.0.0.1:36789"
    @Option(help: "Closed loop: concurrent clients. Open loop: most submits in flight (HTTP: connections).") var clients = 64
    @Option(help: "Open loop at this many sagas/s on a fixed schedule (0: closed loop).") var rate = 0.0
    @Option(help: "Seconds of load.") var seconds = 10.0
    @Option(help: "Submit with wait_result.") var waitResult = false
    @Option(help: "PID of the coordinator (comma-separated for several), to read their CPU time and memory from /proc.") var pid = "0"
    @Option(help: "Seconds to wait after the load for sagas still in flight.") var drain = 5.0
    @Option(help: "Gids to look up in the coordinator's store afterwards (GET /api/dtmsvr/query).") var verify = 20
    @Option(help: "Label of the run in the report (default: the scenario and load).") var label: String?
    @Flag(help: "Also print one tab-separated ROW line (for scripts/bench.sh).") var row = false
    @Option(
        help:
            "etcd host:port: register the branch service there under bench.rpc (as go-zero does) and submit gRPC sagas with etcd:// branch URLs (the coordinator needs MicroService.Driver dtm-driver-gozero)."
    )
    var etcd: String?

    func validate() throws {
        guard clients > 0 else { throw ValidationError("--clients must be positive") }
        guard rate >= 0, seconds > 0 else { throw ValidationError("--rate must be ≥ 0 and --seconds > 0") }
    }

    /// A comma-separated option as its non-empty parts (at least the option itself).
    static func list(_ option: String) -> [String] {
        let parts = option.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        return parts.isEmpty ? [option] : parts
    }

    func run() async throws {
        let clock = Timebase()
        let gidPrefix = "b\(String(UInt32.random(in: 0...UInt32.max), radix: 36))-"
        let counter = BranchCounter(gidPrefix: gidPrefix, clock: clock)
        let branches = try await BranchService.start(counter: counter)
        print(
            "branch service: gRPC 127.0.0.1:\(branches.grpcPort), HTTP 127.0.0.1:\(branches.httpPort); gids \(gidPrefix)<n>; allocator mimalloc \(mi_version())"
        )
        fflush(nil)  // also when stdout is a pipe: a script may read the ports while the load runs
        var busi = "127.0.0.1:\(branches.grpcPort)"
        var registration: Task<Void, Never>?
        var etcdClient: EtcdClient?
        if let etcd {
            let client = EtcdClient(configuration: .init(hosts: [etcd]), logger: Logger(label: "dtm-bench"))
            let publisher = ServicePublisher(client: client, key: "bench.rpc", value: busi, logger: Logger(label: "dtm-bench"))
            registration = Task { await publisher.run() }
            let deadline = ContinuousClock.now + .seconds(10)
            while publisher.registeredKey == nil, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            guard publisher.registeredKey != nil else { throw ValidationError("could not register the branch service in etcd at \(etcd)") }
            print("branch service registered in etcd \(etcd) as \(publisher.registeredKey ?? "")")
            busi = "etcd://\(etcd)/bench.rpc"
            etcdClient = client
        }
        let load: any Scenario =
            switch scenario {
            case .grpc: try GRPCScenario(targets: Self.list(target), busi: busi, gidPrefix: gidPrefix, waitResult: waitResult)
            case .http: HTTPScenario(targets: Self.list(httpTarget), branchPort: branches.httpPort, gidPrefix: gidPrefix, waitResult: waitResult)
            }
        let mode: LoadMode = rate > 0 ? .open(rate: rate, inFlight: clients) : .closed(clients: clients)
        let label = self.label ?? (load.name + (rate > 0 ? " open \(fmt(rate, 0))/s" : " closed c=\(clients)"))

        let pids = Self.list(pid).compactMap { Int32($0) }.filter { $0 > 0 }
        let cpuBefore = ProcStat.cpuSeconds(pids)
        let ownBefore = ProcStat.ownCPUSeconds()
        let machineBefore = ProcStat.machineTicks()
        let outcome = await runLoad(scenario: load, mode: mode, seconds: seconds, clock: clock)
        // Let in-flight sagas finish, bounded.
        let drainUntil = clock.now() + Int64(drain * 1e9)
        while counter.lastActionCalls < outcome.starts.count && clock.now() < drainUntil {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let cpuAfter = ProcStat.cpuSeconds(pids)
        let ownCPU = ProcStat.ownCPUSeconds() - ownBefore
        let steal = ProcStat.stealShare(from: machineBefore, to: ProcStat.machineTicks())
        let completion = Completion(load: outcome, arrivals: counter.snapshot())
        var cpu: Double?
        if let before = cpuBefore, let after = cpuAfter, completion.total > 0 { cpu = (after - before) / Double(completion.total) * 1e6 }
        let statuses = await StoreCheck.run(
            httpTarget: Self.list(httpTarget)[0], gids: StoreCheck.sample(outcome, count: verify, gidPrefix: gidPrefix))
        let report = Report(
            label: label, load: outcome, completion: completion, openLoop: rate > 0, cpuMicrosPerSaga: cpu,
            residentMiB: pids.isEmpty ? nil : pids.reduce(0) { $0 + ProcStat.residentMiB($1) },
            benchMicrosPerSaga: completion.total > 0 ? ownCPU / Double(completion.total) * 1e6 : nil, storeStatuses: statuses, branchTotals: counter.totals,
            stealShare: steal)
        report.printHuman()
        if row { report.printRow() }
        await load.shutdown()
        registration?.cancel()
        await registration?.value
        await etcdClient?.close()
        await branches.shutdown()
    }
}

import Glibc

/// CPU seconds (user + system) and resident memory of a process, from /proc.
enum ProcStat {
    static func read(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The CPU seconds of several processes together; nil if none can be read.
    static func cpuSeconds(_ pids: [Int32]) -> Double? {
        let each = pids.compactMap { cpuSeconds($0) }
        return each.isEmpty ? nil : each.reduce(0, +)
    }

    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard pid > 0, let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU seconds (user + system) of this process so far.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    static func residentMiB(_ pid: Int32) -> Int {
        guard let statm = read("/proc/\(pid)/statm") else { return 0 }
        let pages = Int(statm.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / (1024 * 1024)
    }

    /// The machine's CPU time counters (all CPUs, in clock ticks) from the first line of /proc/stat: the total and
    /// the part stolen by the hypervisor for other guests.
    static func machineTicks() -> (total: Double, steal: Double)? {
        guard let line = read("/proc/stat"), line.hasPrefix("cpu ") else { return nil }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
        guard values.count >= 8 else { return nil }
        return (values.prefix(8).reduce(0, +), values[7])
    }

    /// The share of CPU time stolen from this virtual machine between two `machineTicks()` readings.
    static func stealShare(from a: (total: Double, steal: Double)?, to b: (total: Double, steal: Double)?) -> Double? {
        guard let a, let b, b.total > a.total else { return nil }
        return (b.steal - a.steal) / (b.total - a.total)
    }
}

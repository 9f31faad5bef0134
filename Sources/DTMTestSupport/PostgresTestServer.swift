package import Foundation
import Glibc
import Synchronization

/// A private PostgreSQL cluster for tests: Debian's `postgresql` binaries, `initdb` into a temporary directory, the
/// server on a free loopback port, stopped by PID (fast shutdown) when the test process exits. As root, both run as
/// `nobody`, since the server refuses to run as root.
package final class PostgresTestServer: @unchecked Sendable {
    package let port: Int
    package let directory: URL
    package let user = "dtm"
    private let binDirectory: String
    private var process: Process?

    /// One cluster per test process, started on first use.
    package static let shared: Result<PostgresTestServer, any Error> = Result { try PostgresTestServer() }

    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    package init() throws {
        binDirectory = try Self.findBinaries()
        port = try LoopbackPort.free()
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-dtm-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { chown(directory.path, Self.nobody, Self.nobody) }
        try runToEnd("initdb", ["-D", dataDirectory, "-U", user, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        try start()
        Self.stopAtExit(self)
    }

    var dataDirectory: String { directory.appendingPathComponent("data").path }
    package var pid: pid_t { process?.processIdentifier ?? 0 }

    /// Starts the server (again, after `stop`) and waits until it accepts connections.
    package func start() throws {
        let p = try spawn(
            "postgres",
            [
                "-D", dataDirectory, "-p", String(port), "-k", directory.path, "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300", "-c", "shared_buffers=128MB",
            ], log: directory.appendingPathComponent("postgres.log"))
        process = p
        Self.running.withLock { $0[directory.path] = p.processIdentifier }
        for _ in 0..<400 {
            if (try? runToEnd("pg_isready", ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", "postgres"])) != nil { return }
            guard p.isRunning else { throw Failure(description: "postgres exited at start-up; see \(directory.path)/postgres.log") }
            usleep(50_000)
        }
        throw Failure(description: "postgres did not accept connections on port \(port)")
    }

    /// Fast shutdown (SIGINT): sessions are ended, the server checkpoints and exits.
    package func stop() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        process = nil
        Self.running.withLock { $0[directory.path] = 0 }
    }

    /// Runs SQL with psql against `database` and returns its output (unaligned, tuples only).
    @discardableResult
    package func psql(_ sql: String, database: String = "postgres") throws -> String {
        try runToEnd("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
    }

    /// A new empty database, named uniquely.
    package func createDatabase() throws -> String {
        let name = "t_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        try psql("CREATE DATABASE \(name)")
        return name
    }

    // MARK: - Processes

    private static let nobody: UInt32 = 65534

    private static func findBinaries() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        guard let newest = versions.last else {
            throw Failure(description: "PostgreSQL server not found in \(root): install Debian's postgresql (scripts/setup.sh does)")
        }
        return "\(root)/\(newest)/bin"
    }

    /// The command line, as `nobody` when we are root; setpriv execs, so the PID is the server's own.
    private func commandLine(_ program: String, _ arguments: [String]) -> (String, [String]) {
        let path = "\(binDirectory)/\(program)"
        guard getuid() == 0 else { return (path, arguments) }
        return ("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "--", path] + arguments)
    }

    private func spawn(_ program: String, _ arguments: [String], log: URL) throws -> Process {
        let (path, args) = commandLine(program, arguments)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    @discardableResult
    private func runToEnd(_ program: String, _ arguments: [String]) throws -> String {
        let (path, args) = commandLine(program, arguments)
        let (status, text) = try TestProcess.run(path, args, directory: directory)
        guard status == 0 else { throw Failure(description: "\(program) failed: \(text.suffix(2000))") }
        return text
    }

    // MARK: - Clean-up at exit

    /// Running servers by data directory: stopped and removed when the test process exits.
    private static let running = Mutex<[String: pid_t]>([:])

    private static let atExitRegistered = Mutex(false)

    private static func stopAtExit(_ server: PostgresTestServer) {
        let first = atExitRegistered.withLock { registered in
            defer { registered = true }
            return !registered
        }
        guard first else { return }
        atexit {
            for (directory, pid) in PostgresTestServer.running.withLock({ $0 }) {
                if pid > 0 && kill(pid, SIGINT) == 0 {
                    for _ in 0..<200 where kill(pid, 0) == 0 { usleep(20_000) }
                }
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }
}

import DTMTestSupport
import Foundation
import Glibc
import Synchronization

/// A private MariaDB server for tests: Debian's `mariadb-server`, `mariadb-install-db` into a temporary directory,
/// `mariadbd` on a free loopback port with its socket in that directory, stopped by PID when the test process exits
/// (or by `stop`), the directory removed. As root, both run as `nobody`. The tests connect as user `dtm` with a
/// password, over TCP, as a coordinator would.
final class MySQLTestServer: @unchecked Sendable {
    let port: Int
    let directory: URL
    let user = "dtm"
    let password = "dtm-test-pw"
    private var process: Process?

    /// One server per test process, started on first use.
    static let shared: Result<MySQLTestServer, any Error> = Result { try MySQLTestServer() }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init() throws {
        port = try LoopbackPort.free()
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("swift-dtm-mysql-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        Self.running.withLock { $0[directory.path] = 0 }
        Self.removeAtExit()
        if getuid() == 0 { chown(directory.path, Self.nobody, Self.nobody) }
        var install = ["--no-defaults", "--datadir=\(dataDirectory)", "--auth-root-authentication-method=normal", "--skip-test-db"]
        if getuid() == 0 { install.append("--user=nobody") }
        try runToEnd("/usr/bin/mariadb-install-db", install, asServer: true)
        try start()
        try sql("CREATE USER '\(user)'@'%' IDENTIFIED BY '\(password)'; GRANT ALL ON *.* TO '\(user)'@'%'")
    }

    var dataDirectory: String { directory.appendingPathComponent("data").path }
    var pid: pid_t { process?.processIdentifier ?? 0 }

    /// Starts the server (again, after `stop`) and waits until it accepts connections.
    func start() throws {
        let (path, args) = commandLine(
            "/usr/sbin/mariadbd",
            [
                "--no-defaults", "--datadir=\(dataDirectory)", "--port=\(port)", "--bind-address=127.0.0.1",
                "--socket=\(directory.path)/mysqld.sock", "--pid-file=\(directory.path)/mysqld.pid", "--skip-name-resolve",
                "--log-error=\(directory.path)/mysqld.log", "--max-connections=500", "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=1", "--skip-log-bin",
            ], asServer: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        Self.running.withLock { $0[directory.path] = p.processIdentifier }
        for _ in 0..<600 {
            // The socket the check uses may be up before the TCP port the tests use.
            if (try? sql("SELECT 1")) != nil && LoopbackPort.isAccepting(port) { return }
            guard p.isRunning else { throw Failure(description: "mariadbd exited at start-up; see \(directory.path)/mysqld.log") }
            usleep(50_000)
        }
        throw Failure(description: "mariadbd did not accept connections on port \(port)")
    }

    /// Normal shutdown (SIGTERM): the server flushes and exits.
    func stop() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        process = nil
        Self.running.withLock { $0[directory.path] = 0 }
    }

    /// Runs SQL with the `mariadb` client as root (over the server's private socket) and returns its output
    /// (tab-separated, no column names).
    @discardableResult
    func sql(_ text: String, database: String? = nil) throws -> String {
        var args = ["--no-defaults", "--socket=\(directory.path)/mysqld.sock", "-uroot", "-N", "-B", "-e", text]
        if let database { args.append(database) }
        return try runToEnd("/usr/bin/mariadb", args, asServer: false)
    }

    /// A new empty database, named uniquely.
    func createDatabase() throws -> String {
        let name = "t_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: ""))"
        try sql("CREATE DATABASE \(name) DEFAULT CHARACTER SET utf8mb4")
        return name
    }

    // MARK: - Processes

    private static let nobody: UInt32 = 65534

    /// The command line, as `nobody` when we are root (the server refuses root); setpriv execs, so the PID is the
    /// server's own.
    private func commandLine(_ path: String, _ arguments: [String], asServer: Bool) -> (String, [String]) {
        guard asServer && getuid() == 0 else { return (path, arguments) }
        return ("/usr/bin/setpriv", ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", "--", path] + arguments)
    }

    @discardableResult
    private func runToEnd(_ program: String, _ arguments: [String], asServer: Bool) throws -> String {
        let (path, args) = commandLine(program, arguments, asServer: asServer)
        let (status, text) = try TestProcess.run(path, args, directory: directory)
        guard status == 0 else { throw Failure(description: "\(program) failed: \(text.suffix(2000))") }
        return text
    }

    // MARK: - Clean-up at exit

    /// Servers by directory (0: not running): stopped and their directories removed when the test process exits.
    private static let running = Mutex<[String: pid_t]>([:])
    private static let atExitRegistered = Mutex(false)

    private static func removeAtExit() {
        let first = atExitRegistered.withLock { registered in
            defer { registered = true }
            return !registered
        }
        guard first else { return }
        atexit {
            for (directory, pid) in MySQLTestServer.running.withLock({ $0 }) {
                if pid > 0 && kill(pid, SIGTERM) == 0 {
                    for _ in 0..<500 where kill(pid, 0) == 0 { usleep(20_000) }
                }
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }
}

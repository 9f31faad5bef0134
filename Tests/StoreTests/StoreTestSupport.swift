import Logging
import DTMCore
import DTMTestSupport
import Foundation
import MySQLStore
import PostgresStore
@testable import SQLiteStore
import Testing

/// Every store the contract is checked against, and the test data the contract suites share.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, sqlite, postgres, mysql
    var testDescription: String { rawValue }

    func make() async throws -> any TransactionStore {
        switch self {
        case .memory: return InMemoryStore()
        case .sqlite: return try SQLiteStore(path: TempDB.path(), logger: Logger(label: "test"))
        case .postgres: return try await PostgresStore.open(try TempDB.postgres(), logger: Logger(label: "test"))
        case .mysql: return try await MySQLStore.open(try TempDB.mysql(), logger: Logger(label: "test"))
        }
    }

    /// A fresh store of this kind for `body`, closed afterwards whatever happens.
    func withStore<R>(_ body: (any TransactionStore) async throws -> R) async throws -> R {
        let store = try await make()
        do {
            let result = try await body(store)
            await Self.close(store)
            return result
        } catch {
            await Self.close(store)
            throw error
        }
    }

    static func close(_ store: any TransactionStore) async {
        if let s = store as? SQLiteStore { s.close() }
        if let s = store as? PostgresStore { await s.close() }
        if let s = store as? MySQLStore { await s.close() }
    }

    /// A time as the store gives it back: DTM's PostgreSQL and MySQL columns hold whole seconds.
    func stored(_ t: Timestamp) -> Timestamp {
        guard self == .postgres || self == .mysql else { return t }
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return Timestamp(microseconds: (q + (r >= 500_000 ? 1 : r <= -500_000 ? -1 : 0)) * 1_000_000)
    }

    /// A due time (`next_cron_time`) as the store gives it back: PostgreSQL and MySQL round it up to the whole second,
    /// so that a delay or lease never ends early.
    func storedDue(_ t: Timestamp) -> Timestamp {
        guard self == .postgres || self == .mysql else { return t }
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return Timestamp(microseconds: (q + (r > 0 ? 1 : 0)) * 1_000_000)
    }

    func stored(_ t: GlobalTransaction) -> GlobalTransaction {
        var t = t
        t.createTime = stored(t.createTime)
        t.updateTime = stored(t.updateTime)
        t.finishTime = t.finishTime.map { stored($0) }
        t.rollbackTime = t.rollbackTime.map { stored($0) }
        t.nextCronTime = t.nextCronTime.map { storedDue($0) }
        return t
    }

    func stored(_ b: Branch) -> Branch {
        var b = b
        b.createTime = stored(b.createTime)
        b.updateTime = stored(b.updateTime)
        b.finishTime = b.finishTime.map { stored($0) }
        b.rollbackTime = b.rollbackTime.map { stored($0) }
        return b
    }
}

enum TempDB {
    /// A fresh SQLite file's path, in a directory removed when the test process exits.
    static func path() throws -> String {
        try TemporaryDirectory.processScoped(prefix: "swift-dtm-tests").file("dtm.sqlite")
    }

    /// A fresh schema on the test process's PostgreSQL cluster (or on `server`).
    static func postgres(on server: PostgresTestServer? = nil) throws -> PostgresStoreConfiguration {
        let server = try server ?? PostgresTestServer.shared.get()
        var c = PostgresStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.database = "postgres"
        c.schema = "s_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        c.writerConnections = 2
        c.readerConnections = 1
        return c
    }

    /// A fresh database on the test process's MariaDB server (or on `server`).
    static func mysql(on server: MySQLTestServer? = nil) throws -> MySQLStoreConfiguration {
        let server = try server ?? MySQLTestServer.shared.get()
        var c = MySQLStoreConfiguration()
        c.port = server.port
        c.user = server.user
        c.password = server.password
        c.database = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        c.writerConnections = 2
        c.readerConnections = 1
        // The whole suite starts its database servers at once on two cores: a handshake may take longer than 5 s.
        c.connectTimeoutSeconds = 30
        return c
    }
}

let t0 = Timestamp(microseconds: 1_800_000_000_123_456)

func sampleTransaction(_ gid: String, status: GlobalStatus = .submitted) -> GlobalTransaction {
    var t = GlobalTransaction(gid: gid, transType: .saga, status: status, createTime: t0)
    t.queryPrepared = "http://127.0.0.1:1/qp"
    t.transProtocol = "grpc"
    t.updateTime = t0.adding(seconds: 1)
    t.finishTime = t0.adding(seconds: 2)
    t.rollbackTime = t0.adding(seconds: 3)
    t.options.waitResult = true
    t.options.timeoutToFail = 60
    t.options.requestTimeout = 7
    t.options.retryInterval = 11
    t.options.branchHeaders = ["h1": "v1", "h2": "v \"2\"", "h\\3": "line\nbreak\t\u{1}é😀"]
    t.options.concurrent = true
    t.options.retryLimit = 4
    t.options.retryCount = 2
    t.customData = #"{"orders":{"1":[0]},"concurrent":true}"#
    t.nextCronInterval = 20
    t.nextCronTime = t0.adding(seconds: 20)
    t.owner = "o1"
    t.extData = #"{"headers":{}}"#
    t.result = "cmVzdWx0"
    t.rollbackReason = "because ' \" ; -- DROP TABLE trans_global"
    return t
}

func sampleBranches(_ gid: String, count: Int = 2) -> [Branch] {
    (0..<count).flatMap { i in
        ["compensate", "action"].map { op in
            var b = Branch(
                gid: gid, url: "http://127.0.0.1:1/\(op)\(i)", binData: [0, 1, 2, 255, UInt8(i)], branchID: String(format: "%02d", i + 1), op: op,
                createTime: t0)
            b.updateTime = t0.adding(seconds: 1)
            return b
        }
    }
}

/// The two SQL stores, for what they share beyond the contract (`SQLStoreTests`): several coordinators on one
/// database, writes batched into shared statements and commits, DTM's column widths and time ranges, rows other
/// programs wrote, migrations, a server that goes away. What only one of them has stays in its own suite
/// (`MySQLStoreTests`, `PostgresTLSConfigurationTests`).
enum SQLStoreKind: String, CaseIterable, CustomTestStringConvertible {
    case postgres, mysql
    var testDescription: String { rawValue }

    /// DTM's name for the store, as the stores' messages say it.
    var name: String {
        switch self {
        case .postgres: return "PostgreSQL"
        case .mysql: return "MySQL"
        }
    }

    /// A fresh schema of the test process's PostgreSQL cluster, or a fresh database of its MariaDB server.
    func freshDatabase() throws -> SQLTestDatabase {
        switch self {
        case .postgres: return .postgres(try TempDB.postgres(), try PostgresTestServer.shared.get())
        case .mysql: return .mysql(try TempDB.mysql(), try MySQLTestServer.shared.get())
        }
    }

    /// A fresh schema or database on a server of its own, which the test may stop and start.
    func databaseOnPrivateServer() throws -> SQLTestDatabase {
        switch self {
        case .postgres:
            let server = try PostgresTestServer()
            return .postgres(try TempDB.postgres(on: server), server)
        case .mysql:
            let server = try MySQLTestServer()
            return .mysql(try TempDB.mysql(on: server), server)
        }
    }

    /// Whether `error` is the store's own error type (`PostgresStoreError`, `MySQLStoreError`).
    func isStoreError(_ error: any Error) -> Bool {
        switch self {
        case .postgres: return error is PostgresStoreError
        case .mysql: return error is MySQLStoreError
        }
    }

    /// Whether the store refuses `name` as a configured table name (`PostgresTables.Invalid`, `MySQLTables.Invalid`).
    func refusesTableName(_ name: String) -> Bool {
        do {
            switch self {
            case .postgres: _ = try PostgresTables(global: name)
            case .mysql: _ = try MySQLTables(global: name)
            }
            return false
        } catch {
            return error is PostgresTables.Invalid || error is MySQLTables.Invalid
        }
    }
}

/// What the tests use of the SQL stores beyond the contract.
protocol SQLTestStore: TransactionStore {
    /// How many transactions the store's writers committed.
    var commitCount: Int { get }
    func close() async
}

extension PostgresStore: SQLTestStore {}
extension MySQLStore: SQLTestStore {}

/// Where a SQL store under test keeps its tables — a schema of a PostgreSQL cluster or a database of a MariaDB
/// server — with that server, for SQL of its own beside the store's and for stopping and starting it.
enum SQLTestDatabase {
    case postgres(PostgresStoreConfiguration, PostgresTestServer)
    case mysql(MySQLStoreConfiguration, MySQLTestServer)

    /// The schema's or the database's name.
    var name: String {
        switch self {
        case .postgres(let c, _): return c.schema
        case .mysql(let c, _): return c.database
        }
    }

    func open(reset: Bool = false) async throws -> any SQLTestStore {
        switch self {
        case .postgres(let c, _): return try await PostgresStore.open(c, reset: reset, logger: Logger(label: "test"))
        case .mysql(let c, _): return try await MySQLStore.open(c, reset: reset, logger: Logger(label: "test"))
        }
    }

    /// Uses configured table names (`Store.TransGlobalTable`, `Store.TransBranchOpTable`).
    mutating func useTables(global: String, branch: String) throws {
        switch self {
        case .postgres(var c, let server):
            c.tables = try PostgresTables(global: global, branch: branch)
            self = .postgres(c, server)
        case .mysql(var c, let server):
            c.tables = try MySQLTables(global: global, branch: branch)
            self = .mysql(c, server)
        }
    }

    /// Runs SQL in the schema or database as the server's administrator (psql, mariadb) and returns its output
    /// trimmed: a row a line, columns separated by tabs (psql's `|` becomes a tab, as the mariadb client writes them).
    @discardableResult
    func sql(_ text: String) throws -> String {
        switch self {
        case .postgres(let c, let server):
            var out = try server.psql("SET search_path TO \(c.schema); \(text)")
            if out.hasPrefix("SET\n") { out.removeFirst(4) }
            return out.replacingOccurrences(of: "|", with: "\t").trimmingCharacters(in: .whitespacesAndNewlines)
        case .mysql(let c, let server):
            return try server.sql(text, database: c.database).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    func stopServer() {
        switch self {
        case .postgres(_, let server): server.stop()
        case .mysql(_, let server): server.stop()
        }
    }

    func startServer() throws {
        switch self {
        case .postgres(_, let server): try server.start()
        case .mysql(_, let server): try server.start()
        }
    }
}

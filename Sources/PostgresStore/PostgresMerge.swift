import DTMCore
import NIOCore
import PostgresNIO

/// A write that can share one statement with writes of the same kind on other transactions: the writer turns a
/// batch's saves, status changes and branch updates into one statement per kind (`unnest` of one array per column,
/// `WITH ORDINALITY` to read each write's outcome back), so that a commit of many sagas costs a few round trips
/// instead of one per write.
struct PostgresMergeable: Sendable {
    enum Kind: Int, CaseIterable, Sendable {
        case saveNew, changeStatus, updateBranch

        /// Column types of one write; a statement binds one array per column.
        var columns: [PostgresDataType] {
            switch self {
            case .saveNew:
                [
                    .text, .text, .text, .text, .text, .timestamptz, .timestamptz, .timestamptz, .timestamptz, .text, .text, .int8,
                    .timestamptz, .text, .text, .text, .text,
                ]
            case .changeStatus: [.text, .text, .text, .timestamptz, .timestamptz, .timestamptz, .text, .text]
            case .updateBranch: [.text, .text, .text, .text, .text, .timestamptz, .timestamptz]
            }
        }

        /// Column types of the rows a write brings along (saveNew's branches: gid first).
        var childColumns: [PostgresDataType] {
            switch self {
            case .saveNew: [.text, .text, .bytea, .text, .text, .text, .timestamptz, .timestamptz, .timestamptz, .timestamptz]
            case .changeStatus, .updateBranch: []
            }
        }
    }

    let kind: Kind
    let gid: String
    /// One value per `kind.columns`.
    let columns: [PostgresDatum]
    /// One row per child, each with one value per `kind.childColumns`.
    let children: [[PostgresDatum]]
    /// What the write's values weigh, for the writer's queue bound.
    var byteCount: Int { (columns + children.joined()).reduce(0) { $0 + max($1.encodedLength, 0) } }

    /// The write's answer from the two flags its statement returns for it.
    let verdict: @Sendable (_ first: Bool, _ second: Bool) -> (any Error)?
}

/// One value of a write, encoded straight into a parameter or an array element (no buffer of its own).
enum PostgresDatum: Sendable {
    case null
    case text(String)
    case int(Int64)
    case time(Timestamp)
    case bytes([UInt8])

    /// A time, or NULL.
    static func at(_ t: Timestamp?) -> PostgresDatum { t.map { .time($0) } ?? .null }

    /// The length of the encoding, -1 for NULL (as an array element's length prefix).
    var encodedLength: Int {
        switch self {
        case .null: -1
        case .text(let s): s.utf8.count
        case .int, .time: 8
        case .bytes(let b): b.count
        }
    }

    /// The binary encoding (`timestamptz`: microseconds since 2000, clamped; see `PostgresTime`).
    func write(to buffer: inout ByteBuffer) {
        switch self {
        case .null: break
        case .text(let s): buffer.writeString(s)
        case .int(let v): buffer.writeInteger(v)
        case .time(let t): buffer.writeInteger(PostgresTime.encode(t))
        case .bytes(let b): buffer.writeBytes(b)
        }
    }

    static func arrayType(of element: PostgresDataType) -> PostgresDataType {
        switch element {
        case .bytea: .byteaArray
        case .int8: .int8Array
        case .timestamptz: .timestamptzArray
        default: .textArray
        }
    }

    static func sqlType(of element: PostgresDataType) -> String {
        switch element {
        case .bytea: "bytea"
        case .int8: "int8"
        case .timestamptz: "timestamptz"
        default: "text"
        }
    }
}

/// The statements that run many writes of one kind at once, and their parameters.
enum PostgresMergedSQL {
    /// `unnest($from::t1[], …) WITH ORDINALITY AS alias(names…, n)`.
    private static func unnest(_ types: [PostgresDataType], from: Int, alias: String, names: [String]) -> String {
        let arrays = types.enumerated().map { "$\(from + $0.offset)::\(PostgresDatum.sqlType(of: $0.element))[]" }
        return "unnest(\(arrays.joined(separator: ", "))) WITH ORDINALITY AS \(alias)(\(names.joined(separator: ", ")), n)"
    }

    static func text(_ kind: PostgresMergeable.Kind, _ t: PostgresTables) -> String {
        let g = t.global
        let b = t.branch
        switch kind {
        case .saveNew:
            let names = [
                "gid", "trans_type", "status", "query_prepared", "protocol", "create_time", "update_time", "finish_time", "rollback_time",
                "options", "custom_data", "next_cron_interval", "next_cron_time", "owner", "ext_data", "result", "rollback_reason",
            ]
            let childNames = ["gid", "url", "bin_data", "branch_id", "op", "status", "finish_time", "rollback_time", "create_time", "update_time"]
            return """
                WITH x AS (SELECT * FROM \(unnest(kind.columns, from: 1, alias: "x", names: names))),
                g AS (INSERT INTO \(g) (\(names.joined(separator: ", ")))
                  SELECT \(names.joined(separator: ", ")) FROM x ORDER BY n ON CONFLICT (gid) DO NOTHING RETURNING gid),
                b AS (INSERT INTO \(b) (\(childNames.joined(separator: ", ")))
                  SELECT \(childNames.map { "u.\($0)" }.joined(separator: ", "))
                  FROM \(unnest(kind.childColumns, from: 1 + names.count, alias: "u", names: childNames))
                  WHERE u.gid IN (SELECT gid FROM g) ORDER BY u.n ON CONFLICT DO NOTHING RETURNING 1)
                SELECT x.n, x.gid IN (SELECT gid FROM g), true FROM x ORDER BY x.n
                """
        case .changeStatus:
            let names = ["gid", "from_status", "to_status", "now", "finish_time", "rollback_time", "rollback_reason", "result"]
            return """
                WITH x AS (SELECT * FROM \(unnest(kind.columns, from: 1, alias: "x", names: names))),
                g AS (UPDATE \(g) t SET status = x.to_status, update_time = x.now,
                    finish_time = coalesce(x.finish_time, t.finish_time), rollback_time = coalesce(x.rollback_time, t.rollback_time),
                    rollback_reason = coalesce(x.rollback_reason, t.rollback_reason), result = coalesce(x.result, t.result)
                  FROM x WHERE t.gid = x.gid AND t.status = x.from_status RETURNING x.n)
                SELECT x.n, x.n IN (SELECT n FROM g), true FROM x ORDER BY x.n
                """
        case .updateBranch:
            let names = ["gid", "requiring", "branch_id", "op", "status", "finish_time", "now"]
            // FOR SHARE, as the single statement: waits for a status change in flight and sees its outcome.
            return """
                WITH x AS (SELECT * FROM \(unnest(kind.columns, from: 1, alias: "x", names: names))),
                g AS (SELECT t.gid FROM \(g) t JOIN x ON t.gid = x.gid AND t.status = x.requiring FOR SHARE OF t),
                b AS (UPDATE \(b) t SET status = x.status, finish_time = x.finish_time, update_time = x.now
                  FROM x WHERE t.gid = x.gid AND t.branch_id = x.branch_id AND t.op = x.op AND x.gid IN (SELECT gid FROM g) RETURNING x.n)
                SELECT x.n, x.gid IN (SELECT gid FROM g), x.n IN (SELECT n FROM b) FROM x ORDER BY x.n
                """
        }
    }

    /// The arrays of a group of writes of one kind.
    static func values(_ kind: PostgresMergeable.Kind, _ writes: [PostgresMergeable]) -> [PostgresValue] {
        var values = kind.columns.enumerated().map { column, type in
            PostgresValue.array(writes.map { $0.columns[column] }, elementType: type)
        }
        let children = writes.flatMap(\.children)
        values += kind.childColumns.enumerated().map { column, type in
            PostgresValue.array(children.map { $0[column] }, elementType: type)
        }
        return values
    }
}

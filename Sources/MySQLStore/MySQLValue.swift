import DTMCore

/// A bound parameter of a prepared statement. Every value a statement uses is one of these; no value is ever
/// written into SQL text.
enum MySQLValue: Sendable {
    case null
    case text(String)
    case int(Int64)
    case bytes([UInt8])
    /// A time, as the column stores it (`MySQLTime.encode`).
    case time(MySQLDateTime)

    /// A time, or NULL.
    static func at(_ t: Timestamp?) -> MySQLValue { t.map { .time(MySQLTime.encode($0)) } ?? .null }
    /// A due time (`next_cron_time`), rounded up to the whole second, or NULL.
    static func due(_ t: Timestamp?) -> MySQLValue { t.map { .time(MySQLTime.encodeDue($0)) } ?? .null }
    /// A time to compare columns with, to the microsecond, or NULL.
    static func instant(_ t: Timestamp?) -> MySQLValue { t.map { .time(MySQLTime.encodeExact($0)) } ?? .null }
    static func optionalText(_ s: String?) -> MySQLValue { s.map { .text($0) } ?? .null }

    /// What the value weighs, for the writer's queue bound.
    var byteCount: Int {
        switch self {
        case .null: 0
        case .text(let s): s.utf8.count
        case .int: 8
        case .bytes(let b): b.count
        case .time: 16
        }
    }
}

/// One column of a result row, as the client library gave it.
enum MySQLCell: Sendable {
    case null
    case int(Int64)
    case bytes([UInt8])
    case time(MySQLDateTime)
}

/// A result row read by position. Types are checked against what the column holds, so a table changed by hand
/// reads as an `UnreadableRow`, not as a crash or a wrong value.
struct MySQLColumns {
    let cells: [MySQLCell]
    let gid: String

    init(_ cells: [MySQLCell], gidColumn: Int? = nil) {
        self.cells = cells
        if let gidColumn, gidColumn < cells.count, case .bytes(let b) = cells[gidColumn] {
            gid = String(decoding: b, as: UTF8.self)
        } else {
            gid = ""
        }
    }

    private func cell(_ i: Int) throws -> MySQLCell {
        guard i < cells.count else { throw UnreadableRow(gid: gid, problem: "result has \(cells.count) columns, wanted \(i + 1)") }
        return cells[i]
    }

    func text(_ i: Int) throws -> String {
        switch try cell(i) {
        case .null: return ""
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        case .int(let v): return String(v)
        case .time: throw UnreadableRow(gid: gid, problem: "column \(i) is a time, not text")
        }
    }

    func optionalInt(_ i: Int) throws -> Int64? {
        switch try cell(i) {
        case .null: return nil
        case .int(let v): return v
        case .bytes, .time: throw UnreadableRow(gid: gid, problem: "column \(i) is not an integer")
        }
    }

    func int(_ i: Int) throws -> Int64 { try optionalInt(i) ?? 0 }

    func time(_ i: Int) throws -> Timestamp? {
        switch try cell(i) {
        case .null: return nil
        case .time(let d): return MySQLTime.decode(d)
        case .int, .bytes: throw UnreadableRow(gid: gid, problem: "column \(i) is not a datetime")
        }
    }

    func bytes(_ i: Int) throws -> [UInt8] {
        switch try cell(i) {
        case .null: return []
        case .bytes(let b): return b
        case .int, .time: throw UnreadableRow(gid: gid, problem: "column \(i) is not binary")
        }
    }
}

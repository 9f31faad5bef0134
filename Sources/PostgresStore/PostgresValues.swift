import DTMCore
import NIOCore
import PostgresNIO

/// Bound parameters in PostgreSQL's binary format, built from model values. Every statement casts its parameters
/// (`$1::text`, `$2::int8`, …), so the server's inferred types are exactly these and nothing is converted on the way.
struct PostgresValue: Sendable {
    let data: PostgresData

    static let null = PostgresValue(.null, type: .text)

    init(_ cell: PostgresDatum, type: PostgresDataType) {
        var buffer: ByteBuffer?
        if case .null = cell {
            buffer = nil
        } else {
            var b = ByteBuffer()
            cell.write(to: &b)
            buffer = b
        }
        data = PostgresData(type: type, formatCode: .binary, value: buffer)
    }

    /// The values of a write's columns (`PostgresMergeable`), for the statement that runs it alone.
    static func of(_ write: PostgresMergeable) -> [PostgresValue] {
        zip(write.columns, write.kind.columns).map { PostgresValue($0, type: $1) }
    }

    static func text(_ s: String) -> PostgresValue { PostgresValue(.text(s), type: .text) }
    static func int(_ v: Int64) -> PostgresValue { PostgresValue(.int(v), type: .int8) }
    static func time(_ t: Timestamp?) -> PostgresValue { PostgresValue(.at(t), type: .timestamptz) }
    /// A due time (`next_cron_time`): DTM's column holds whole seconds and the server rounds to the nearest, which
    /// would make a delay, retry interval, back-off or lease end up to half a second early; rounded up here instead.
    static func due(_ t: Timestamp?) -> PostgresValue { time(t.map(\.wholeSecondUp)) }

    /// A one-dimensional array (binary array format: dimensions, null flag, element type, then length-prefixed
    /// elements), written in one buffer.
    static func array(_ cells: [PostgresDatum], elementType: PostgresDataType) -> PostgresValue {
        let lengths = cells.map(\.encodedLength)
        var b = ByteBuffer()
        b.reserveCapacity(20 + lengths.reduce(0) { $0 + 4 + max($1, 0) })
        b.writeInteger(Int32(cells.isEmpty ? 0 : 1))
        b.writeInteger(Int32(lengths.contains(-1) ? 1 : 0))
        b.writeInteger(elementType.rawValue)
        if !cells.isEmpty {
            b.writeInteger(Int32(clamping: cells.count))
            b.writeInteger(Int32(1))
        }
        for (cell, length) in zip(cells, lengths) {
            b.writeInteger(Int32(clamping: length))
            cell.write(to: &b)
        }
        return PostgresValue(data: PostgresData(type: PostgresDatum.arrayType(of: elementType), formatCode: .binary, value: b))
    }

    private init(data: PostgresData) { self.data = data }

    static func texts(_ v: [String]) -> PostgresValue { array(v.map { .text($0) }, elementType: .text) }
    static func byteArrays(_ v: [[UInt8]]) -> PostgresValue { array(v.map { .bytes($0) }, elementType: .bytea) }
    static func times(_ v: [Timestamp?]) -> PostgresValue { array(v.map { .at($0) }, elementType: .timestamptz) }

    /// The bytes a value puts on the wire, for the writer's queue bound.
    var byteCount: Int { data.value?.readableBytes ?? 0 }
}

/// `timestamptz` on the wire: microseconds since 2000-01-01 UTC. Model times are clamped into the range the server
/// accepts (4713 BC to 294276 AD) so that no stored or client-given time can make a write fail.
enum PostgresTime {
    static let epochOffset: Int64 = 946_684_800_000_000
    /// The server's bounds, one second inside so that its rounding to whole seconds (`timestamptz(0)`) stays in range.
    static let minimum: Int64 = -211_813_488_000_000_000 + 1_000_000
    static let maximum: Int64 = 9_223_371_331_200_000_000 - 1_000_000

    static func encode(_ t: Timestamp) -> Int64 {
        min(max(Saturating.subtract(t.microseconds, epochOffset), minimum), maximum)
    }

    static func decode(_ v: Int64) -> Timestamp { Timestamp(microseconds: Saturating.add(v, epochOffset)) }
}

/// A result column read by position, in the binary format postgres-nio asks for (a prepared statement's row
/// description says text, so the format field is not consulted). Types are checked against what the column holds,
/// so a table changed by hand reads as an `UnreadableRow`, not as a crash or a wrong value.
struct PostgresColumns {
    let cells: PostgresRandomAccessRow
    let gid: String

    init(_ row: PostgresRow, gidColumn: Int? = nil) {
        cells = row.makeRandomAccess()
        if let gidColumn, gidColumn < cells.count, let b = cells[gidColumn].bytes {
            gid = String(buffer: b)
        } else {
            gid = ""
        }
    }

    private func cell(_ i: Int) throws -> PostgresCell {
        guard i < cells.count else { throw UnreadableRow(gid: gid, problem: "result has \(cells.count) columns, wanted \(i + 1)") }
        return cells[i]
    }

    func text(_ i: Int) throws -> String {
        guard let b = try cell(i).bytes else { return "" }
        return String(buffer: b)
    }

    func optionalInt(_ i: Int) throws -> Int64? {
        let c = try cell(i)
        guard var b = c.bytes else { return nil }
        switch b.readableBytes {
        case 8: return b.readInteger(as: Int64.self)
        case 4: return b.readInteger(as: Int32.self).map(Int64.init)
        case 2: return b.readInteger(as: Int16.self).map(Int64.init)
        default: throw UnreadableRow(gid: gid, problem: "column \(c.columnName) is not an integer")
        }
    }

    func int(_ i: Int) throws -> Int64 { try optionalInt(i) ?? 0 }

    func bool(_ i: Int) throws -> Bool {
        let c = try cell(i)
        guard let b = c.bytes, b.readableBytes == 1, let v = b.getInteger(at: b.readerIndex, as: UInt8.self) else {
            throw UnreadableRow(gid: gid, problem: "column \(c.columnName) is not a boolean")
        }
        return v != 0
    }

    func time(_ i: Int) throws -> Timestamp? {
        let c = try cell(i)
        guard var b = c.bytes else { return nil }
        guard c.dataType == .timestamptz || c.dataType == .timestamp, b.readableBytes == 8, let v = b.readInteger(as: Int64.self) else {
            throw UnreadableRow(gid: gid, problem: "column \(c.columnName) is not a timestamp")
        }
        return PostgresTime.decode(v)
    }

    func bytes(_ i: Int) throws -> [UInt8] {
        guard let b = try cell(i).bytes else { return [] }
        return Array(b.readableBytesView)
    }
}

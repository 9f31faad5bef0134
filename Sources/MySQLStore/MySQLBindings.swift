internal import CMariaDB

/// Parameter buffers for one execution: each value copied into memory that lives until `free`, and the
/// `MYSQL_BIND` array pointing at it (the library copies the array, not the buffers).
struct MySQLBindings {
    var binds: [MYSQL_BIND]
    private let data: UnsafeMutableRawPointer
    private let times: UnsafeMutablePointer<MYSQL_TIME>

    init(_ values: [MySQLValue]) {
        var size = 0
        var timeCount = 0
        for v in values {
            switch v {
            case .time: timeCount += 1
            default: size += (v.byteCount + 7) & ~7
            }
        }
        data = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 8)
        times = UnsafeMutablePointer<MYSQL_TIME>.allocate(capacity: max(timeCount, 1))
        binds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: values.count)
        var offset = 0
        var timeIndex = 0
        for (i, value) in values.enumerated() {
            switch value {
            case .null:
                binds[i].buffer_type = MYSQL_TYPE_NULL
            case .int(let v):
                (data + offset).storeBytes(of: v, as: Int64.self)
                binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                binds[i].buffer = data + offset
                binds[i].buffer_length = 8
                offset += 8
            case .text(let s):
                var s = s
                let n = s.withUTF8 { utf8 -> Int in
                    if let base = utf8.baseAddress { (data + offset).copyMemory(from: base, byteCount: utf8.count) }
                    return utf8.count
                }
                binds[i].buffer_type = MYSQL_TYPE_STRING
                binds[i].buffer = data + offset
                binds[i].buffer_length = UInt(n)
                offset += (n + 7) & ~7
            case .bytes(let b):
                b.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { (data + offset).copyMemory(from: base, byteCount: raw.count) }
                }
                binds[i].buffer_type = MYSQL_TYPE_BLOB
                binds[i].buffer = data + offset
                binds[i].buffer_length = UInt(b.count)
                offset += (b.count + 7) & ~7
            case .time(let d):
                var t = MYSQL_TIME()
                t.year = UInt32(clamping: d.year)
                t.month = UInt32(clamping: d.month)
                t.day = UInt32(clamping: d.day)
                t.hour = UInt32(clamping: d.hour)
                t.minute = UInt32(clamping: d.minute)
                t.second = UInt32(clamping: d.second)
                t.second_part = UInt(clamping: d.microsecond)
                t.time_type = MYSQL_TIMESTAMP_DATETIME
                (times + timeIndex).initialize(to: t)
                binds[i].buffer_type = MYSQL_TYPE_DATETIME
                binds[i].buffer = UnsafeMutableRawPointer(times + timeIndex)
                binds[i].buffer_length = UInt(MemoryLayout<MYSQL_TIME>.size)
                timeIndex += 1
            }
        }
    }

    func free() {
        data.deallocate()
        times.deallocate()
    }
}

/// Result buffers for the rows of one execution, sized from the buffered result's longest values.
struct MySQLResultBuffers {
    enum Kind {
        case int
        case time
        case bytes(Int)

        init(_ field: MYSQL_FIELD) {
            switch field.type {
            case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_INT24, MYSQL_TYPE_YEAR: self = .int
            case MYSQL_TYPE_DATETIME, MYSQL_TYPE_TIMESTAMP, MYSQL_TYPE_DATE, MYSQL_TYPE_DATETIME2, MYSQL_TYPE_TIMESTAMP2: self = .time
            default: self = .bytes(Int(clamping: field.max_length))
            }
        }
    }

    var binds: [MYSQL_BIND]
    private let kinds: [Kind]
    private let ints: UnsafeMutablePointer<Int64>
    private let times: UnsafeMutablePointer<MYSQL_TIME>
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private let data: UnsafeMutableRawPointer
    private let offsets: [Int]

    init(_ kinds: [Kind]) {
        self.kinds = kinds
        let n = kinds.count
        ints = .allocate(capacity: n)
        times = .allocate(capacity: n)
        lengths = .allocate(capacity: n)
        lengths.initialize(repeating: 0, count: n)
        nulls = .allocate(capacity: n)
        nulls.initialize(repeating: 0, count: n)
        var offsets: [Int] = []
        var size = 0
        for kind in kinds {
            offsets.append(size)
            if case .bytes(let max) = kind { size += (max + 8) & ~7 }
        }
        self.offsets = offsets
        data = .allocate(byteCount: max(size, 8), alignment: 8)
        binds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: n)
        for (i, kind) in kinds.enumerated() {
            binds[i].length = lengths + i
            binds[i].is_null = nulls + i
            switch kind {
            case .int:
                binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                binds[i].buffer = UnsafeMutableRawPointer(ints + i)
                binds[i].buffer_length = 8
            case .time:
                binds[i].buffer_type = MYSQL_TYPE_DATETIME
                binds[i].buffer = UnsafeMutableRawPointer(times + i)
                binds[i].buffer_length = UInt(MemoryLayout<MYSQL_TIME>.size)
            case .bytes(let max):
                binds[i].buffer_type = MYSQL_TYPE_BLOB
                binds[i].buffer = data + offsets[i]
                binds[i].buffer_length = UInt(max + 1)
            }
        }
    }

    /// The current row's cells.
    func row() -> [MySQLCell] {
        kinds.enumerated().map { i, kind in
            if nulls[i] != 0 { return .null }
            switch kind {
            case .int: return .int(ints[i])
            case .time:
                let t = times[i]
                return .time(
                    MySQLDateTime(
                        year: Int32(clamping: t.year), month: Int32(clamping: t.month), day: Int32(clamping: t.day), hour: Int32(clamping: t.hour),
                        minute: Int32(clamping: t.minute), second: Int32(clamping: t.second)))
            case .bytes(let max):
                let n = min(Int(clamping: lengths[i]), max)
                return .bytes(Array(UnsafeRawBufferPointer(start: data + offsets[i], count: n)))
            }
        }
    }

    func free() {
        ints.deallocate()
        times.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        data.deallocate()
    }
}

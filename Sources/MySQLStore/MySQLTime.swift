import DTMCore
import Glibc

/// DTM's MySQL times: `datetime` columns (whole seconds, no zone) holding the local time of the process that wrote
/// them, as DTM's gorm DSN (`parseTime=true&loc=Local`) writes and reads them. The zone is this process's (`TZ`, or
/// the system's), so a coordinator shares rows with a DTM running in the same zone.
struct MySQLDateTime: Sendable, Equatable {
    var year: Int32
    var month: Int32
    var day: Int32
    var hour: Int32
    var minute: Int32
    var second: Int32
    /// Only in values compared with columns (`MySQLTime.encodeExact`); stored values are whole seconds.
    var microsecond: Int32 = 0
}

enum MySQLTime {
    /// The `datetime` range (1000-01-01 to 9999-12-31), a day inside it so that any zone's offset keeps it there.
    static let minimumSeconds: Int64 = -30_610_224_000 + 86_400
    static let maximumSeconds: Int64 = 253_402_300_799 - 86_400

    /// A time as the column stores it: the nearest whole second (as MySQL rounds; MariaDB would truncate, so the
    /// rounding is done here), clamped into the column's range, in local time.
    static func encode(_ t: Timestamp) -> MySQLDateTime { local(seconds: nearestSecond(t)) }

    /// A due time (`next_cron_time`): a delay, retry interval, back-off or lease is a lower bound, so it is
    /// rounded up to the whole second, never to the nearest.
    static func encodeDue(_ t: Timestamp) -> MySQLDateTime { local(seconds: t.wholeSecondUp.microseconds / 1_000_000) }

    /// A time to compare columns with, to the microsecond (a bound value, never stored), so that `due <= now`
    /// means what it says and no due time is taken for reached early.
    static func encodeExact(_ t: Timestamp) -> MySQLDateTime {
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        let (seconds, micro) = r < 0 ? (q - 1, r + 1_000_000) : (q, r)
        var d = local(seconds: seconds)
        if seconds >= minimumSeconds && seconds <= maximumSeconds { d.microsecond = Int32(micro) }
        return d
    }

    /// `t` rounded up to the whole second (unchanged when that would overflow).
    /// Whole seconds, rounded half away from zero.
    static func nearestSecond(_ t: Timestamp) -> Int64 {
        let (q, r) = t.microseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return q + (r >= 500_000 ? 1 : r <= -500_000 ? -1 : 0)
    }

    private static func local(seconds: Int64) -> MySQLDateTime {
        var clock = time_t(min(max(seconds, minimumSeconds), maximumSeconds))
        var parts = tm()
        guard localtime_r(&clock, &parts) != nil else { return MySQLDateTime(year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0) }
        return MySQLDateTime(
            year: parts.tm_year + 1900, month: parts.tm_mon + 1, day: parts.tm_mday, hour: parts.tm_hour, minute: parts.tm_min,
            second: min(parts.tm_sec, 59))
    }

    /// A stored local time as a timestamp; nil for MySQL's zero date (`0000-00-00`), which names no time.
    static func decode(_ d: MySQLDateTime) -> Timestamp? {
        guard d.month >= 1, d.month <= 12, d.day >= 1, d.day <= 31, d.year >= 1 else { return nil }
        var parts = tm()
        parts.tm_year = d.year - 1900
        parts.tm_mon = d.month - 1
        parts.tm_mday = d.day
        parts.tm_hour = d.hour
        parts.tm_min = d.minute
        parts.tm_sec = d.second
        parts.tm_isdst = -1
        let seconds = mktime(&parts)
        return Timestamp(microseconds: Saturating.multiply(Int64(seconds), 1_000_000))
    }
}

/// Explicit limits on what a client may send. Each one is checked at the boundary and answered with a
/// clear error naming the limit; the README documents them.
package struct Limits: Sendable, Equatable {
    /// Longest gid accepted (DTM's column is varchar(128)).
    package var maxGidLength = 128

    /// A gid as spans and log lines show it: one the validator may not have seen yet (a refused one can be as long as
    /// the body limit) is cut to DTM's column width.
    package static func shown(gid: String) -> String { String(gid.prefix(128)) }
    /// Most steps in one saga or msg.
    package var maxSteps = 1000
    /// Longest branch or check-back URL (DTM's column is varchar(1024)).
    package var maxURLLength = 1024
    /// Longest `custom_data` text.
    package var maxCustomDataLength = 64 * 1024
    /// Longest branch id (DTM's column is varchar(128)).
    package var maxBranchIDLength = 128
    /// Longest rollback reason stored.
    package var maxRollbackReasonLength = 1024
    /// Largest `timeout_to_fail`, `retry_interval` and `request_timeout`, seconds (100 years): larger ones
    /// overflowed the microsecond and millisecond arithmetic of cron times and branch call deadlines.
    package var maxOptionSeconds: Int64 = 100 * 365 * 24 * 3600
    /// Largest `retry_limit`: each retry is an immediate call in the same round, so a huge limit would make one
    /// transaction hammer its branch for the whole round. Stored values above it are capped when used.
    package var maxRetryLimit: Int64 = 100
    /// Most `branch_headers`, and their bytes (names and values): every branch call carries them, and a gRPC
    /// peer refuses metadata past 16 KiB anyway.
    package var maxBranchHeaders = 64
    package var maxBranchHeaderBytes = 16 * 1024
    /// Most subscribers of one topic.
    package var maxSubscribersPerTopic = 1000
    /// Longest topic name and subscriber remark (DTM's `kv.k` is varchar(128)).
    package var maxTopicLength = 128
    package var maxRemarkLength = 1024

    /// Most branch rows one transaction may have: a saga of `maxSteps` steps has twice as many; registered TCC, XA
    /// and workflow branches and a msg's topic subscribers count against the same bound.
    package var maxBranchRows: Int { 2 * maxSteps }

    package init() {}

    /// Characters a gid may contain: letters, digits and `-_.:@+=~`. Quotes, `;`, whitespace, control characters
    /// and anything else is refused, so a gid is always safe to log, to put in a URL query and to show in a UI.
    package static func isAllowedGidByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "@"),
            UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Validates a gid; the thrown message names the problem.
    package func checkGid(_ gid: String) throws(DTMError) {
        if gid.isEmpty { throw .invalidArgument("gid is missing or empty") }
        let bytes = gid.utf8
        if bytes.count > maxGidLength {
            throw .invalidArgument("gid is \(bytes.count) bytes long; the limit is \(maxGidLength)")
        }
        if let bad = bytes.first(where: { !Limits.isAllowedGidByte($0) }) {
            throw .invalidArgument(
                "gid contains the character \(Limits.describe(byte: bad)); allowed are letters, digits and -_.:@+=~")
        }
    }

    /// Validates the time options and branch headers of a request; the thrown message names the option.
    package func checkOptions(_ options: TransOptions) throws(DTMError) {
        for (name, value) in [
            ("timeout_to_fail", options.timeoutToFail), ("retry_interval", options.retryInterval),
            ("request_timeout", options.requestTimeout),
        ] {
            try checkSeconds(value, name)
        }
        if options.retryLimit < 0 || options.retryLimit > maxRetryLimit {
            throw .invalidArgument("retry_limit is \(options.retryLimit); it must be between 0 and \(maxRetryLimit)")
        }
        if options.branchHeaders.count > maxBranchHeaders {
            throw .invalidArgument("branch_headers has \(options.branchHeaders.count) entries; the limit is \(maxBranchHeaders)")
        }
        var bytes = 0
        for (name, value) in options.branchHeaders {
            if Limits.isReservedHeader(name) {
                throw .invalidArgument(
                    "branch_headers: header '\(name.prefix(64))' may not be set: the coordinator sets it (Host, Content-Length, Transfer-Encoding, Connection, TE, Upgrade, Keep-Alive, Proxy-* and pseudo-headers are refused)"
                )
            }
            if let problem = Limits.headerProblem(name: name, value: value) { throw .invalidArgument("branch_headers: \(problem)") }
            bytes += name.utf8.count + value.utf8.count
        }
        if bytes > maxBranchHeaderBytes {
            throw .invalidArgument("branch_headers hold \(bytes) bytes; the limit is \(maxBranchHeaderBytes)")
        }
    }

    /// A number of seconds from a request (an option or a `custom_data` value): 0 up to `maxOptionSeconds`.
    package func checkSeconds(_ value: Int64, _ name: String) throws(DTMError) {
        if value < 0 { throw .invalidArgument("\(name) is \(value) seconds; it must not be negative") }
        if value > maxOptionSeconds { throw .invalidArgument("\(name) is \(value) seconds; the limit is \(maxOptionSeconds)") }
    }

    /// Why `name: value` cannot be sent as an HTTP header (or gRPC metadata), or nil if it can: the name must be
    /// an HTTP token, the value must hold no control character other than tab. DTM accepts any and then fails the
    /// branch call on every retry; refusing it at submit keeps the transaction from being stored at all.
    package static func headerProblem(name: String, value: String) -> String? {
        if name.isEmpty { return "a header name is empty" }
        if let bad = name.utf8.first(where: { !isTokenByte($0) }) {
            return "header name '\(name.prefix(64))' contains the character \(describe(byte: bad))"
        }
        if let bad = value.utf8.first(where: { !isFieldValueByte($0) }) {
            return "the value of header '\(name.prefix(64))' contains the control character \(describe(byte: bad))"
        }
        return nil
    }

    /// Headers a branch call's `branch_headers` may not set: they choose the virtual host the allow-list never saw
    /// (`Host`), frame the request (`Content-Length`, `Transfer-Encoding`), or steer the connection and proxies
    /// (hop-by-hop headers, `Proxy-*`); `:`-names are HTTP/2 pseudo-headers.
    package static func isReservedHeader(_ name: String) -> Bool {
        if name.hasPrefix(":") { return true }
        let lower = name.lowercased()
        if lower.hasPrefix("proxy-") { return true }
        switch lower {
        case "host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "keep-alive", "trailer": return true
        default: return false
        }
    }

    /// RFC 9110 `tchar`: the bytes of a header name.
    package static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The bytes of a header value as HTTP clients accept them: no control character except tab.
    package static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || (b > 0x1F && b != 0x7F)
    }

    static func describe(byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7f { return "'\(Character(UnicodeScalar(byte)))'" }
        return "0x" + String(byte, radix: 16)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
package import Logging

extension Logger.Level {
    /// DTM's `LogLevel` values.
    init(dtmName: String) {
        switch dtmName {
        case "debug": self = .debug
        case "warn": self = .warning
        case "error": self = .error
        default: self = .info
        }
    }
}

/// Installs the process-wide log handler once: one line per event on stderr, with its metadata
/// (gid, branch_id, op, …) as key=value pairs.
package enum LoggingSetup {
    package static func bootstrap(level: String) -> Logger {
        #if canImport(Glibc)
            // Each line's timestamp calls `localtime`; with TZ unset glibc then stats /etc/localtime on every call to
            // see whether it changed (two log lines per saga made it two syscalls per saga). Naming the same file in
            // TZ reads it once; a change of the machine's zone takes effect at the next start. Set at start-up, before
            // the server starts its threads.
            if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 0) }
        #endif
        let parsed = Logger.Level(dtmName: level)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        var logger = Logger(label: "swift-dtm")
        logger.logLevel = parsed
        return logger
    }
}

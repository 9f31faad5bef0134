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

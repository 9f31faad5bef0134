internal import CCrashGuard
import Glibc
import Logging

/// What happens to the server's sockets when the process crashes (README, Security): the fatal-signal handlers of
/// `CCrashGuard` close every socket before the Swift runtime's crash reporter runs, so the ports are free for a
/// restart at once instead of after the backtrace; and every socket is close-on-exec, so the reporter (a child
/// process) never inherits one.
enum CrashGuard {
    static func install(logger: Logger) {
        let rc = crash_guard_install()
        if rc != 0 {
            logger.warning("crash guard not installed: a crash keeps the ports until its backtrace is done", metadata: ["errno": .stringConvertible(rc)])
        }
    }

    /// Called once both listeners are bound (sockets opened later are closed by the guard on a crash anyway).
    static func markSocketsCloseOnExec(logger: Logger) {
        let rc = crash_guard_cloexec_sockets()
        if rc < 0 {
            logger.warning("could not make the sockets close-on-exec", metadata: ["error": .string(String(cString: strerror(-rc)))])
        } else {
            logger.debug("sockets made close-on-exec", metadata: ["count": .stringConvertible(rc)])
        }
    }
}

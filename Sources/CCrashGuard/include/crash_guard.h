#ifndef SWIFT_DTM_CRASH_GUARD_H
#define SWIFT_DTM_CRASH_GUARD_H

/// Installs handlers for the fatal signals (SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT) that close every
/// socket of the process and then hand the signal to the handler installed before (the Swift runtime's crash
/// reporter, which keeps the crashed process alive while it prints a backtrace). So a crash frees the listening
/// ports at once and a supervisor can restart the server on them. Returns 0, or the errno of a failed sigaction.
int crash_guard_install(void);

/// Sets FD_CLOEXEC on every open socket. Returns how many were changed, or -errno.
int crash_guard_cloexec_sockets(void);

#endif

#include "crash_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const int guarded_signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT};
#define GUARDED_COUNT (sizeof(guarded_signals) / sizeof(guarded_signals[0]))

static struct sigaction previous[GUARDED_COUNT];
/// Highest descriptor number looked at, fixed at install time (the handler may not call getrlimit safely).
static int fd_limit = 1024;

static int max_descriptors(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > (1 << 20)) {
        return 1 << 20;
    }
    return (int)limit.rlim_cur;
}

/// Async-signal-safe: fstat, close, sigaction and raise only.
static void on_fatal_signal(int sig, siginfo_t *info, void *context) {
    for (int fd = 3; fd < fd_limit; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) close(fd);
    }
    for (unsigned i = 0; i < GUARDED_COUNT; i++) {
        if (guarded_signals[i] != sig) continue;
        struct sigaction *old = &previous[i];
        if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction != NULL) {
            old->sa_sigaction(sig, info, context);
        } else if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
            old->sa_handler(sig);
        }
    }
    // Then die of the signal. The runtime's reporter returns when it is done; for a signal sent with kill(2)
    // (no faulting instruction to run again) the process would otherwise go on running without its sockets.
    // The signal is blocked while this handler runs: it is delivered, with the default action, on return.
    signal(sig, SIG_DFL);
    raise(sig);
}

int crash_guard_install(void) {
    fd_limit = max_descriptors();
    for (unsigned i = 0; i < GUARDED_COUNT; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        if (sigaction(guarded_signals[i], NULL, &previous[i]) != 0) return errno;
        action.sa_sigaction = on_fatal_signal;
        // Keep the earlier handler's stack and mask choices: the runtime's handler runs inside this one.
        action.sa_flags = SA_SIGINFO | (previous[i].sa_flags & (SA_ONSTACK | SA_NODEFER));
        action.sa_mask = previous[i].sa_mask;
        if (sigaction(guarded_signals[i], &action, NULL) != 0) return errno;
    }
    return 0;
}

int crash_guard_cloexec_sockets(void) {
    int limit = max_descriptors();
    int changed = 0;
    for (int fd = 3; fd < limit; fd++) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0) return -errno;
        if (flags & FD_CLOEXEC) continue;
        if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) return -errno;
        changed++;
    }
    return changed;
}

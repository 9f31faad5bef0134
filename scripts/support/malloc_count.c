// LD_PRELOAD allocation counter for scripts/alloc-count.sh: counts malloc, calloc, realloc, posix_memalign and
// aligned_alloc calls (free is not counted); SIGUSR2 writes "mallocs N" to stderr. Linux/glibc only.
#define _GNU_SOURCE
#include <stddef.h>
#include <stdatomic.h>
#include <signal.h>
#include <unistd.h>
#include <errno.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static _Atomic unsigned long count;
void *malloc(size_t s) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_malloc(s); }
void *calloc(size_t a, size_t b) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_calloc(a, b); }
void *realloc(void *p, size_t s) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_realloc(p, s); }
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t al, size_t s) {
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    void *p = __libc_memalign(al, s); if (!p) return ENOMEM; *out = p; return 0;
}
void *aligned_alloc(size_t al, size_t s) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_memalign(al, s); }
static void report(int sig) {
    (void)sig;
    char buf[64]; int i = 63; buf[i] = '\n';
    unsigned long n = atomic_load(&count);
    do { buf[--i] = '0' + n % 10; n /= 10; } while (n);
    const char *pre = "mallocs "; 
    write(2, pre, 8); write(2, buf + i, 64 - i);
}
__attribute__((constructor)) static void init(void) { signal(SIGUSR2, report); }

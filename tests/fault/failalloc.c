/*
 * failalloc.c - an LD_PRELOAD allocator that fails one chosen allocation,
 * for tests/cli/test_failalloc.sh.
 *
 * Interposes malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign and valloc (glibc's own allocator does the work: __libc_malloc
 * and friends) and numbers the allocation calls of the process from 1.
 *   FAILALLOC_AT=n     call n returns NULL (posix_memalign: ENOMEM), once;
 *                      every other call succeeds.  Unset or 0: none fails.
 *   FAILALLOC_COUNT=F  at exit, the number of calls counted is written to
 *                      file F (decimal, newline).
 * Calls made from inside the OpenMP runtime or the dynamic loader are
 * neither counted nor failed: libgomp ends the process on an allocation
 * failure of its own by design (docs/GUARANTEES.md), and so would
 * pthread_create's TLS set-up inside it; what is tested is that stem's own
 * code and the libraries it calls for files (libc, libcjson, libpng)
 * handle every failure.  realloc(p, 0) and free are passed through.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

/* Address ranges of the objects whose calls are exempt. */
#define MAX_RANGES 32
static uintptr_t lo[MAX_RANGES], hi[MAX_RANGES];
static int nranges;
static atomic_long counter;
static long fail_at;
static int ready;

static int exempt_name(const char *name)
{
    return name && (strstr(name, "libgomp") || strstr(name, "ld-linux") ||
                    strstr(name, "/ld-") || strstr(name, "libgcc_s"));
}

static int collect(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    if (!exempt_name(info->dlpi_name))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        lo[nranges] = info->dlpi_addr + ph->p_vaddr;
        hi[nranges] = lo[nranges] + ph->p_memsz;
        nranges++;
    }
    return 0;
}

__attribute__((constructor)) static void failalloc_init(void)
{
    const char *at = getenv("FAILALLOC_AT");
    fail_at = at ? strtol(at, NULL, 10) : 0;
    dl_iterate_phdr(collect, NULL);
    ready = 1;
}

/* 1 if this call (made from return address ra) is the one to fail. */
static int should_fail(const void *ra)
{
    if (!ready)
        return 0;
    uintptr_t a = (uintptr_t)ra;
    for (int i = 0; i < nranges; i++)
        if (a >= lo[i] && a < hi[i])
            return 0;
    long n = atomic_fetch_add(&counter, 1) + 1;
    return fail_at > 0 && n == fail_at;
}

__attribute__((destructor)) static void failalloc_report(void)
{
    const char *path = getenv("FAILALLOC_COUNT");
    if (!path)
        return;
    char buf[32];
    long n = atomic_load(&counter);
    int len = 0;
    char tmp[24];
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    for (int i = 0; i < len; i++)
        buf[i] = tmp[len - 1 - i];
    buf[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, buf, (size_t)len);
        (void)w;
        close(fd);
    }
}

void *malloc(size_t n)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    if (n != 0 && should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, n);
}

void *memalign(size_t al, size_t n)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(al, n);
}

void *aligned_alloc(size_t al, size_t n)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign(al, n);
}

void *valloc(size_t n)
{
    if (should_fail(__builtin_return_address(0))) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

int posix_memalign(void **out, size_t al, size_t n)
{
    if (al < sizeof(void *) || (al & (al - 1)) != 0)
        return EINVAL;
    if (should_fail(__builtin_return_address(0)))
        return ENOMEM;
    void *p = __libc_memalign(al, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

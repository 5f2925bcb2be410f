/*
 * threads.c - how many threads a call asks OpenMP for.
 *
 * The OpenMP runtime (libgomp) ends the process when it cannot create a
 * thread a parallel region asks for, and crashes on absurd counts, so every
 * parallel region of the library takes its num_threads from
 * stem_thread_count, which caps the request (params->threads, or OpenMP's
 * own count from OMP_NUM_THREADS) at what this process can run:
 *   - 8 threads per CPU of the affinity mask (sched_getaffinity), and
 *     STEM_THREAD_HARD_CAP in all;
 *   - OpenMP's thread limit (OMP_THREAD_LIMIT);
 *   - where RLIMIT_NPROC is finite and the process is not root: the limit
 *     minus the threads its user already runs (counted in /proc);
 *   - where the process's pids cgroup (v1 or v2) has a pids.max: that
 *     limit minus pids.current, at every level up to the root.
 * Threads the process already holds in OpenMP's pool (up to the last team
 * granted) are counted as free again.  The output bytes do not depend on
 * the thread count, so a cap changes speed only.  docs/GUARANTEES.md says
 * what can still end the process.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

/* The largest team size granted so far: an upper bound on the workers
 * OpenMP keeps in its pool for the next region. */
static atomic_int last_team = 1;

/* CPUs in this process's affinity mask; 0 when it cannot be read. */
static int affinity_cpus(void)
{
    for (int n = 1024; n <= (1 << 20); n *= 4) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (!set)
            return 0;
        size_t sz = CPU_ALLOC_SIZE(n);
        CPU_ZERO_S(sz, set);
        if (sched_getaffinity(0, sz, set) == 0) {
            int c = CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return c;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            return 0;
    }
    return 0;
}

/* Value of the line "key\tN" of a /proc status file; -1 if absent. */
static long long status_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    long long v = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0) {
            char *end;
            v = strtoll(line + kl, &end, 10);
            if (end == line + kl)
                v = -1;
            break;
        }
    }
    fclose(f);
    return v;
}

/* Threads of this process (/proc/self/status); 1 when unknown. */
static long long own_threads(void)
{
    long long n = status_field("/proc/self/status", "Threads:");
    return n > 0 ? n : 1;
}

/* Threads run by real user uid, counted over /proc; -1 when /proc cannot
 * be read. */
static long long user_threads(uid_t uid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    long long total = 0;
    struct dirent *e;
    char path[64];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%.20s/status", e->d_name);
        long long u = status_field(path, "Uid:");
        if (u != (long long)uid)
            continue;
        long long t = status_field(path, "Threads:");
        total += t > 0 ? t : 1;
    }
    closedir(d);
    return total;
}

/* Threads this process may still add under RLIMIT_NPROC; -1 when there is
 * no such limit for it (unlimited, or root, which the kernel exempts). */
static long long nproc_room(long long *limit_out)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NPROC, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        getuid() == 0)
        return -1;
    *limit_out = (long long)rl.rlim_cur;
    long long used = user_threads(getuid());
    if (used < 0)
        used = own_threads();
    long long room = (long long)rl.rlim_cur - used;
    return room > 0 ? room : 0;
}

/* Read one integer from a file ("max" gives -1); -2 when unreadable. */
static long long read_count(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -2;
    char buf[64] = {0};
    long long v = -2;
    if (fgets(buf, sizeof(buf), f)) {
        if (strncmp(buf, "max", 3) == 0) {
            v = -1;
        } else {
            char *end;
            v = strtoll(buf, &end, 10);
            if (end == buf)
                v = -2;
        }
    }
    fclose(f);
    return v;
}

/* Tasks this process's pids cgroup (and its ancestors) may still add;
 * -1 when no pids.max applies or none can be read. */
static long long pids_room(long long *limit_out)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[4096], base[4200] = "";
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctl = c1 + 1, *path = c2 + 1;
        if (strcmp(line, "0") == 0 && ctl[0] == '\0' && !base[0])
            snprintf(base, sizeof(base), "/sys/fs/cgroup%s", path);
        else if (strcmp(ctl, "pids") == 0)
            snprintf(base, sizeof(base), "/sys/fs/cgroup/pids%s", path);
    }
    fclose(f);
    if (!base[0])
        return -1;
    long long best = -1;
    size_t root = strlen("/sys/fs/cgroup");
    for (;;) {
        char p1[4300], p2[4300];
        snprintf(p1, sizeof(p1), "%s/pids.max", base);
        snprintf(p2, sizeof(p2), "%s/pids.current", base);
        long long mx = read_count(p1), cur = read_count(p2);
        if (mx >= 0 && cur >= 0) {
            long long room = mx > cur ? mx - cur : 0;
            if (best < 0 || room < best) {
                best = room;
                *limit_out = mx;
            }
        }
        char *slash = strrchr(base, '/');
        if (!slash || (size_t)(slash - base) < root)
            break;
        *slash = '\0';
    }
    return best;
}

/* Team size allowed by a room of new threads, counting the pool OpenMP
 * already holds (at most the last team, at most this process's threads). */
static long long team_from_room(long long room)
{
    long long pool = (long long)atomic_load(&last_team) - 1, own = own_threads();
    if (pool > own - 1)
        pool = own - 1;
    if (pool < 0)
        pool = 0;
    return 1 + pool + room;
}

stem_status stem_threads(const stem_params *params, stem_thread_info *info)
{
    if (!info)
        return STEM_ERR_NULL;
    if (params && (params->threads < 0 || params->threads > 4096))
        return STEM_ERR_PARAM;
    stem_thread_info t;
    memset(&t, 0, sizeof(t));
    t.nproc_limit = t.nproc_room = t.pids_limit = t.pids_room = -1;
#ifdef _OPENMP
    t.openmp = omp_get_max_threads();
    t.omp_limit = omp_get_thread_limit();
#else
    t.openmp = 1;
    t.omp_limit = 1;
#endif
    t.requested = params && params->threads > 0 ? params->threads : t.openmp;
    if (t.requested < 1)
        t.requested = 1;
    t.cpus = affinity_cpus();
    long long cap = STEM_THREAD_HARD_CAP;
    t.limited_by = "the request";
    long long want = t.requested;
    if (want > cap) {
        want = cap;
        t.limited_by = "the hard cap";
    }
    if (t.cpus > 0 && want > 8LL * t.cpus) {
        want = 8LL * t.cpus;
        t.limited_by = "8 per CPU of the affinity mask";
    }
    if (t.omp_limit > 0 && want > t.omp_limit) {
        want = t.omp_limit;
        t.limited_by = "OMP_THREAD_LIMIT";
    }
    /* the resource limits only matter once a region needs new threads */
    if (want > 1) {
        t.nproc_room = nproc_room(&t.nproc_limit);
        if (t.nproc_room >= 0 && want > team_from_room(t.nproc_room)) {
            want = team_from_room(t.nproc_room);
            t.limited_by = "RLIMIT_NPROC";
        }
        t.pids_room = pids_room(&t.pids_limit);
        if (t.pids_room >= 0 && want > team_from_room(t.pids_room)) {
            want = team_from_room(t.pids_room);
            t.limited_by = "the pids cgroup's pids.max";
        }
    }
    t.used = (int)(want < 1 ? 1 : want);
    *info = t;
    return STEM_OK;
}

int stem_thread_count(const stem_params *params)
{
    stem_thread_info t;
    if (stem_threads(params, &t) != STEM_OK)
        return 1;
    int prev = atomic_load(&last_team);
    while (t.used > prev &&
           !atomic_compare_exchange_weak(&last_team, &prev, t.used))
        ;
    return t.used;
}

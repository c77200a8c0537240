/* Projector cache measurements (no pass/fail: it prints what it measured).
 *
 *  1. First build (qt_cache_ensure into an empty directory) of nopovm and mub at d = 32 and 64,
 *     and the size of each file.
 *  2. Open + map of an existing file with a fresh handle each time (target: <= 1 ms): the first
 *     run after dropping the file's pages from the page cache, then the median of 200 runs.
 *  3. Proportional set size with 1, 2 and 4 processes mapping the same d = 32 file, every page
 *     touched (target: the summed PSS grows by less than 5% of the file size per extra process).
 *     Reported for the file's mapping alone (/proc/PID/smaps) and, for context, for the whole
 *     process (/proc/PID/smaps_rollup, which also counts each process's private memory).
 *
 * Usage: cache-pss [SCRATCH_DIR]   (default: $TMPDIR or /tmp). The cache lives in a fresh
 * directory made under it with mkdtemp and removed at the end. Exit status 0 unless something
 * failed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qt_rmrf.h"
#include "cache/qt_cache.h"
#include "num/qt_design.h"

#define MAP_RUNS  200
#define PAGE      4096
#define MAX_PROCS 4

static const char *cache_dir;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sorts v and returns its q-quantile (nearest rank). */
static double quantile(double *v, size_t n, double q)
{
    size_t k;

    qsort(v, n, sizeof(*v), cmp_double);
    k = (size_t)(q * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

static int file_bytes(const char *name, uint64_t *ret)
{
    char path[4096];
    struct stat st;

    (void)snprintf(path, sizeof(path), "%s/%s", cache_dir, name);
    if (stat(path, &st) < 0) {
        fprintf(stderr, "stat %s: %s\n", path, strerror(errno));
        return -1;
    }
    *ret = (uint64_t)st.st_size;
    return 0;
}

/* Drops the file's clean pages from the page cache (best effort: "cold-ish"). */
static void drop_pages(const char *name)
{
    char path[4096];
    int fd;

    (void)snprintf(path, sizeof(path), "%s/%s", cache_dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* ---- 1. first build ---- */

struct target {
    enum qt_design_kind kind;
    size_t d;
};

static const struct target targets[] = {
    {QT_DESIGN_NOPOVM, 32},
    {QT_DESIGN_MUB, 32},
    {QT_DESIGN_NOPOVM, 64},
    {QT_DESIGN_MUB, 64},
};

static int measure_builds(void)
{
    struct qt_diag diag = {0};
    struct qt_cache *c = NULL;
    int r;

    r = qt_cache_open(cache_dir, NULL, &c, &diag);
    if (r < 0) {
        fprintf(stderr, "qt_cache_open %s: %s\n", cache_dir, diag.msg);
        return -1;
    }
    printf("First build: qt_cache_ensure into an empty cache (CLOCK_MONOTONIC)\n\n");
    printf("  %-8s %4s %7s %14s %9s %10s %6s\n", "design", "d", "m", "file bytes", "MiB", "build s",
           "built");
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const char *id = qt_design_kind_name(targets[i].kind);
        char name[96];
        bool built = false;
        uint64_t bytes = 0;
        double t0, t1;

        t0 = now_s();
        r = qt_cache_ensure(c, targets[i].kind, targets[i].d, NULL, &built, &diag);
        t1 = now_s();
        if (r < 0) {
            fprintf(stderr, "qt_cache_ensure %s d=%zu: %s (%s)\n", id, targets[i].d, diag.msg,
                    qt_strerror(r));
            qt_cache_close(c);
            return -1;
        }
        if (qt_cache_file_name(id, targets[i].d, name, sizeof(name)) < 0 ||
            file_bytes(name, &bytes) < 0) {
            qt_cache_close(c);
            return -1;
        }
        printf("  %-8s %4zu %7zu %14llu %9.2f %10.3f %6s\n", id, targets[i].d,
               qt_design_outcomes(targets[i].kind, targets[i].d), (unsigned long long)bytes,
               (double)bytes / (1024.0 * 1024.0), t1 - t0, built ? "yes" : "no");
    }
    printf("\n");
    qt_cache_close(c);
    return 0;
}

/* ---- 2. open + map ---- */

/* One run: fresh handle, map, unmap, close. Times open+map and the whole. */
static int open_map_once(const char *id, size_t d, double *ret_open_map, double *ret_total)
{
    struct qt_diag diag = {0};
    struct qt_cache *c = NULL;
    struct qt_cache_map *map = NULL;
    double t0, t1, t2;
    int r;

    t0 = now_s();
    r = qt_cache_open(cache_dir, NULL, &c, &diag);
    if (r == 0) {
        r = qt_cache_map(c, id, d, &map, &diag);
        if (r < 0)
            qt_cache_close(c);
    }
    t1 = now_s();
    if (r < 0) {
        fprintf(stderr, "open + map %s d=%zu: %s (%s)\n", id, d, diag.msg, qt_strerror(r));
        return -1;
    }
    qt_cache_unmap(map);
    qt_cache_close(c);
    t2 = now_s();
    *ret_open_map = t1 - t0;
    *ret_total = t2 - t0;
    return 0;
}

static int measure_maps(void)
{
    static double om[MAP_RUNS], tot[MAP_RUNS];

    printf("Open + map of an existing file: qt_cache_open + qt_cache_map with a fresh handle per\n"
           "run (target <= 1 ms); first run after POSIX_FADV_DONTNEED, then %d runs\n\n",
           MAP_RUNS);
    printf("  %-18s %10s %10s %10s %10s %16s\n", "file", "first ms", "median ms", "p95 ms",
           "max ms", "+unmap+close ms");
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        const char *id = qt_design_kind_name(targets[i].kind);
        double first, first_tot;
        char name[96];

        if (qt_cache_file_name(id, targets[i].d, name, sizeof(name)) < 0)
            return -1;
        drop_pages(name);
        if (open_map_once(id, targets[i].d, &first, &first_tot) < 0)
            return -1;
        for (size_t k = 0; k < MAP_RUNS; k++)
            if (open_map_once(id, targets[i].d, &om[k], &tot[k]) < 0)
                return -1;
        double med = quantile(om, MAP_RUNS, 0.5), p95 = quantile(om, MAP_RUNS, 0.95),
               mx = om[MAP_RUNS - 1], med_tot = quantile(tot, MAP_RUNS, 0.5);
        printf("  %-18s %10.4f %10.4f %10.4f %10.4f %16.4f\n", name, 1e3 * first, 1e3 * med,
               1e3 * p95, 1e3 * mx, 1e3 * med_tot);
    }
    printf("\n");
    return 0;
}

/* ---- 3. proportional set size ---- */

static ssize_t read_full(int fd, void *buf, size_t len)
{
    ssize_t r;

    do
        r = read(fd, buf, len);
    while (r < 0 && errno == EINTR);
    return r;
}

/* The path of an smaps/maps header line ("start-end perms offset dev inode path"), or NULL when
 * the line is not a header. Strips the newline. */
static const char *maps_path(char *line, unsigned long *start, unsigned long *end)
{
    const char *sp = strchr(line, ' '), *colon = strchr(line, ':');
    char *p = line;

    /* Field lines ("Pss:   4 kB") have their colon before the first space. */
    if (!sp || (colon && colon < sp) || sscanf(line, "%lx-%lx ", start, end) != 2)
        return NULL;
    line[strcspn(line, "\n")] = '\0';
    for (int field = 0; field < 5; field++) { /* skip range, perms, offset, dev, inode */
        p += strspn(p, " ");
        p += strcspn(p, " ");
    }
    return p + strspn(p, " ");
}

/* Whether the mapped path names the entry (possibly " (deleted)"). */
static bool is_entry(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');

    return slash && strncmp(slash + 1, name, strlen(name)) == 0 &&
           (slash[1 + strlen(name)] == '\0' || slash[1 + strlen(name)] == ' ');
}

/* Child: reads one byte per page of every mapping of the entry in its own address space. */
static int touch_entry(const char *name, size_t *ret_bytes)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4608];
    size_t bytes = 0;
    unsigned sum = 0;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end;
        const char *path = maps_path(line, &start, &end);

        if (!path || !is_entry(path, name))
            continue;
        for (unsigned long a = start; a < end; a += PAGE)
            sum += *(const volatile unsigned char *)a;
        bytes += end - start;
    }
    fclose(f);
    *ret_bytes = bytes;
    (void)sum;
    return bytes > 0 ? 0 : -1;
}

/* Child body. Exit status: 0 fine, 2 open/map failed, 3 mapping not found, 4 pipe trouble. */
static int pss_child(const char *id, size_t d, const char *name, int ready, int release)
{
    struct qt_diag diag = {0};
    struct qt_cache *c = NULL;
    struct qt_cache_map *map = NULL;
    size_t bytes = 0;
    char b = 'r';

    if (qt_cache_open(cache_dir, NULL, &c, &diag) < 0 || qt_cache_map(c, id, d, &map, &diag) < 0) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), diag.msg);
        return 2;
    }
    if (touch_entry(name, &bytes) < 0) {
        fprintf(stderr, "child %d: no mapping of %s in /proc/self/maps\n", (int)getpid(), name);
        return 3;
    }
    if (write(ready, &b, 1) != 1 || read_full(release, &b, 1) != 0)
        return 4;
    qt_cache_unmap(map);
    qt_cache_close(c);
    return 0;
}

/* "Key:   <n> kB" -> n. */
static bool field_kb(const char *line, const char *key, unsigned long *ret)
{
    size_t n = strlen(key);

    return strncmp(line, key, n) == 0 && sscanf(line + n, "%lu", ret) == 1;
}

/* Pss of the whole process (smaps_rollup) and Rss/Pss of the entry's mappings (smaps), kB. */
static int read_pss(pid_t pid, const char *name, unsigned long *ret_proc, unsigned long *ret_rss,
                    unsigned long *ret_pss)
{
    char path[64], line[4608];
    bool in_entry = false, found = false;
    unsigned long v;
    FILE *f;

    *ret_proc = *ret_rss = *ret_pss = 0;
    (void)snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f))
        if (field_kb(line, "Pss:", &v)) {
            *ret_proc = v;
            found = true;
        }
    fclose(f);
    if (!found) {
        fprintf(stderr, "%s: no Pss line\n", path);
        return -1;
    }
    (void)snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    found = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long start, end;
        const char *mp = maps_path(line, &start, &end);

        if (mp) {
            in_entry = is_entry(mp, name);
            found |= in_entry;
        } else if (in_entry && field_kb(line, "Rss:", &v)) {
            *ret_rss += v;
        } else if (in_entry && field_kb(line, "Pss:", &v)) {
            *ret_pss += v;
        }
    }
    fclose(f);
    if (!found) {
        fprintf(stderr, "%s: no mapping of %s\n", path, name);
        return -1;
    }
    return 0;
}

struct pss_sum {
    unsigned long file_pss, proc_pss;
};

/* Forks n children that map and touch the entry, measures them, releases them. */
static int measure_pss_n(const char *id, size_t d, const char *name, size_t n, struct pss_sum *sum)
{
    pid_t pids[MAX_PROCS];
    int ready[2], release[2], failed = 0;
    size_t started = 0, got = 0;

    sum->file_pss = sum->proc_pss = 0;
    if (pipe(ready) < 0 || pipe(release) < 0) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    for (; started < n; started++) {
        pids[started] = fork();
        if (pids[started] < 0) {
            fprintf(stderr, "fork: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        if (pids[started] == 0) {
            close(ready[0]);
            close(release[1]);
            _exit(pss_child(id, d, name, ready[1], release[0]));
        }
    }
    close(ready[1]);
    close(release[0]);
    while (!failed && got < started) {
        char b;

        if (read_full(ready[0], &b, 1) != 1) {
            fprintf(stderr, "a child failed before mapping\n");
            failed = 1;
        } else {
            got++;
        }
    }
    if (!failed) {
        for (size_t i = 0; i < n; i++) {
            unsigned long proc, rss, pss;

            if (read_pss(pids[i], name, &proc, &rss, &pss) < 0) {
                failed = 1;
                break;
            }
            printf("  %2zu %8d %14lu %14lu %16lu\n", n, (int)pids[i], rss, pss, proc);
            sum->file_pss += pss;
            sum->proc_pss += proc;
        }
        if (!failed)
            printf("  %2zu %8s %14s %14lu %16lu\n\n", n, "sum", "", sum->file_pss, sum->proc_pss);
    }
    close(release[1]); /* EOF: the children unmap and leave */
    close(ready[0]);
    for (size_t i = 0; i < started; i++) {
        int st = 0;

        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "child %d: %s %d\n", (int)pids[i],
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            failed = 1;
        }
    }
    return failed ? -1 : 0;
}

static int measure_pss(void)
{
    static const size_t procs[] = {1, 2, 4};
    struct pss_sum sum[3];
    const char *id = "nopovm";
    const size_t d = 32;
    uint64_t bytes = 0;
    double file_kb;
    char name[96];

    if (qt_cache_file_name(id, d, name, sizeof(name)) < 0 || file_bytes(name, &bytes) < 0)
        return -1;
    file_kb = (double)bytes / 1024.0;
    printf("Proportional set size (kB): N processes map %s (%llu bytes = %.1f kB)\n"
           "and read one byte per page; file = the entry's mappings in /proc/PID/smaps,\n"
           "process = /proc/PID/smaps_rollup\n\n",
           name, (unsigned long long)bytes, file_kb);
    printf("  %2s %8s %14s %14s %16s\n", "N", "pid", "file Rss", "file Pss", "process Pss");
    for (size_t k = 0; k < 3; k++)
        if (measure_pss_n(id, d, name, procs[k], &sum[k]) < 0)
            return -1;

    printf("Summary (target: summed file Pss grows by < 5%% of the file size per extra "
           "process)\n\n");
    printf("  %2s %14s %22s %16s %22s\n", "N", "sum file Pss", "per extra proc, % file",
           "sum process Pss", "per extra proc, kB");
    for (size_t k = 0; k < 3; k++) {
        if (k == 0) {
            printf("  %2zu %14lu %22s %16lu %22s\n", procs[k], sum[k].file_pss, "-",
                   sum[k].proc_pss, "-");
            continue;
        }
        double extra = (double)(procs[k] - 1);
        double dfile = ((double)sum[k].file_pss - (double)sum[0].file_pss) / extra;
        double dproc = ((double)sum[k].proc_pss - (double)sum[0].proc_pss) / extra;

        printf("  %2zu %14lu %21.2f%% %16lu %22.1f\n", procs[k], sum[k].file_pss,
               100.0 * dfile / file_kb, sum[k].proc_pss, dproc);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *scratch = argc > 1 ? argv[1] : getenv("TMPDIR");
    char dir[4096];
    int r = 0;

    /* The children are forked from this process: keep OpenBLAS single-threaded. */
    (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
    if (argc > 2 || (argc > 1 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [SCRATCH_DIR]\n", argv[0]);
        return 2;
    }
    if (!scratch || !*scratch)
        scratch = "/tmp";
    (void)snprintf(dir, sizeof(dir), "%s/qtomo-cache-pss-XXXXXX", scratch);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    cache_dir = dir;
    printf("qtomo projector cache measurement\ncache directory: %s\n\n", dir);
    if (measure_builds() < 0 || measure_maps() < 0 || measure_pss() < 0)
        r = 1;
    qt_rm_rf(dir);
    if (r)
        fprintf(stderr, "cache-pss: failed\n");
    return r;
}

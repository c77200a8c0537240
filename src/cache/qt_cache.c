/* The projector cache directory: build once under a lock, publish by rename, map read-only,
 * count users with OFD locks, evict least recently used within a byte budget. */
#define _GNU_SOURCE
#include "qt_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qt_cachefile.h"

#define SUFFIX ".qtpc"
/* User slots: one byte each, far beyond any file's end (locks need not cover data). */
#define SLOT_BASE ((off_t)1 << 40)
#define SLOTS     1024
/* Moved-aside files kept for inspection; older ones are removed. */
#define QUARANTINE_KEEP 16

struct qt_cache_map {
    struct qt_cache *owner;
    struct qt_cache_map *next;
    unsigned refs;
    int fd;
    void *base;
    size_t len;
    struct timespec mtim, ctim; /* of the file when its content was verified */
    char name[96];
    struct qt_design des;
    struct qt_whiten wh;
    struct qt_design mix; /* des->mix_base, when the design has a mixing structure */
};

struct qt_cache {
    int dfd; /* the directory */
    char *dir;
    uint64_t budget;
    qt_cache_event_fn on_event;
    void *userdata;
    struct qt_cache_map *maps;
};

uint64_t qt_cache_default_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

    if (pages <= 0 || psz <= 0)
        return (uint64_t)1 << 30;
    return (uint64_t)pages * (uint64_t)psz / 4;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void emit(struct qt_cache *c, const struct qt_cache_event *ev)
{
    if (c->on_event)
        c->on_event(c->userdata, ev);
}

int qt_cache_file_name(const char *id, size_t d, char *buf, size_t len)
{
    size_t n = id ? strlen(id) : 0;
    int k;

    if (n == 0 || n >= 64 || id[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return -EINVAL;
    }
    k = snprintf(buf, len, "%s-d%zu" SUFFIX, id, d);
    return k > 0 && (size_t)k < len ? 0 : QT_ETOOBIG;
}

int qt_cache_open(const char *dir, const struct qt_cache_config *cfg, struct qt_cache **ret_cache,
                  struct qt_diag *reterr)
{
    struct qt_cache *c;
    int r;

    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        return qt_diag_set(reterr, -errno, 0, 0, "cannot create cache directory %s: %s", dir,
                           strerror(errno));
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dfd < 0) {
        r = qt_diag_set(reterr, -errno, 0, 0, "cannot open cache directory %s: %s", dir,
                        strerror(errno));
        free(c);
        return r;
    }
    c->dir = strdup(dir);
    if (!c->dir) {
        close(c->dfd);
        free(c);
        return -ENOMEM;
    }
    if ((mkdirat(c->dfd, "locks", 0750) < 0 && errno != EEXIST) ||
        (mkdirat(c->dfd, "quarantine", 0750) < 0 && errno != EEXIST)) {
        r = qt_diag_set(reterr, -errno, 0, 0, "cannot create %s/locks or quarantine: %s", dir,
                        strerror(errno));
        qt_cache_close(c);
        return r;
    }
    c->budget = cfg && cfg->budget ? cfg->budget : qt_cache_default_budget();
    c->on_event = cfg ? cfg->on_event : NULL;
    c->userdata = cfg ? cfg->userdata : NULL;
    *ret_cache = c;
    return 0;
}

/* Every range this process has mapped from a cache file (kept mappings and the transient ones
 * of verification), for qt_cache_addr_file: a SIGBUS handler's question. Process-wide: changed
 * under mapped_lock (handles in several threads), read without it by the handler. A full table
 * only makes an address unknown. */
#define MAPPED_MAX 64
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
    const char *volatile base; /* NULL: free */
    size_t len;
    char name[96];
} mapped[MAPPED_MAX];

static void mapped_add(const void *base, size_t len, const char *name)
{
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAPPED_MAX; i++)
        if (!mapped[i].base) {
            mapped[i].len = len;
            (void)snprintf(mapped[i].name, sizeof(mapped[i].name), "%s", name);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            mapped[i].base = base;
            break;
        }
    pthread_mutex_unlock(&mapped_lock);
}

/* munmap, forgetting the range first. */
static void unmap_range(void *base, size_t len)
{
    pthread_mutex_lock(&mapped_lock);
    for (int i = 0; i < MAPPED_MAX; i++)
        if (mapped[i].base == base)
            mapped[i].base = NULL;
    pthread_mutex_unlock(&mapped_lock);
    munmap(base, len);
}

const char *qt_cache_addr_file(const void *addr)
{
    const char *a = addr;

    for (int i = 0; i < MAPPED_MAX; i++) {
        const char *b = mapped[i].base;

        if (b && a >= b && a < b + mapped[i].len)
            return mapped[i].name;
    }
    return NULL;
}

static void map_release(struct qt_cache_map *mp)
{
    unmap_range(mp->base, mp->len);
    close(mp->fd);
    free(mp);
}

void qt_cache_close(struct qt_cache *c)
{
    if (!c)
        return;
    while (c->maps) {
        struct qt_cache_map *mp = c->maps;

        c->maps = mp->next;
        map_release(mp);
    }
    close(c->dfd);
    free(c->dir);
    free(c);
}

/* ---- locks ---- */

/* flock on DIR/locks/<name>.lock; returns the fd or -errno. */
static int lock_take(struct qt_cache *c, const char *name)
{
    char path[160];
    int fd;

    (void)snprintf(path, sizeof(path), "locks/%s.lock", name);
    fd = openat(c->dfd, path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int r = -errno;

            close(fd);
            return r;
        }
    }
    return fd;
}

static void lock_drop(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Number of user slots locked on the file behind fd (open file descriptions of any process). */
static unsigned count_users(int fd)
{
    off_t start = SLOT_BASE;
    unsigned n = 0;

    while (start < SLOT_BASE + SLOTS) {
        struct flock fl = {.l_type = F_WRLCK,
                           .l_whence = SEEK_SET,
                           .l_start = start,
                           .l_len = SLOT_BASE + SLOTS - start};

        if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
            break;
        n += fl.l_len > 0 ? (unsigned)fl.l_len : 1;
        start = fl.l_start + (fl.l_len > 0 ? fl.l_len : 1);
    }
    return n;
}

/* Takes a read lock on a free user slot (or the last one when all are taken). */
static int take_slot(int fd)
{
    for (off_t s = SLOT_BASE; s < SLOT_BASE + SLOTS; s++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = s, .l_len = 1};

        if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
            return -errno;
        if (fl.l_type != F_UNLCK && s + 1 < SLOT_BASE + SLOTS)
            continue;
        fl = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = s, .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
            return -errno;
        return 0;
    }
    return 0;
}

/* ---- quarantine ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps the newest QUARANTINE_KEEP files (names start with a sortable timestamp). */
static void quarantine_trim(struct qt_cache *c)
{
    int qfd = openat(c->dfd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = qfd >= 0 ? fdopendir(qfd) : NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;

    if (!dp) {
        if (qfd >= 0)
            close(qfd);
        return;
    }
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap ? 2 * cap : 32) * sizeof(*names));

            if (!nn)
                break;
            names = nn;
            cap = cap ? 2 * cap : 32;
        }
        names[n] = strdup(de->d_name);
        if (names[n])
            n++;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i + QUARANTINE_KEEP < n; i++)
        (void)unlinkat(dirfd(dp), names[i], 0);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(dp);
}

/* Moves DIR/name aside as quarantine/<time>-<name>.<reason>, but only when it is still the inode
 * that was judged (st), under the entry lock. Returns whether this call moved it (false: it was
 * gone or replaced already, e.g. another process moved it aside first). */
static bool quarantine(struct qt_cache *c, const char *name, const struct stat *judged,
                       enum qt_cf_fault fault, const char *why)
{
    struct timespec ts;
    struct stat now;
    char dst[256];
    bool moved = false;
    int lk = lock_take(c, name);

    if (lk < 0)
        return false;
    if (fstatat(c->dfd, name, &now, 0) == 0 && now.st_dev == judged->st_dev &&
        now.st_ino == judged->st_ino) {
        clock_gettime(CLOCK_REALTIME, &ts);
        (void)snprintf(dst, sizeof(dst), "quarantine/%010lld.%09ld-%s.%s", (long long)ts.tv_sec,
                       ts.tv_nsec, name, qt_cf_fault_name(fault));
        if (renameat(c->dfd, name, c->dfd, dst) == 0) {
            struct qt_cache_event ev = {.kind = QT_CACHE_QUARANTINED,
                                        .name = name,
                                        .path = dst,
                                        .reason = why,
                                        .bytes = (uint64_t)judged->st_size};

            /* The event (the daemon's log line) before the fsync: a process killed while it
             * waits for the disk must not have moved the file aside unannounced. */
            emit(c, &ev);
            (void)fsync(c->dfd);
            quarantine_trim(c);
            moved = true;
        }
    }
    lock_drop(lk);
    return moved;
}

/* ---- opening and checking ---- */

/* Opens DIR/name read-only without touching its atime when we may, and without blocking: a FIFO
 * at the name made every worker that opened it wait for a writer until the item's deadline, on
 * every request. Anything but a regular file (a FIFO, a directory, a device) returns
 * QT_ECHECKSUM with *st (when given) filled, so that the callers move it aside as untrusted and
 * rebuild, as for a damaged file. */
static int open_entry(struct qt_cache *c, const char *name, struct stat *st)
{
    int fd = openat(c->dfd, name, O_RDONLY | O_CLOEXEC | O_NOATIME | O_NONBLOCK);
    struct stat own;

    if (fd < 0 && errno == EPERM)
        fd = openat(c->dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (!st)
        st = &own;
    if (fstat(fd, st) < 0) {
        int r = -errno;

        close(fd);
        return r;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return QT_ECHECKSUM;
    }
    return fd;
}

/* The diagnostic of a name that is not a regular file (open_entry). */
static int not_regular(const char *name, struct qt_diag *reterr)
{
    return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%s is not a regular file", name);
}

/* Checks the header (read, not mapped, so that a file shorter than its header or than what the
 * header declares is rejected before any mapping exists: no SIGBUS from a short file), then
 * maps the whole file read-only and shared; with full, verifies every section checksum. On a
 * fault returns QT_ECHECKSUM with *fault set and nothing mapped. */
static int map_checked(int fd, const char *name, const struct stat *st, bool full, void **ret_base,
                       enum qt_cf_fault *fault, struct qt_cf_info *info, struct qt_diag *reterr)
{
    size_t len = (size_t)st->st_size;
    uint8_t hdr[QT_CF_HEADER_SIZE];
    void *base;
    ssize_t k;

    k = pread(fd, hdr, sizeof(hdr), 0);
    if (k < 0)
        return qt_diag_set(reterr, -errno, 0, 0, "read: %s", strerror(errno));
    *fault = qt_cf_check(hdr, (size_t)k, (uint64_t)st->st_size, false, info, reterr);
    if (*fault != QT_CF_OK)
        return QT_ECHECKSUM;
    base = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return qt_diag_set(reterr, -errno, 0, 0, "mmap: %s", strerror(errno));
    mapped_add(base, len, name);
    if (full) {
        *fault = qt_cf_check(base, len, len, true, info, reterr);
        if (*fault != QT_CF_OK) {
            unmap_range(base, len);
            return QT_ECHECKSUM;
        }
    }
    *ret_base = base;
    return 0;
}

/* Checks DIR/name's header and structure (full: and every checksum). 0 when trusted; -ENOENT;
 * QT_ECHECKSUM with *fault and *st filled when not. */
static int check_entry(struct qt_cache *c, const char *name, bool full, enum qt_cf_fault *fault,
                       struct stat *st, struct qt_diag *reterr)
{
    void *base = NULL;
    int fd = open_entry(c, name, st), r;

    *fault = QT_CF_OK;
    if (fd == QT_ECHECKSUM) {
        *fault = QT_CF_FOREIGN;
        return not_regular(name, reterr);
    }
    if (fd < 0)
        return fd;
    r = map_checked(fd, name, st, full, &base, fault, NULL, reterr);
    if (r == 0) {
        struct qt_design des, mix;
        struct qt_whiten wh;

        r = qt_cf_view(base, (size_t)st->st_size, &des, &wh, &mix, reterr);
        if (r < 0)
            *fault = QT_CF_CORRUPT;
        unmap_range(base, (size_t)st->st_size);
    }
    close(fd);
    return r;
}

/* ---- budget ---- */

struct cand {
    char name[96];
    uint64_t bytes;
    int64_t atime;
};

static int cmp_atime(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    return x->atime < y->atime ? -1 : x->atime > y->atime ? 1 : strcmp(x->name, y->name);
}

static bool is_entry_name(const char *n)
{
    size_t len = strlen(n), sl = strlen(SUFFIX);

    return n[0] != '.' && len > sl && len < 96 && strcmp(n + len - sl, SUFFIX) == 0;
}

/* Entries with sizes and atimes. */
static int scan(struct qt_cache *c, struct cand **ret, size_t *ret_n)
{
    int fd = openat(c->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    struct cand *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;

    if (!dp) {
        int r = -errno;

        if (fd >= 0)
            close(fd);
        return r;
    }
    while ((de = readdir(dp))) {
        struct stat st;

        if (!is_entry_name(de->d_name) || fstatat(c->dfd, de->d_name, &st, 0) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            struct cand *nv = realloc(v, (cap ? 2 * cap : 16) * sizeof(*v));

            if (!nv) {
                free(v);
                closedir(dp);
                return -ENOMEM;
            }
            v = nv;
            cap = cap ? 2 * cap : 16;
        }
        memcpy(v[n].name, de->d_name, strlen(de->d_name) + 1); /* < 96: is_entry_name */
        v[n].bytes = (uint64_t)st.st_size;
        v[n].atime = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
        n++;
    }
    closedir(dp);
    *ret = v;
    *ret_n = n;
    return 0;
}

/* Removes DIR/name when no process has it mapped. Caller holds the budget lock. */
static int evict_one(struct qt_cache *c, const char *name, uint64_t bytes)
{
    int fd = open_entry(c, name, NULL);
    struct qt_cache_event ev = {.kind = QT_CACHE_EVICTED, .name = name, .bytes = bytes};

    if (fd == QT_ECHECKSUM) { /* not a regular file: nobody maps it, remove it as it is */
        if (unlinkat(c->dfd, name, 0) < 0 &&
            (errno != EISDIR || unlinkat(c->dfd, name, AT_REMOVEDIR) < 0))
            return -errno;
        emit(c, &ev);
        return 0;
    }
    if (fd < 0)
        return fd;
    if (count_users(fd) > 0) {
        close(fd);
        return -EBUSY;
    }
    close(fd);
    if (unlinkat(c->dfd, name, 0) < 0)
        return -errno;
    emit(c, &ev);
    return 0;
}

/* Frees room for `need` more bytes (caller holds the budget lock). */
static int make_room(struct qt_cache *c, uint64_t need, struct qt_diag *reterr)
{
    struct cand *v = NULL;
    uint64_t used = 0;
    size_t n = 0;
    int r;

    if (need > c->budget)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                           "the file needs %llu bytes, more than the whole cache budget (%llu)",
                           (unsigned long long)need, (unsigned long long)c->budget);
    r = scan(c, &v, &n);
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "cannot list %s", c->dir);
    for (size_t i = 0; i < n; i++)
        used += v[i].bytes;
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_atime);
    for (size_t i = 0; i < n && used + need > c->budget; i++)
        if (evict_one(c, v[i].name, v[i].bytes) == 0)
            used -= v[i].bytes;
    free(v);
    if (used + need > c->budget)
        return qt_diag_set(reterr, -ENOSPC, 0, 0,
                           "cache budget %llu bytes: %llu in files that are mapped, %llu needed",
                           (unsigned long long)c->budget, (unsigned long long)used,
                           (unsigned long long)need);
    return 0;
}

/* ---- building ---- */

static void remove_stale_temps(struct qt_cache *c, const char *name)
{
    int fd = openat(c->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    char prefix[128];
    struct dirent *de;

    if (!dp) {
        if (fd >= 0)
            close(fd);
        return;
    }
    (void)snprintf(prefix, sizeof(prefix), ".tmp-%s-", name);
    while ((de = readdir(dp)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            (void)unlinkat(c->dfd, de->d_name, 0);
    closedir(dp);
}

/* Writes des to a temporary file, verifies it, renames it to DIR/name. Caller holds the entry
 * lock. */
static int publish(struct qt_cache *c, const char *name, const struct qt_design *des, double t0,
                   struct qt_diag *reterr)
{
    char tmp[160] = "";
    uint64_t size;
    int fd = -1, bl, r;
    struct stat st;
    void *base = NULL;
    enum qt_cf_fault fault;

    r = qt_cf_size(des, &size);
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "%s: design too large for a cache file", name);
    bl = lock_take(c, "budget");
    if (bl < 0)
        return qt_diag_set(reterr, bl, 0, 0, "cannot take the budget lock in %s", c->dir);
    r = make_room(c, size, reterr);
    if (r < 0)
        goto out;
    (void)snprintf(tmp, sizeof(tmp), ".tmp-%s-%ld", name, (long)getpid());
    fd = openat(c->dfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0440);
    if (fd < 0) {
        r = qt_diag_set(reterr, -errno, 0, 0, "cannot create %s/%s: %s", c->dir, tmp,
                        strerror(errno));
        goto out;
    }
    r = qt_cf_write(fd, des);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r < 0) {
        r = qt_diag_set(reterr, r, 0, 0, "cannot write %s/%s: %s", c->dir, tmp, strerror(-r));
        goto out;
    }
    /* Verify what reached the file, every checksum, before anyone can see it. */
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    r = map_checked(fd, tmp, &st, true, &base, &fault, NULL, reterr);
    if (r < 0)
        goto out;
    unmap_range(base, (size_t)st.st_size);
    if (renameat(c->dfd, tmp, c->dfd, name) < 0) {
        r = qt_diag_set(reterr, -errno, 0, 0, "cannot rename into %s/%s: %s", c->dir, name,
                        strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    if (fsync(c->dfd) < 0) {
        r = qt_diag_set(reterr, -errno, 0, 0, "fsync %s: %s", c->dir, strerror(errno));
        goto out;
    }
    {
        struct qt_cache_event ev = {
            .kind = QT_CACHE_BUILT, .name = name, .bytes = size, .seconds = now_s() - t0};

        emit(c, &ev);
    }
out:
    if (fd >= 0)
        close(fd);
    if (r < 0 && tmp[0])
        (void)unlinkat(c->dfd, tmp, 0);
    lock_drop(bl);
    return r;
}

int qt_cache_ensure(struct qt_cache *c, enum qt_design_kind kind, size_t d,
                    const struct qt_design *custom, bool *ret_built, struct qt_diag *reterr)
{
    struct qt_design *des = NULL;
    enum qt_cf_fault fault;
    struct stat st;
    char name[96];
    int lk, r;
    double t0 = now_s();

    if (ret_built)
        *ret_built = false;
    if (custom) {
        kind = custom->kind;
        d = custom->d;
    } else if (kind == QT_DESIGN_CUSTOM || (unsigned)kind >= _QT_DESIGN_KIND_MAX) {
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0, "custom designs need the design itself");
    }
    r = qt_cache_file_name(custom ? custom->id : qt_design_kind_name(kind), d, name, sizeof(name));
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "invalid cache key");
    /* Fast path: a trusted file is there. */
    r = check_entry(c, name, false, &fault, &st, NULL);
    if (r == 0)
        return 0;
    lk = lock_take(c, name);
    if (lk < 0)
        return qt_diag_set(reterr, lk, 0, 0, "cannot take the lock of %s in %s", name, c->dir);
    r = check_entry(c, name, false, &fault, &st, reterr);
    if (r == 0)
        goto out; /* another process built it while we waited */
    if (r == QT_ECHECKSUM) {
        char why[300];

        (void)snprintf(why, sizeof(why), "%s: %s", qt_cf_fault_name(fault),
                       reterr ? reterr->msg : "");
        lock_drop(lk); /* quarantine takes it again */
        quarantine(c, name, &st, fault, why);
        lk = lock_take(c, name);
        if (lk < 0)
            return qt_diag_set(reterr, lk, 0, 0, "cannot take the lock of %s", name);
        if (check_entry(c, name, false, &fault, &st, NULL) == 0) {
            r = 0;
            goto out;
        }
    } else if (r != -ENOENT) {
        r = qt_diag_set(reterr, r, 0, 0, "cannot open %s/%s: %s", c->dir, name, strerror(-r));
        goto out;
    }
    remove_stale_temps(c, name);
    if (!custom) {
        r = qt_design_new(kind, d, &des, reterr);
        if (r < 0)
            goto out;
    }
    r = publish(c, name, custom ? custom : des, t0, reterr);
    if (r == 0 && ret_built)
        *ret_built = true;
out:
    qt_design_free(des);
    lock_drop(lk);
    return r;
}

/* ---- mapping ---- */

int qt_cache_map(struct qt_cache *c, const char *id, size_t d, struct qt_cache_map **ret_map,
                 struct qt_diag *reterr)
{
    struct qt_cache_map *mp;
    enum qt_cf_fault fault = QT_CF_OK;
    struct qt_cf_info info;
    struct stat st;
    char name[96];
    int r;

    r = qt_cache_file_name(id, d, name, sizeof(name));
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "invalid cache key '%s'", id ? id : "");
    for (mp = c->maps; mp; mp = mp->next)
        if (strcmp(mp->name, name) == 0) {
            mp->refs++;
            *ret_map = mp;
            return 0;
        }
    mp = calloc(1, sizeof(*mp));
    if (!mp)
        return -ENOMEM;
    mp->fd = open_entry(c, name, &st);
    if (mp->fd == QT_ECHECKSUM) {
        free(mp);
        bool moved = quarantine(c, name, &st, QT_CF_FOREIGN, "not a regular file");

        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0,
                           "%s/%s was not trusted (not a regular file); %s", c->dir, name,
                           moved ? "moved aside" : "already moved aside or replaced");
    }
    if (mp->fd < 0) {
        r = mp->fd;
        free(mp);
        return qt_diag_set(reterr, r, 0, 0, "%s/%s: %s", c->dir, name, strerror(-r));
    }
    /* Count ourselves as a user before judging the file, so that an evictor that saw no users
     * cannot have removed a file we then keep; an unlinked file is a miss. */
    r = take_slot(mp->fd);
    if (r == 0 && fstat(mp->fd, &st) < 0)
        r = -errno;
    if (r < 0) {
        r = qt_diag_set(reterr, r, 0, 0, "%s/%s: %s", c->dir, name, strerror(-r));
        goto fail;
    }
    if (st.st_nlink == 0) {
        r = qt_diag_set(reterr, -ENOENT, 0, 0, "%s/%s was just evicted", c->dir, name);
        goto fail;
    }
    /* Every section's checksum, not only the header's: a file whose sections were damaged in
     * place, or a damaged file renamed into place, would otherwise give wrong results. XXH3
     * over a few MB costs well under a millisecond, once per mapping. */
    r = map_checked(mp->fd, name, &st, true, &mp->base, &fault, &info, reterr);
    if (r == 0) {
        mp->len = (size_t)st.st_size;
        mp->mtim = st.st_mtim;
        mp->ctim = st.st_ctim;
        r = qt_cf_view(mp->base, mp->len, &mp->des, &mp->wh, &mp->mix, reterr);
        if (r < 0) {
            fault = QT_CF_CORRUPT;
            unmap_range(mp->base, mp->len);
        } else if (strcmp(info.id, id) != 0 || info.d != d) {
            fault = QT_CF_CORRUPT;
            r = qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "holds %s at d = %zu", info.id, info.d);
            unmap_range(mp->base, mp->len);
        }
    }
    if (r < 0) {
        if (r == QT_ECHECKSUM) {
            char why[300];

            (void)snprintf(why, sizeof(why), "%s: %s", qt_cf_fault_name(fault),
                           reterr ? reterr->msg : "");
            bool moved = quarantine(c, name, &st, fault, why);

            r = qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%s/%s was not trusted (%s); %s", c->dir,
                            name, why,
                            moved ? "moved aside"
                                  : "already moved aside or replaced by another process");
        }
        goto fail;
    }
    {
        struct timespec ts[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_OMIT}};

        (void)futimens(mp->fd, ts); /* last use; best effort (owner only) */
    }
    mp->owner = c;
    mp->refs = 1;
    (void)snprintf(mp->name, sizeof(mp->name), "%s", name);
    mp->next = c->maps;
    c->maps = mp;
    *ret_map = mp;
    return 0;
fail:
    close(mp->fd);
    free(mp);
    return r;
}

static bool same_time(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

int qt_cache_map_check(struct qt_cache_map *map, struct qt_diag *reterr)
{
    enum qt_cf_fault fault;
    struct stat st;
    char why[300];

    if (fstat(map->fd, &st) < 0)
        return qt_diag_set(reterr, -errno, 0, 0, "%s: %s", map->name, strerror(errno));
    if ((uint64_t)st.st_size == map->len && same_time(st.st_mtim, map->mtim) &&
        same_time(st.st_ctim, map->ctim))
        return 0;
    /* Changed since it was verified. A shorter file is not read: its missing pages would raise
     * SIGBUS. */
    if ((uint64_t)st.st_size < map->len) {
        fault = QT_CF_TRUNCATED;
        (void)qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%llu bytes, was %zu",
                          (unsigned long long)st.st_size, map->len);
    } else {
        fault = qt_cf_check(map->base, map->len, map->len, true, NULL, reterr);
    }
    if (fault == QT_CF_OK) {
        map->mtim = st.st_mtim;
        map->ctim = st.st_ctim;
        return 0;
    }
    (void)snprintf(why, sizeof(why), "%s after it was mapped: %s", qt_cf_fault_name(fault),
                   reterr ? reterr->msg : "");
    bool moved = st.st_nlink > 0 && quarantine(map->owner, map->name, &st, fault, why);

    return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%s/%s changed (%s); %s", map->owner->dir,
                       map->name, why,
                       moved ? "moved aside" : "already moved aside or replaced by another process");
}

bool qt_cache_map_changed(struct qt_cache_map *map)
{
    struct stat st;

    if (fstat(map->fd, &st) < 0 || (uint64_t)st.st_size != map->len ||
        !same_time(st.st_mtim, map->mtim))
        return true;
    if (same_time(st.st_ctim, map->ctim))
        return false;
    /* Only the change time moved: every mapping sets the file's atime (ours too), which moves
     * it. The content decides. */
    if (qt_cf_check(map->base, map->len, map->len, true, NULL, NULL) != QT_CF_OK)
        return true;
    map->ctim = st.st_ctim;
    return false;
}

const char *qt_cache_map_name(const struct qt_cache_map *map)
{
    return map->name;
}

int qt_cache_get(struct qt_cache *c, enum qt_design_kind kind, size_t d,
                 struct qt_cache_map **ret_map, struct qt_diag *reterr)
{
    int r = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        r = qt_cache_ensure(c, kind, d, NULL, NULL, reterr);
        if (r < 0)
            return r;
        r = qt_cache_map(c, qt_design_kind_name(kind), d, ret_map, reterr);
        if (r != QT_ECHECKSUM && r != -ENOENT)
            return r;
    }
    return r;
}

const struct qt_design *qt_cache_map_design(const struct qt_cache_map *map)
{
    return &map->des;
}

uint64_t qt_cache_map_bytes(const struct qt_cache_map *map)
{
    return map->len;
}

void qt_cache_unmap(struct qt_cache_map *map)
{
    struct qt_cache_map **pp;

    if (!map || --map->refs > 0)
        return;
    for (pp = &map->owner->maps; *pp; pp = &(*pp)->next)
        if (*pp == map) {
            *pp = map->next;
            break;
        }
    map_release(map);
}

/* ---- administration ---- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct qt_cache_entry *)a)->name,
                  ((const struct qt_cache_entry *)b)->name);
}

int qt_cache_list(struct qt_cache *c, struct qt_cache_entry **ret_entries, size_t *ret_n,
                  struct qt_diag *reterr)
{
    struct qt_cache_entry *e;
    struct cand *v = NULL;
    size_t n = 0;
    int r = scan(c, &v, &n);

    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "cannot list %s: %s", c->dir, strerror(-r));
    e = calloc(n ? n : 1, sizeof(*e));
    if (!e) {
        free(v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t hdr[QT_CF_HEADER_SIZE];
        struct qt_cf_info info;
        int fd = open_entry(c, v[i].name, NULL);
        ssize_t k = fd >= 0 ? pread(fd, hdr, sizeof(hdr), 0) : -1;

        (void)snprintf(e[i].name, sizeof(e[i].name), "%s", v[i].name);
        e[i].bytes = v[i].bytes;
        e[i].last_use_ns = v[i].atime;
        (void)snprintf(e[i].design, sizeof(e[i].design), "?");
        if (k >= 0 && qt_cf_check(hdr, (size_t)k, v[i].bytes, false, &info, NULL) == QT_CF_OK) {
            (void)snprintf(e[i].design, sizeof(e[i].design), "%s", qt_design_kind_name(info.kind));
            (void)snprintf(e[i].id, sizeof(e[i].id), "%s", info.id);
            e[i].d = info.d;
            e[i].m = info.m;
        }
        if (fd >= 0) {
            e[i].mapped_by = count_users(fd);
            close(fd);
        }
    }
    free(v);
    if (n > 1)
        qsort(e, n, sizeof(*e), cmp_entry);
    *ret_entries = e;
    *ret_n = n;
    return 0;
}

int qt_cache_usage(struct qt_cache *c, uint64_t *ret_bytes, struct qt_diag *reterr)
{
    struct cand *v = NULL;
    uint64_t used = 0;
    size_t n = 0;
    int r = scan(c, &v, &n);

    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "cannot list %s: %s", c->dir, strerror(-r));
    for (size_t i = 0; i < n; i++)
        used += v[i].bytes;
    free(v);
    *ret_bytes = used;
    return 0;
}

int qt_cache_evict(struct qt_cache *c, const char *id, size_t d, struct qt_diag *reterr)
{
    struct stat st;
    char name[96];
    int bl, r;

    r = qt_cache_file_name(id, d, name, sizeof(name));
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "invalid cache key '%s'", id ? id : "");
    bl = lock_take(c, "budget");
    if (bl < 0)
        return qt_diag_set(reterr, bl, 0, 0, "cannot take the budget lock in %s", c->dir);
    if (fstatat(c->dfd, name, &st, 0) < 0)
        r = qt_diag_set(reterr, -errno, 0, 0, "no cache entry %s", name);
    else {
        r = evict_one(c, name, (uint64_t)st.st_size);
        if (r == -EBUSY)
            (void)qt_diag_set(reterr, r, 0, 0, "%s is mapped by a process", name);
        else if (r < 0)
            (void)qt_diag_set(reterr, r, 0, 0, "cannot remove %s: %s", name, strerror(-r));
    }
    lock_drop(bl);
    return r;
}

int qt_cache_verify(struct qt_cache *c, const char *id, size_t d, struct qt_diag *reterr)
{
    enum qt_cf_fault fault;
    struct stat st;
    char name[96];
    struct qt_diag why = {0};
    int r;

    r = qt_cache_file_name(id, d, name, sizeof(name));
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "invalid cache key '%s'", id ? id : "");
    r = check_entry(c, name, true, &fault, &st, &why);
    if (r == -ENOENT)
        return qt_diag_set(reterr, r, 0, 0, "no cache entry %s", name);
    if (r == QT_ECHECKSUM) {
        char reason[300];

        (void)snprintf(reason, sizeof(reason), "%s: %s", qt_cf_fault_name(fault), why.msg);
        quarantine(c, name, &st, fault, reason);
        return qt_diag_set(reterr, r, 0, 0, "%s: %s; moved aside, the next use rebuilds it", name,
                           reason);
    }
    if (r < 0)
        return qt_diag_set(reterr, r, 0, 0, "%s: %s", name, why.msg);
    return 0;
}

int qt_cache_warm(struct qt_cache *c, size_t n, const enum qt_design_kind *kinds,
                  const size_t *dims, size_t *ret_failed, struct qt_diag *reterr)
{
    for (size_t i = 0; i < n; i++) {
        char name[96];
        int r = qt_cache_ensure(c, kinds[i], dims[i], NULL, NULL, reterr), fd;

        if (r == 0 &&
            qt_cache_file_name(qt_design_kind_name(kinds[i]), dims[i], name, sizeof(name)) == 0 &&
            (fd = open_entry(c, name, NULL)) >= 0) {
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
            close(fd);
        }
        if (r < 0) {
            if (ret_failed)
                *ret_failed = i;
            return r;
        }
    }
    return 0;
}

/* Projector cache: mapped designs behave exactly like freshly built ones, every kind of damaged
 * file is moved aside and rebuilt (never trusted, never a crash), concurrent builders build once,
 * eviction follows last use and respects mappings held by any process, and the error paths of
 * the budget, evict, list, file_name and warm.
 *
 * Every test works in its own temporary directory (removed afterwards). The cross-process tests
 * fork: children open their own cache handle after the fork and leave with _exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "qt_rmrf.h"
#include "cache/qt_cache.h"
#include "cache/qt_cachefile.h"
#include "num/qt_design.h"
#include "num/qt_detector.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qt_test.h"
#include "qt_test_diag.h"

/* Filled by the cache calls of the test that is running; printed when one fails. */

/* ---- temporary directories and files ---- */

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    size_t len;
    char *dir;

    if (!base || !*base)
        base = "/tmp";
    len = strlen(base) + 32;
    dir = malloc(len);
    assert_non_null(dir);
    (void)snprintf(dir, len, "%s/qtomo-cache-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void drop_tmpdir(char *dir)
{
    qt_rm_rf(dir);
    free(dir);
}

static void join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);

    assert_true(n > 0 && (size_t)n < len);
}

static bool exists_in(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    join(path, sizeof(path), dir, name);
    return lstat(path, &st) == 0;
}

static uint64_t file_size(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;

    join(path, sizeof(path), dir, name);
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void entry_name(const char *id, size_t d, char *buf, size_t len)
{
    assert_int_equal(qt_cache_file_name(id, d, buf, len), 0);
}

/* Number of files in DIR/quarantine whose name contains the entry name (FORMAT.md:
 * quarantine/<time>-<name>.<reason>); "" counts every file. */
static size_t quarantined(const char *dir, const char *name)
{
    char path[4096];
    DIR *dh;
    struct dirent *de;
    size_t n = 0;

    join(path, sizeof(path), dir, "quarantine");
    dh = opendir(path);
    if (!dh)
        return 0;
    while ((de = readdir(dh)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strstr(de->d_name, name))
            n++;
    closedir(dh);
    return n;
}

/* Fails when DIR holds anything but the named entries, locks/ and quarantine/ (a temporary file
 * left behind, a half-built entry). */
static void assert_dir_holds(const char *dir, const char *const *names, size_t n)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    size_t seen = 0;

    assert_non_null(dh);
    while ((de = readdir(dh))) {
        bool ok = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                  strcmp(de->d_name, "locks") == 0 || strcmp(de->d_name, "quarantine") == 0;

        for (size_t i = 0; i < n && !ok; i++)
            if (strcmp(de->d_name, names[i]) == 0) {
                ok = true;
                seen++;
            }
        if (!ok)
            print_error("unexpected file '%s' in the cache directory %s\n", de->d_name, dir);
        assert_true(ok);
    }
    closedir(dh);
    assert_int_equal(seen, n);
}

/* ---- events ---- */

#define MAX_EVENTS 32

struct rec_event {
    enum qt_cache_event_kind kind;
    char name[128];
    char path[1024];
    char reason[64];
    uint64_t bytes;
};

struct recorder {
    size_t n;
    struct rec_event ev[MAX_EVENTS];
};

static void record(void *userdata, const struct qt_cache_event *ev)
{
    struct recorder *rec = userdata;
    struct rec_event *e;

    if (rec->n >= MAX_EVENTS)
        return;
    e = &rec->ev[rec->n++];
    memset(e, 0, sizeof(*e));
    e->kind = ev->kind;
    e->bytes = ev->bytes;
    (void)snprintf(e->name, sizeof(e->name), "%s", ev->name ? ev->name : "");
    (void)snprintf(e->path, sizeof(e->path), "%s", ev->path ? ev->path : "");
    (void)snprintf(e->reason, sizeof(e->reason), "%s", ev->reason ? ev->reason : "");
}

static size_t count_events(const struct recorder *rec, enum qt_cache_event_kind kind,
                           const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < rec->n; i++)
        n += rec->ev[i].kind == kind && (!name || strcmp(rec->ev[i].name, name) == 0);
    return n;
}

static const struct rec_event *find_event(const struct recorder *rec, enum qt_cache_event_kind kind,
                                          const char *name)
{
    for (size_t i = 0; i < rec->n; i++)
        if (rec->ev[i].kind == kind && strcmp(rec->ev[i].name, name) == 0)
            return &rec->ev[i];
    return NULL;
}

static void print_events(const struct recorder *rec)
{
    static const char *const kinds[] = {"built", "quarantined", "evicted"};

    for (size_t i = 0; i < rec->n; i++)
        print_error("  event %zu: %s name '%s' path '%s' reason '%s' bytes %llu\n", i,
                    (unsigned)rec->ev[i].kind < 3 ? kinds[rec->ev[i].kind] : "?", rec->ev[i].name,
                    rec->ev[i].path, rec->ev[i].reason, (unsigned long long)rec->ev[i].bytes);
}

/* ---- cache helpers ---- */

static struct qt_cache *open_cache(const char *dir, uint64_t budget, struct recorder *rec)
{
    struct qt_cache_config cfg = {
        .budget = budget, .on_event = rec ? record : NULL, .userdata = rec};
    struct qt_cache *c = NULL;

    assert_ok(qt_cache_open(dir, &cfg, &c, &diag));
    assert_non_null(c);
    return c;
}

/* The entry of a listing with the given file name, or NULL. */
static const struct qt_cache_entry *find_entry(const struct qt_cache_entry *e, size_t n,
                                               const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0)
            return &e[i];
    return NULL;
}

static unsigned mapped_by(struct qt_cache *c, const char *name)
{
    struct qt_cache_entry *e = NULL;
    size_t n = 0;
    unsigned k;

    assert_ok(qt_cache_list(c, &e, &n, &diag));
    const struct qt_cache_entry *x = find_entry(e, n, name);
    if (!x)
        print_error("'%s' is not listed\n", name);
    assert_non_null(x);
    k = x->mapped_by;
    free(e);
    return k;
}

static void nap(void)
{
    /* Longer than the coarsest file timestamp granularity (one jiffy). */
    struct timespec ts = {0, 20 * 1000 * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
    ssize_t r;

    do
        r = read(fd, buf, len);
    while (r < 0 && errno == EINTR);
    return r;
}

/* ---- design comparison ---- */

static void assert_close_c(double complex a, double complex b, double tol)
{
    qt_assert_close(creal(a), creal(b), tol, tol);
    qt_assert_close(cimag(a), cimag(b), tol, tol);
}

/* A design viewed in the cache agrees with the freshly built one: scalars exactly, cond to
 * 1e-12 relative, the forward map and the inverse to 1e-12 on random inputs. */
static void assert_same_design(const struct qt_design *fresh, const struct qt_design *mapped,
                               uint64_t seed)
{
    size_t d = fresh->d, m = fresh->m;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    double complex *rho = malloc(d * d * sizeof(*rho)), *ra = malloc(d * d * sizeof(*ra)),
                   *rb = malloc(d * d * sizeof(*rb));
    double *qa = malloc(m * sizeof(double)), *qb = malloc(m * sizeof(double)),
           *f = malloc(m * sizeof(double));

    assert_non_null(mapped);
    assert_true(rho && ra && rb && qa && qb && f);
    assert_int_equal(mapped->kind, fresh->kind);
    assert_int_equal(mapped->pinv_kind, fresh->pinv_kind);
    assert_int_equal(mapped->d, d);
    assert_int_equal(mapped->m, m);
    assert_int_equal(mapped->n_groups, fresh->n_groups);
    assert_int_equal(mapped->group_len, fresh->group_len);
    assert_int_equal(mapped->n_qubits, fresh->n_qubits);
    assert_int_equal(mapped->povm, fresh->povm);
    assert_int_equal(mapped->rank1, fresh->rank1);
    assert_int_equal(mapped->rank, fresh->rank);
    assert_string_equal(mapped->name, fresh->name);
    assert_string_equal(mapped->id, fresh->id);
    qt_assert_close(mapped->cond, fresh->cond, 1e-12, 0.0);
    assert_non_null(mapped->groups);
    assert_memory_equal(mapped->groups, fresh->groups, m * sizeof(uint32_t));
    if (fresh->povm) {
        assert_non_null(mapped->group_scale);
        for (size_t g = 0; g < fresh->n_groups; g++)
            qt_assert_close(mapped->group_scale[g], fresh->group_scale[g], 1e-12, 0.0);
    }
    assert_non_null(mapped->sv);
    for (size_t i = 0; i < QT_MIN(m, d * d); i++)
        qt_assert_close(mapped->sv[i], fresh->sv[i], 1e-12, 1e-12 * fresh->sv[0]);

    qt_rng_seed(&rng, seed);
    for (int rep = 0; rep < 2; rep++) {
        qt_rng_state(&rng, d, rep == 0 ? 1 : d, rho);
        assert_int_equal(qt_design_forward(fresh, &ws, rho, qa), 0);
        assert_int_equal(qt_design_forward(mapped, &ws, rho, qb), 0);
        for (size_t a = 0; a < m; a++)
            qt_assert_close(qb[a], qa[a], 1e-12, 1e-12);
        for (size_t a = 0; a < m; a++)
            f[a] = qt_rng_uniform(&rng);
        assert_int_equal(qt_design_pinv_apply(fresh, &ws, f, ra), 0);
        assert_int_equal(qt_design_pinv_apply(mapped, &ws, f, rb), 0);
        for (size_t i = 0; i < d * d; i++)
            assert_close_c(rb[i], ra[i], 1e-12);
    }
    qt_ws_done(&ws);
    free(rho);
    free(ra);
    free(rb);
    free(qa);
    free(qb);
    free(f);
}

/* Maximum likelihood on simulated probabilities gives the same estimate on both designs. */
static void assert_same_mle(const struct qt_design *fresh, const struct qt_design *mapped,
                            uint64_t seed)
{
    size_t d = fresh->d, m = fresh->m;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;
    struct qt_result a, b;
    double complex *rho = malloc(d * d * sizeof(*rho));
    double *y = malloc(m * sizeof(double));

    assert_true(rho && y);
    qt_rng_seed(&rng, seed);
    qt_rng_state(&rng, d, 2, rho);
    assert_int_equal(qt_rng_simulate(&rng, fresh, &ws, rho, 1000, y), 0);
    for (size_t k = 0; k < m; k++)
        y[k] /= 1000.0;
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&a, d), 0);
    assert_int_equal(qt_result_init(&b, d), 0);
    assert_int_equal(qt_estimate(fresh, &ws, QT_METHOD_MLE, y, m, &opts, &a), 0);
    assert_int_equal(qt_estimate(mapped, &ws, QT_METHOD_MLE, y, m, &opts, &b), 0);
    assert_true(a.mt.converged);
    assert_true(b.mt.converged);
    assert_true(qt_frob_diff(d, b.rho, a.rho) <= 1e-9);
    qt_assert_close(b.mt.log_likelihood, a.mt.log_likelihood, 1e-9, 1e-12);
    qt_assert_close(b.mt.gap, a.mt.gap, 1e-6, 1e-9);
    qt_result_done(&a);
    qt_result_done(&b);
    qt_ws_done(&ws);
    free(rho);
    free(y);
}

static struct qt_design *fresh_design(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    return des;
}

/* qt_cache_get on a built-in, compared with a fresh build (and the MLE check when asked). */
static void round_trip(struct qt_cache *c, const char *dir, enum qt_design_kind kind, size_t d,
                       bool mle, uint64_t seed)
{
    struct qt_design *fresh = fresh_design(kind, d);
    struct qt_cache_map *map = NULL, *again = NULL;
    const struct qt_design *des;
    char name[96];

    assert_ok(qt_cache_get(c, kind, d, &map, &diag));
    assert_non_null(map);
    des = qt_cache_map_design(map);
    assert_non_null(des);
    entry_name(fresh->id, d, name, sizeof(name));
    assert_true(exists_in(dir, name));
    assert_int_equal(qt_cache_map_bytes(map), file_size(dir, name));
    assert_same_design(fresh, des, seed);
    if (mle)
        assert_same_mle(fresh, des, seed + 1000);

    /* The same entry again from this handle: the same mapping, one more reference. */
    assert_ok(qt_cache_map(c, fresh->id, d, &again, &diag));
    assert_ptr_equal(again, map);
    assert_ptr_equal(qt_cache_map_design(again), des);
    assert_int_equal(mapped_by(c, name), 1);
    qt_cache_unmap(again);
    assert_int_equal(mapped_by(c, name), 1); /* one reference left */
    assert_same_design(fresh, des, seed + 1);
    qt_cache_unmap(map);
    assert_int_equal(mapped_by(c, name), 0);
    qt_design_free(fresh);
}

/* ---- 1. round trip ---- */

static void test_round_trip(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
        bool mle;
    } cases[] = {
        {QT_DESIGN_NOPOVM, 2, false}, {QT_DESIGN_NOPOVM, 3, false}, {QT_DESIGN_NOPOVM, 4, true},
        {QT_DESIGN_NOPOVM, 8, false}, {QT_DESIGN_MUB, 2, false},    {QT_DESIGN_MUB, 3, false},
        {QT_DESIGN_MUB, 4, true},     {QT_DESIGN_MUB, 5, false},    {QT_DESIGN_MUB, 8, false},
        {QT_DESIGN_SIC, 2, false},    {QT_DESIGN_PAULI, 2, false},  {QT_DESIGN_PAULI, 4, false},
        {QT_DESIGN_PAULI, 8, false},
    };

    char *tmp = make_tmpdir(), dir[4096];
    struct recorder rec = {0};
    struct qt_cache *c;
    struct stat st;

    (void)state;
    /* The cache directory is created when missing. */
    join(dir, sizeof(dir), tmp, "cache");
    c = open_cache(dir, 0, &rec);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    for (size_t i = 0; i < QT_ARRAY_SIZE(cases); i++) {
        size_t before = count_events(&rec, QT_CACHE_BUILT, NULL);

        round_trip(c, dir, cases[i].kind, cases[i].d, cases[i].mle, 100 + i);
        assert_int_equal(count_events(&rec, QT_CACHE_BUILT, NULL), before + 1);
    }
    /* Reopened: everything is found, nothing is rebuilt. */
    qt_cache_close(c);
    rec.n = 0;
    c = open_cache(dir, 0, &rec);
    for (size_t i = 0; i < QT_ARRAY_SIZE(cases); i++)
        round_trip(c, dir, cases[i].kind, cases[i].d, false, 200 + i);
    assert_int_equal(count_events(&rec, QT_CACHE_BUILT, NULL), 0);
    assert_int_equal(count_events(&rec, QT_CACHE_QUARANTINED, NULL), 0);
    qt_cache_close(c);
    drop_tmpdir(tmp);
}

static void test_round_trip_custom(void **state)
{
    struct qt_design *base = fresh_design(QT_DESIGN_NOPOVM, 3), *custom = NULL;
    /* The design's kets are d x m column-major, which is the spec's m x d row-major. */
    struct qt_custom_spec spec = {.d = 3, .m = base->m, .kets = base->kets};
    char *dir = make_tmpdir(), name[96];
    struct qt_cache_map *map = NULL, *again = NULL;
    struct qt_cache *c;
    bool built = false;

    (void)state;
    assert_ok(qt_design_new_custom(&spec, &custom, &diag));
    assert_int_equal(strncmp(custom->id, "custom-", 7), 0);
    c = open_cache(dir, 0, NULL);
    assert_ok(qt_cache_ensure(c, QT_DESIGN_CUSTOM, 3, custom, &built, &diag));
    assert_true(built);
    assert_ok(qt_cache_ensure(c, QT_DESIGN_CUSTOM, 3, custom, &built, &diag));
    assert_false(built);
    entry_name(custom->id, 3, name, sizeof(name));
    assert_true(exists_in(dir, name));
    assert_ok(qt_cache_verify(c, custom->id, 3, &diag));
    assert_ok(qt_cache_map(c, custom->id, 3, &map, &diag));
    assert_same_design(custom, qt_cache_map_design(map), 7);
    assert_same_mle(custom, qt_cache_map_design(map), 8);
    assert_ok(qt_cache_map(c, custom->id, 3, &again, &diag));
    assert_ptr_equal(again, map);
    assert_ptr_equal(qt_cache_map_design(again), qt_cache_map_design(map));
    qt_cache_unmap(again);
    qt_cache_unmap(map);
    assert_int_equal(mapped_by(c, name), 0);
    qt_cache_close(c);
    qt_design_free(custom);
    qt_design_free(base);
    drop_tmpdir(dir);
}

/* An effective design with a mixing structure and backgrounds (a detector model on pauli
 * d = 4): the file keeps the structure, so the mapped design computes exactly what the one in
 * memory does (the same bits: that is what makes the daemon's records --local's). */
static void test_round_trip_mixed(void **state)
{
    struct qt_design *base = fresh_design(QT_DESIGN_PAULI, 4), *eff = NULL;
    struct qt_detector *det = NULL;
    double eta[36], bg[36], tint[9];
    char *dir = make_tmpdir();
    struct qt_cache_map *map = NULL;
    struct qt_cache *c;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_opts o;
    struct qt_result a, b;
    double complex rho[16];
    double y[36], qa[36], qb[36];
    struct qt_rng rng;

    (void)state;
    for (size_t k = 0; k < 36; k++) {
        eta[k] = 0.75 + 0.01 * (double)(k % 7);
        bg[k] = k % 5 == 0 ? 3.0 : 0.0;
    }
    for (size_t g = 0; g < 9; g++)
        tint[g] = 0.95 + 0.01 * (double)g;
    struct qt_detector_spec spec = {.efficiencies = eta, .n_eff = 36, .background = bg,
                                    .n_bg = 36, .intensity = tint, .n_int = 9};
    assert_ok(qt_detector_new(&spec, base, &det, &diag));
    assert_ok(qt_detector_design(base, det, &eff, &diag));
    assert_non_null(eff->mix_base);
    assert_non_null(eff->background);
    c = open_cache(dir, 0, NULL);
    assert_ok(qt_cache_ensure(c, QT_DESIGN_CUSTOM, 4, eff, NULL, &diag));
    assert_ok(qt_cache_verify(c, eff->id, 4, &diag));
    assert_ok(qt_cache_map(c, eff->id, 4, &map, &diag));
    const struct qt_design *mp = qt_cache_map_design(map);
    assert_non_null(mp->mix_base);
    assert_int_equal(mp->mix_base->kind, QT_DESIGN_PAULI);
    assert_int_equal(mp->mix_base->n_qubits, 2);
    assert_memory_equal(mp->mix, eff->mix, 36 * 4 * sizeof(double));
    assert_memory_equal(mp->background, eff->background, 36 * sizeof(double));
    qt_rng_seed(&rng, 3);
    qt_rng_state(&rng, 4, 2, rho);
    assert_ok(qt_design_forward(eff, &ws, rho, qa));
    assert_ok(qt_design_forward(mp, &ws, rho, qb));
    assert_memory_equal(qa, qb, sizeof(qa));
    for (size_t k = 0; k < 36; k++)
        y[k] = floor(1000.0 * qa[k]) + bg[k];
    qt_opts_init(&o);
    assert_ok(qt_result_init(&a, 4));
    assert_ok(qt_result_init(&b, 4));
    for (int meth = QT_METHOD_LINEAR; meth <= QT_METHOD_MLE; meth++) {
        assert_ok(qt_estimate(eff, &ws, (enum qt_method)meth, y, 36, &o, &a));
        assert_ok(qt_estimate(mp, &ws, (enum qt_method)meth, y, 36, &o, &b));
        assert_memory_equal(a.rho, b.rho, 16 * sizeof(double complex));
    }
    qt_result_done(&a);
    qt_result_done(&b);
    qt_cache_unmap(map);
    qt_cache_close(c);
    qt_ws_done(&ws);
    qt_design_free(eff);
    qt_detector_free(det);
    qt_design_free(base);
    drop_tmpdir(dir);
}

/* ---- 2. corruption ---- */

enum damage {
    TRUNC_HALF,
    TRUNC_100,
    TRUNC_0,
    HEADER_BYTE,
    FOREIGN_MAGIC,
    OLD_VERSION,
    SECTION_BYTE,
};

static void pread_full(int fd, void *buf, size_t len, off_t off)
{
    assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
}

static void pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
}

static void flip_byte(int fd, off_t off)
{
    unsigned char b;

    pread_full(fd, &b, 1, off);
    b ^= 0xff;
    pwrite_full(fd, &b, 1, off);
}

/* Offset of a byte in the middle of the largest section, from the header's section table
 * (FORMAT.md: u32 count at 236, 32-byte entries from 240: u32 id, u32 element size, u64 offset,
 * u64 bytes, u64 XXH3-64). */
static off_t section_byte(int fd, uint64_t size)
{
    unsigned char h[1024];
    uint32_t n;
    uint64_t best_off = 0, best_len = 0;

    pread_full(fd, h, sizeof(h), 0);
    memcpy(&n, h + 236, sizeof(n));
    assert_true(n >= 1 && n <= 16);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off, len;

        memcpy(&off, h + 240 + 32 * i + 8, sizeof(off));
        memcpy(&len, h + 240 + 32 * i + 16, sizeof(len));
        assert_true(off >= 1024 && off % 64 == 0 && len <= size && off <= size - len);
        if (len > best_len) {
            best_off = off;
            best_len = len;
        }
    }
    assert_true(best_len > 0);
    return (off_t)(best_off + best_len / 2);
}

static void damage_file(const char *path, enum damage kind)
{
    struct stat st;
    int fd;

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(chmod(path, 0600), 0);
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    switch (kind) {
    case TRUNC_HALF:
        assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
        break;
    case TRUNC_100:
        assert_int_equal(ftruncate(fd, 100), 0);
        break;
    case TRUNC_0:
        assert_int_equal(ftruncate(fd, 0), 0);
        break;
    case HEADER_BYTE:
        flip_byte(fd, 40);
        break;
    case FOREIGN_MAGIC:
        pwrite_full(fd, "NOTQTOM", 8, 0);
        break;
    case OLD_VERSION: {
        unsigned char h[1024];
        uint32_t v = 0;
        uint64_t sum;

        pread_full(fd, h, sizeof(h), 0);
        memcpy(&v, h + 8, sizeof(v));
        assert_int_equal(v, 1);
        v = 0;
        memcpy(h + 8, &v, sizeof(v));
        sum = XXH3_64bits(h, 1016);
        memcpy(h + 1016, &sum, sizeof(sum));
        pwrite_full(fd, h, sizeof(h), 0);
        break;
    }
    case SECTION_BYTE:
        flip_byte(fd, section_byte(fd, (uint64_t)st.st_size));
        break;
    }
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, st.st_mode & 07777), 0);
}

/* Builds nopovm d = 4 in a fresh directory and closes the handle; returns the directory. */
static char *built_nopovm4(char *path, size_t len)
{
    char *dir = make_tmpdir(), name[96];
    struct qt_cache *c = open_cache(dir, 0, NULL);
    bool built = false;

    assert_ok(qt_cache_ensure(c, QT_DESIGN_NOPOVM, 4, NULL, &built, &diag));
    assert_true(built);
    assert_ok(qt_cache_verify(c, "nopovm", 4, &diag));
    qt_cache_close(c);
    entry_name("nopovm", 4, name, sizeof(name));
    join(path, len, dir, name);
    return dir;
}

/* The damaged file moved aside exists where the event says, under DIR/quarantine. */
static void assert_moved_aside(const char *dir, const struct recorder *rec, const char *name,
                               const char *reason, bool gone)
{
    const struct rec_event *ev = find_event(rec, QT_CACHE_QUARANTINED, name);
    char path[4096];
    struct stat st;

    if (!ev || !strstr(ev->reason, reason)) {
        print_error("expected a quarantined event for '%s' with reason '%s'\n", name, reason);
        print_events(rec);
    }
    assert_non_null(ev);
    assert_non_null(strstr(ev->reason, reason));
    assert_true(exists_in(dir, name) == !gone);
    assert_int_equal(quarantined(dir, name), 1);
    if (ev->path[0] == '/')
        (void)snprintf(path, sizeof(path), "%s", ev->path);
    else
        join(path, sizeof(path), dir, ev->path);
    assert_non_null(strstr(path, "quarantine/"));
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* The file keeps the entry's name and says why it was moved. */
    assert_non_null(strstr(strrchr(path, '/'), name));
    assert_non_null(strstr(strrchr(path, '/'), reason));
}

/* map refuses the damaged file and moves it aside; get then rebuilds a correct file. */
static void map_damaged(enum damage kind, const char *reason)
{
    char path[4096], name[96];
    char *dir = built_nopovm4(path, sizeof(path));
    struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 4);
    struct qt_cache_map *map = NULL;
    struct recorder rec = {0};
    struct qt_cache *c;

    entry_name("nopovm", 4, name, sizeof(name));
    damage_file(path, kind);
    c = open_cache(dir, 0, &rec);
    assert_err(qt_cache_map(c, "nopovm", 4, &map, &diag), QT_ECHECKSUM);
    assert_null(map);
    assert_true(diag.msg[0] != '\0');
    assert_moved_aside(dir, &rec, name, reason, true);
    assert_int_equal(count_events(&rec, QT_CACHE_BUILT, NULL), 0);

    assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
    assert_int_equal(count_events(&rec, QT_CACHE_BUILT, name), 1);
    assert_true(exists_in(dir, name));
    assert_same_design(fresh, qt_cache_map_design(map), 11);
    qt_cache_unmap(map);
    assert_ok(qt_cache_verify(c, "nopovm", 4, &diag));
    qt_cache_close(c);
    qt_design_free(fresh);
    drop_tmpdir(dir);
}

static void test_corrupt_truncated(void **state)
{
    (void)state;
    map_damaged(TRUNC_HALF, "truncated");
    map_damaged(TRUNC_100, "truncated");
    map_damaged(TRUNC_0, "truncated");
}

static void test_corrupt_header_byte(void **state)
{
    (void)state;
    map_damaged(HEADER_BYTE, "corrupt");
}

static void test_corrupt_foreign(void **state)
{
    (void)state;
    map_damaged(FOREIGN_MAGIC, "foreign");
}

static void test_corrupt_old_version(void **state)
{
    (void)state;
    map_damaged(OLD_VERSION, "stale");
}

/* A flipped byte inside a section (the header still checks out, so opening trusts it): verify
 * finds it, moves the file aside, and the next get rebuilds a correct file. */
static void test_corrupt_section(void **state)
{
    char path[4096], name[96];
    char *dir = built_nopovm4(path, sizeof(path));
    struct recorder rec = {0};
    struct qt_cache *c;

    (void)state;
    entry_name("nopovm", 4, name, sizeof(name));
    damage_file(path, SECTION_BYTE);
    c = open_cache(dir, 0, &rec);
    assert_err(qt_cache_verify(c, "nopovm", 4, &diag), QT_ECHECKSUM);
    assert_true(diag.msg[0] != '\0');
    assert_moved_aside(dir, &rec, name, "corrupt", true);
    {
        struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 4);
        struct qt_cache_map *map = NULL;

        assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
        assert_int_equal(count_events(&rec, QT_CACHE_BUILT, name), 1);
        assert_same_design(fresh, qt_cache_map_design(map), 12);
        assert_ok(qt_cache_verify(c, "nopovm", 4, &diag));
        qt_cache_unmap(map);
        qt_design_free(fresh);
    }
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* A flipped byte inside a section is refused when the file is mapped, not only by verify: no
 * result is ever computed from content that was not verified (issue 15, defect 4). */
static void test_corrupt_section_refused_at_map(void **state)
{
    (void)state;
    map_damaged(SECTION_BYTE, "corrupt");
}

/* A file damaged in place after a process mapped and verified it: the next use (the worker
 * checks before every item) sees the change, verifies again, refuses it, and moves it aside;
 * a truncated one is refused without reading the mapping (no SIGBUS); an unchanged one passes
 * without being read again. */
static void test_changed_after_mapping(void **state)
{
    static const enum damage kinds[] = {SECTION_BYTE, TRUNC_HALF};
    static const char *const reasons[] = {"corrupt", "truncated"};

    (void)state;
    for (size_t k = 0; k < QT_ARRAY_SIZE(kinds); k++) {
        char path[4096], name[96];
        char *dir = built_nopovm4(path, sizeof(path));
        struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 4);
        struct qt_cache_map *map = NULL;
        struct recorder rec = {0};
        struct qt_cache *c;

        entry_name("nopovm", 4, name, sizeof(name));
        c = open_cache(dir, 0, &rec);
        assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
        assert_ok(qt_cache_map_check(map, &diag));
        nap(); /* past the file system's time stamp granularity */
        damage_file(path, kinds[k]);
        assert_err(qt_cache_map_check(map, &diag), QT_ECHECKSUM);
        assert_non_null(strstr(diag.msg, "moved aside"));
        assert_moved_aside(dir, &rec, name, reasons[k], true);
        qt_cache_unmap(map);
        map = NULL;
        assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
        assert_int_equal(count_events(&rec, QT_CACHE_BUILT, name), 1);
        assert_same_design(fresh, qt_cache_map_design(map), 12);
        assert_ok(qt_cache_map_check(map, &diag));
        qt_cache_unmap(map);
        qt_cache_close(c);
        qt_design_free(fresh);
        drop_tmpdir(dir);
    }
}

/* The same when another process moved the damaged file aside first (a second worker; it may
 * have been killed right after): the error says so instead of claiming the move, and this
 * cache reports no move of its own. */
static void test_changed_after_mapping_moved_by_another(void **state)
{
    char path[4096], name[96], away[4200];
    char *dir = built_nopovm4(path, sizeof(path));
    struct qt_cache_map *map = NULL;
    struct recorder rec = {0};
    struct qt_cache *c;

    (void)state;
    entry_name("nopovm", 4, name, sizeof(name));
    c = open_cache(dir, 0, &rec);
    assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
    nap();
    damage_file(path, TRUNC_HALF);
    (void)snprintf(away, sizeof(away), "%s.moved", path);
    assert_int_equal(rename(path, away), 0);
    assert_err(qt_cache_map_check(map, &diag), QT_ECHECKSUM);
    assert_non_null(strstr(diag.msg, "already moved aside or replaced by another process"));
    assert_int_equal(count_events(&rec, QT_CACHE_QUARANTINED, name), 0);
    qt_cache_unmap(map);
    qt_cache_close(c);
    assert_int_equal(unlink(away), 0);
    drop_tmpdir(dir);
}

/* get straight on a damaged file: moved aside and rebuilt in one call. */
static void test_get_on_corrupt(void **state)
{
    static const enum damage kinds[] = {HEADER_BYTE, TRUNC_HALF};

    static const char *const reasons[] = {"corrupt", "truncated"};

    (void)state;
    for (size_t k = 0; k < QT_ARRAY_SIZE(kinds); k++) {
        char path[4096], name[96];
        char *dir = built_nopovm4(path, sizeof(path));
        struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 4);
        struct qt_cache_map *map = NULL;
        struct recorder rec = {0};
        struct qt_cache *c;

        entry_name("nopovm", 4, name, sizeof(name));
        damage_file(path, kinds[k]);
        c = open_cache(dir, 0, &rec);
        assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
        assert_moved_aside(dir, &rec, name, reasons[k], false);
        assert_int_equal(count_events(&rec, QT_CACHE_BUILT, name), 1);
        assert_true(rec.ev[0].kind == QT_CACHE_QUARANTINED);
        assert_true(exists_in(dir, name));
        assert_same_design(fresh, qt_cache_map_design(map), 12);
        qt_cache_unmap(map);
        assert_ok(qt_cache_verify(c, "nopovm", 4, &diag));
        qt_cache_close(c);
        qt_design_free(fresh);
        drop_tmpdir(dir);
    }
}

/* Something other than a regular file at an entry's name: a FIFO made every process that opened
 * it wait for a writer (a worker until its item's deadline, on every request), a directory
 * failed every sample. Both are moved aside as foreign and the entry rebuilt, by qt_cache_get
 * (through ensure) and, refused by name, by qt_cache_map. The old code hangs on the FIFO. */
static void test_not_regular_file(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        char path[4096], name[96];
        char *dir = built_nopovm4(path, sizeof(path));
        struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 4);
        struct qt_cache_map *map = NULL;
        struct recorder rec = {0};
        const struct rec_event *ev;
        struct qt_cache *c;
        struct stat st;

        entry_name("nopovm", 4, name, sizeof(name));
        for (int via_map = 0; via_map < 2; via_map++) {
            assert_int_equal(unlink(path), 0);
            assert_int_equal(kind ? mkdir(path, 0750) : mkfifo(path, 0640), 0);
            c = open_cache(dir, 0, &rec);
            if (via_map) {
                assert_int_equal(qt_cache_map(c, "nopovm", 4, &map, &diag), QT_ECHECKSUM);
                assert_non_null(strstr(diag.msg, "not a regular file"));
                assert_false(exists_in(dir, name));
                assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
            } else {
                assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag));
            }
            ev = find_event(&rec, QT_CACHE_QUARANTINED, name);
            assert_non_null(ev);
            assert_non_null(strstr(ev->reason, "not a regular file"));
            assert_int_equal(quarantined(dir, name), (size_t)via_map + 1);
            assert_int_equal(stat(path, &st), 0);
            assert_true(S_ISREG(st.st_mode));
            assert_same_design(fresh, qt_cache_map_design(map), 12);
            qt_cache_unmap(map);
            qt_cache_close(c);
            rec = (struct recorder){0};
        }
        /* cache.evict removes one as it is (it said "Unknown error 1001" and kept it) */
        {
            struct qt_cache *ce = open_cache(dir, 0, NULL);

            assert_int_equal(unlink(path), 0);
            assert_int_equal(kind ? mkdir(path, 0750) : mkfifo(path, 0640), 0);
            assert_ok(qt_cache_evict(ce, "nopovm", 4, &diag));
            assert_false(exists_in(dir, name));
            qt_cache_close(ce);
        }
        qt_design_free(fresh);
        drop_tmpdir(dir);
    }
}

/* ---- 3. concurrent builders ---- */

#define N_BUILDERS 6

/* Child: waits for the start signal, builds through its own handle. Exit status: 0 found,
 * 1 built, 2 open failed, 3 ensure failed, 4 start pipe failed. */
static int builder_child(const char *dir, int go)
{
    struct qt_diag err = {0};
    struct qt_cache *c = NULL;
    bool built = false;
    char b;
    int r;

    if (read_full(go, &b, 1) != 0)
        return 4;
    r = qt_cache_open(dir, NULL, &c, &err);
    if (r < 0) {
        fprintf(stderr, "child %d: open: %s\n", (int)getpid(), err.msg);
        return 2;
    }
    r = qt_cache_ensure(c, QT_DESIGN_MUB, 16, NULL, &built, &err);
    qt_cache_close(c);
    if (r < 0) {
        fprintf(stderr, "child %d: ensure: %d %s\n", (int)getpid(), r, err.msg);
        return 3;
    }
    return built ? 1 : 0;
}

static void test_concurrent_builders(void **state)
{
    char *dir = make_tmpdir(), name[96];
    pid_t pids[N_BUILDERS];
    int go[2], n_built = 0;
    struct qt_cache *c;
    struct qt_cache_entry *e = NULL;
    size_t n = 0;

    (void)state;
    entry_name("mub", 16, name, sizeof(name));
    assert_int_equal(pipe(go), 0);
    fflush(stdout);
    fflush(stderr);
    for (size_t i = 0; i < N_BUILDERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            _exit(builder_child(dir, go[0]));
        }
    }
    close(go[0]);
    nap();        /* let every child reach its read */
    close(go[1]); /* EOF: all start at once */
    for (size_t i = 0; i < N_BUILDERS; i++) {
        int st = 0;

        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
            print_error("builder %zu: %s %d\n", i, WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
        n_built += WEXITSTATUS(st);
    }
    assert_int_equal(n_built, 1);

    c = open_cache(dir, 0, NULL);
    assert_ok(qt_cache_verify(c, "mub", 16, &diag));
    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 1);
    assert_string_equal(e[0].name, name);
    assert_int_equal(e[0].mapped_by, 0);
    free(e);
    qt_cache_close(c);
    {
        const char *const names[] = {name};

        assert_dir_holds(dir, names, 1);
    }
    assert_int_equal(quarantined(dir, ""), 0);
    drop_tmpdir(dir);
}

/* ---- 4. eviction ---- */

/* Child: maps nopovm d = 6, says so, waits for the release, unmaps. */
static int mapper_child(const char *dir, int ready, int release)
{
    struct qt_diag err = {0};
    struct qt_cache *c = NULL;
    struct qt_cache_map *map = NULL;
    char b = 'r';

    if (qt_cache_open(dir, NULL, &c, &err) < 0 || qt_cache_map(c, "nopovm", 6, &map, &err) < 0) {
        fprintf(stderr, "mapper child: %s\n", err.msg);
        return 2;
    }
    if (write(ready, &b, 1) != 1)
        return 3;
    if (read_full(release, &b, 1) != 0)
        return 4;
    qt_cache_unmap(map);
    qt_cache_close(c);
    return 0;
}

static void map_unmap(struct qt_cache *c, size_t d)
{
    struct qt_cache_map *map = NULL;

    assert_ok(qt_cache_map(c, "nopovm", d, &map, &diag));
    qt_cache_unmap(map);
}

static void test_eviction_lru(void **state)
{
    char *dir = make_tmpdir(), names[9][96];
    uint64_t size[9] = {0}, budget, usage = 0;
    struct recorder rec = {0};
    struct qt_cache_entry *e = NULL;
    struct qt_cache_map *m4 = NULL, *m6 = NULL, *m7 = NULL;
    struct qt_cache *c;
    bool built = false;
    size_t n = 0;

    (void)state;
    for (size_t d = 4; d <= 7; d++)
        entry_name("nopovm", d, names[d], sizeof(names[d]));

    /* Learn the sizes of d = 4..7 with an ample budget, then drop d = 7 again. */
    c = open_cache(dir, (uint64_t)1 << 32, NULL);
    for (size_t d = 4; d <= 7; d++)
        assert_ok(qt_cache_ensure(c, QT_DESIGN_NOPOVM, d, NULL, NULL, &diag));
    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 4);
    for (size_t d = 4; d <= 7; d++) {
        const struct qt_cache_entry *x = find_entry(e, n, names[d]);

        assert_non_null(x);
        assert_string_equal(x->design, "nopovm");
        assert_int_equal(x->d, d);
        assert_int_equal(x->m, d * d);
        assert_int_equal(x->mapped_by, 0);
        size[d] = x->bytes;
        assert_true(size[d] > 1024);
    }
    free(e);
    assert_ok(qt_cache_usage(c, &usage, &diag));
    assert_int_equal(usage, size[4] + size[5] + size[6] + size[7]);
    assert_ok(qt_cache_evict(c, "nopovm", 7, &diag));
    assert_false(exists_in(dir, names[7]));
    qt_cache_close(c);

    /* Three fit, four do not. Last use order: 5, 6, 4 (4 touched by a map). */
    budget = size[4] + size[5] + size[6] + size[7] - 1;
    c = open_cache(dir, budget, &rec);
    nap();
    map_unmap(c, 5);
    nap();
    map_unmap(c, 6);
    nap();
    map_unmap(c, 4);
    nap();
    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 3);
    {
        const struct qt_cache_entry *e4 = find_entry(e, n, names[4]),
                                    *e5 = find_entry(e, n, names[5]),
                                    *e6 = find_entry(e, n, names[6]);

        assert_true(e4 && e5 && e6);
        if (!(e5->last_use_ns < e6->last_use_ns && e6->last_use_ns < e4->last_use_ns))
            print_error("last use: d4 %lld d5 %lld d6 %lld\n", (long long)e4->last_use_ns,
                        (long long)e5->last_use_ns, (long long)e6->last_use_ns);
        assert_true(e5->last_use_ns < e6->last_use_ns);
        assert_true(e6->last_use_ns < e4->last_use_ns);
    }
    free(e);

    assert_ok(qt_cache_ensure(c, QT_DESIGN_NOPOVM, 7, NULL, &built, &diag));
    assert_true(built);
    if (count_events(&rec, QT_CACHE_EVICTED, NULL) != 1 ||
        count_events(&rec, QT_CACHE_EVICTED, names[5]) != 1)
        print_events(&rec);
    assert_int_equal(count_events(&rec, QT_CACHE_EVICTED, NULL), 1);
    assert_int_equal(count_events(&rec, QT_CACHE_EVICTED, names[5]), 1);
    assert_int_equal(find_event(&rec, QT_CACHE_EVICTED, names[5])->bytes, size[5]);
    assert_int_equal(count_events(&rec, QT_CACHE_BUILT, names[7]), 1);
    assert_true(exists_in(dir, names[4]));
    assert_false(exists_in(dir, names[5]));
    assert_true(exists_in(dir, names[6]));
    assert_true(exists_in(dir, names[7]));
    assert_ok(qt_cache_usage(c, &usage, &diag));
    assert_int_equal(usage, size[4] + size[6] + size[7]);
    assert_true(usage <= budget);

    /* Everything mapped: adding d = 5 back needs an eviction there is no candidate for. */
    assert_ok(qt_cache_map(c, "nopovm", 6, &m6, &diag));
    assert_ok(qt_cache_map(c, "nopovm", 7, &m7, &diag));
    assert_ok(qt_cache_map(c, "nopovm", 4, &m4, &diag));
    assert_int_equal(mapped_by(c, names[4]), 1);
    assert_int_equal(mapped_by(c, names[6]), 1);
    assert_int_equal(mapped_by(c, names[7]), 1);
    rec.n = 0;
    assert_err(qt_cache_ensure(c, QT_DESIGN_NOPOVM, 5, NULL, &built, &diag), -ENOSPC);
    assert_true(diag.msg[0] != '\0');
    assert_int_equal(count_events(&rec, QT_CACHE_EVICTED, NULL), 0);
    assert_false(exists_in(dir, names[5]));
    {
        const char *const keep[] = {names[4], names[6], names[7]};

        assert_dir_holds(dir, keep, 3);
    }
    /* The mapped designs are still intact. */
    {
        struct qt_design *fresh = fresh_design(QT_DESIGN_NOPOVM, 6);

        assert_same_design(fresh, qt_cache_map_design(m6), 21);
        qt_design_free(fresh);
    }
    qt_cache_unmap(m4);
    qt_cache_unmap(m6);
    qt_cache_unmap(m7);
    assert_int_equal(mapped_by(c, names[4]), 0);
    assert_int_equal(mapped_by(c, names[6]), 0);
    assert_int_equal(mapped_by(c, names[7]), 0);

    /* A mapping held by another process counts, and protects the entry. */
    {
        int ready[2], release[2], st = 0;
        pid_t pid;
        char b;

        assert_int_equal(pipe(ready), 0);
        assert_int_equal(pipe(release), 0);
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(ready[0]);
            close(release[1]);
            _exit(mapper_child(dir, ready[1], release[0]));
        }
        close(ready[1]);
        close(release[0]);
        assert_int_equal(read_full(ready[0], &b, 1), 1);
        assert_int_equal(mapped_by(c, names[6]), 1);
        assert_int_equal(mapped_by(c, names[4]), 0);
        assert_err(qt_cache_evict(c, "nopovm", 6, &diag), -EBUSY);
        assert_true(exists_in(dir, names[6]));
        close(release[1]);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(ready[0]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(mapped_by(c, names[6]), 0);
    }
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* ---- 5. budget ---- */

static void test_budget_too_small(void **state)
{
    char *dir = make_tmpdir();
    struct qt_cache *c = open_cache(dir, 1024, NULL);
    struct qt_cache_entry *e = NULL;
    struct qt_cache_map *map = NULL;
    bool built = true;
    size_t n = 99;

    (void)state;
    assert_err(qt_cache_ensure(c, QT_DESIGN_NOPOVM, 4, NULL, &built, &diag), QT_ETOOBIG);
    assert_true(diag.msg[0] != '\0');
    assert_err(qt_cache_get(c, QT_DESIGN_NOPOVM, 4, &map, &diag), QT_ETOOBIG);
    assert_null(map);
    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 0);
    free(e);
    assert_dir_holds(dir, NULL, 0);
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* ---- 6. evict ---- */

static void test_evict(void **state)
{
    char *dir = make_tmpdir(), name[96];
    struct qt_cache *c = open_cache(dir, 0, NULL);
    struct qt_cache_map *map = NULL;
    struct qt_cache_entry *e = NULL;
    uint64_t usage = 1;
    size_t n = 99;

    (void)state;
    entry_name("nopovm", 3, name, sizeof(name));
    assert_ok(qt_cache_get(c, QT_DESIGN_NOPOVM, 3, &map, &diag));
    assert_err(qt_cache_evict(c, "nopovm", 3, &diag), -EBUSY);
    assert_true(exists_in(dir, name));
    assert_err(qt_cache_evict(c, "mub", 7, &diag), -ENOENT);
    qt_cache_unmap(map);
    assert_ok(qt_cache_evict(c, "nopovm", 3, &diag));
    assert_false(exists_in(dir, name));
    assert_err(qt_cache_evict(c, "nopovm", 3, &diag), -ENOENT);
    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 0);
    free(e);
    assert_ok(qt_cache_usage(c, &usage, &diag));
    assert_int_equal(usage, 0);
    assert_dir_holds(dir, NULL, 0);
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* ---- 7. list and file names ---- */

static void test_list_junk_and_names(void **state)
{
    static const char *const bad[] = {"", "a/b", "/mub", "mub/", "..", "../mub", "mub/..", "x..y"};
    char *dir = make_tmpdir(), path[4096], name[96], buf[96];
    struct qt_cache *c = open_cache(dir, 0, NULL);
    struct qt_cache_entry *e = NULL;
    FILE *f;
    size_t n = 0;

    (void)state;
    join(path, sizeof(path), dir, "garbage-d4.qtpc");
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++)
        fputs("this is not a projector cache file\n", f);
    assert_int_equal(fclose(f), 0);
    assert_ok(qt_cache_ensure(c, QT_DESIGN_NOPOVM, 2, NULL, NULL, &diag));
    entry_name("nopovm", 2, name, sizeof(name));

    assert_ok(qt_cache_list(c, &e, &n, &diag));
    assert_int_equal(n, 2);
    assert_string_equal(e[0].name, "garbage-d4.qtpc"); /* sorted by name */
    assert_string_equal(e[0].design, "?");
    assert_int_equal(e[0].d, 0);
    assert_int_equal(e[0].mapped_by, 0);
    assert_string_equal(e[1].name, name);
    assert_string_equal(e[1].design, "nopovm");
    assert_string_equal(e[1].id, "nopovm");
    assert_int_equal(e[1].d, 2);
    assert_int_equal(e[1].m, 4);
    assert_int_equal(e[1].bytes, file_size(dir, name));
    assert_true(e[1].last_use_ns > 0);
    free(e);
    assert_true(exists_in(dir, "garbage-d4.qtpc")); /* list only reports */

    assert_ok(qt_cache_file_name("mub", 5, buf, sizeof(buf)));
    assert_string_equal(buf, "mub-d5.qtpc");
    assert_ok(qt_cache_file_name("pauli", 16, buf, sizeof(buf)));
    assert_string_equal(buf, "pauli-d16.qtpc");
    assert_ok(qt_cache_file_name("custom-0123456789abcdef0123456789abcdef", 3, buf, sizeof(buf)));
    assert_string_equal(buf, "custom-0123456789abcdef0123456789abcdef-d3.qtpc");
    for (size_t i = 0; i < QT_ARRAY_SIZE(bad); i++) {
        int r = qt_cache_file_name(bad[i], 4, buf, sizeof(buf));

        if (r != -EINVAL)
            print_error("id '%s': %d\n", bad[i], r);
        assert_int_equal(r, -EINVAL);
    }
    assert_true(qt_cache_file_name("mub", 5, buf, 6) < 0); /* does not fit */
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* ---- 8. warm ---- */

static void test_warm(void **state)
{
    static const enum qt_design_kind kinds[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_PAULI,
                                                QT_DESIGN_SIC};

    static const size_t dims[] = {3, 5, 4, 2};

    static const enum qt_design_kind kinds2[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_MUB};

    static const size_t dims2[] = {2, 6, 3};
    char *dir = make_tmpdir(), name[96];
    struct recorder rec = {0};
    struct qt_cache *c = open_cache(dir, 0, &rec);
    size_t failed = 99;

    (void)state;
    assert_ok(qt_cache_warm(c, QT_ARRAY_SIZE(kinds), kinds, dims, &failed, &diag));
    assert_int_equal(count_events(&rec, QT_CACHE_BUILT, NULL), QT_ARRAY_SIZE(kinds));
    for (size_t i = 0; i < QT_ARRAY_SIZE(kinds); i++) {
        const char *id = qt_design_kind_name(kinds[i]);

        entry_name(id, dims[i], name, sizeof(name));
        assert_true(exists_in(dir, name));
        assert_ok(qt_cache_verify(c, id, dims[i], &diag));
    }
    /* Again: nothing to build. */
    rec.n = 0;
    assert_ok(qt_cache_warm(c, QT_ARRAY_SIZE(kinds), kinds, dims, NULL, &diag));
    assert_int_equal(rec.n, 0);
    /* Stops at the first error and names it. */
    assert_err(qt_cache_warm(c, QT_ARRAY_SIZE(kinds2), kinds2, dims2, &failed, &diag), QT_EDIM);
    assert_int_equal(failed, 1);
    entry_name("nopovm", 2, name, sizeof(name));
    assert_true(exists_in(dir, name));
    entry_name("mub", 3, name, sizeof(name));
    assert_false(exists_in(dir, name));
    qt_cache_close(c);
    drop_tmpdir(dir);
}

/* The header check on an image whose header checksum matches but whose inverse section does
 * not fit: a fuzz input had an empty inverse section at an offset far past the file (0 columns),
 * and the dense inverse then read m columns from there. Section table as in section_byte. */
static void check_pinv_edit(const unsigned char *img, size_t size, uint64_t cols, uint64_t off,
                            uint64_t bytes)
{
    unsigned char *h = aligned_alloc(64, (size + 63) / 64 * 64);
    uint32_t n;
    uint64_t sum;
    bool found = false;

    assert_non_null(h);
    memcpy(h, img, size);
    memcpy(&n, h + 236, sizeof(n));
    for (uint32_t i = 0; i < n; i++) {
        unsigned char *e = h + 240 + 32 * i;
        uint32_t id;

        memcpy(&id, e, sizeof(id));
        if (id != 7) /* the inverse (FORMAT.md) */
            continue;
        found = true;
        if (off)
            memcpy(e + 8, &off, sizeof(off));
        memcpy(e + 16, &bytes, sizeof(bytes));
    }
    assert_true(found);
    memcpy(h + 96, &cols, sizeof(cols));
    sum = XXH3_64bits(h, 1016);
    memcpy(h + 1016, &sum, sizeof(sum));
    assert_int_equal(qt_cf_check(h, size, size, false, NULL, NULL), QT_CF_CORRUPT);
    free(h);
}

static void test_corrupt_inverse_columns(void **state)
{
    char *dir = make_tmpdir(), name[96], path[4096];
    struct qt_cache *c = open_cache(dir, 0, NULL);
    unsigned char *img;
    struct stat st;
    int fd;

    (void)state;
    assert_ok(qt_cache_ensure(c, QT_DESIGN_SIC, 2, NULL, NULL, &diag));
    qt_cache_close(c);
    entry_name("sic", 2, name, sizeof(name));
    join(path, sizeof(path), dir, name);
    assert_int_equal(stat(path, &st), 0);
    img = aligned_alloc(64, ((size_t)st.st_size + 63) / 64 * 64);
    assert_non_null(img);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    pread_full(fd, img, (size_t)st.st_size, 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(qt_cf_check(img, (size_t)st.st_size, (uint64_t)st.st_size, true, NULL, NULL),
                     QT_CF_OK);
    /* no columns, an empty section far past the end */
    check_pinv_edit(img, (size_t)st.st_size, 0, (uint64_t)1 << 62, 0);
    /* fewer columns than outcomes (sic d = 2: m = 4), the section sized to match */
    check_pinv_edit(img, (size_t)st.st_size, 3, 0, 4 * 3 * 16);
    free(img);
    drop_tmpdir(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_corrupt_inverse_columns),
    cmocka_unit_test(test_round_trip),          cmocka_unit_test(test_round_trip_custom),
    cmocka_unit_test(test_round_trip_mixed),
    cmocka_unit_test(test_corrupt_truncated),   cmocka_unit_test(test_corrupt_header_byte),
    cmocka_unit_test(test_corrupt_foreign),     cmocka_unit_test(test_corrupt_old_version),
    cmocka_unit_test(test_corrupt_section),     cmocka_unit_test(test_get_on_corrupt),
    cmocka_unit_test(test_not_regular_file),
    cmocka_unit_test(test_corrupt_section_refused_at_map),
    cmocka_unit_test(test_changed_after_mapping),
    cmocka_unit_test(test_changed_after_mapping_moved_by_another),
    cmocka_unit_test(test_concurrent_builders), cmocka_unit_test(test_eviction_lru),
    cmocka_unit_test(test_budget_too_small),    cmocka_unit_test(test_evict),
    cmocka_unit_test(test_list_junk_and_names), cmocka_unit_test(test_warm),
};

/* OpenBLAS may start its thread pool in the parent; the tests fork. One thread, set before
 * anything runs (CTest also sets it). The weak reference keeps this optional. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

int main(int argc, char **argv)
{
    (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
    if (openblas_set_num_threads)
        openblas_set_num_threads(1);
    return qt_test_main(argc, argv, __FILE__, tests, QT_ARRAY_SIZE(tests));
}

/* Worker mode of qtomod (`qtomod --worker`, exec'd by the supervisor): reads framed work from
 * the channel on fd 3, maps projector cache files read-only, computes, and writes one frame per
 * finished sample. Blocking I/O, one thing at a time; the supervisor owns every policy. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/qt_status.h"
#include "base/qt_ws.h"
#include "cache/qt_cache.h"
#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "num/qt_bootstrap.h"
#include "num/qt_chunk.h"
#include "num/qt_detector.h"
#include "num/qt_estimate.h"
#include "num/qt_tdbound.h"
#include "qd.h"
#include "qd_log.h"
#include "qp.h"

#define MAPS_KEPT 8 /* cache files kept mapped between chunks */

struct wmap {
    char id[64];
    size_t d;
    struct qt_cache_map *map;
    uint64_t last;
};

struct worker {
    const struct qd_conf *conf;
    struct qt_cache *cache;
    struct wmap maps[MAPS_KEPT];
    uint64_t tick;
    struct qp_writer out;
    struct qp_framer fr; /* the channel from the supervisor */
    struct qt_ws ws;
    uint64_t *progress;      /* shared with the supervisor (QD_PROGRESS), NULL: none */
    struct timespec t_flush; /* the last write of w.result frames */
};

static double elapsed_us(const struct timespec *t0)
{
    struct timespec t;

    (void)clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e6 + (double)(t.tv_nsec - t0->tv_nsec) / 1e3;
}

static int write_all(const void *p, size_t n)
{
    const char *c = p;

    while (n) {
        ssize_t k = write(QD_CHANNEL_FD, c, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -errno;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int flush_out(struct worker *w)
{
    int r = write_all(w->out.sb.data, w->out.sb.size);

    qp_writer_reset(&w->out);
    (void)clock_gettime(CLOCK_MONOTONIC, &w->t_flush);
    return r;
}

/* The next frame from the supervisor into body and len (valid until the next call): 1, 0 at a
 * clean end of the channel, or a negative error (a bad header, a frame cut short). */
static int read_frame(struct worker *w, const uint8_t **body, uint32_t *len)
{
    for (;;) {
        uint8_t *p;
        size_t n;
        ssize_t k;
        int r = qp_framer_next(&w->fr, w->conf->max_frame, body, len);

        if (r != 0)
            return r;
        r = qp_framer_space(&w->fr, 0, &p, &n);
        if (r < 0)
            return r;
        k = read(QD_CHANNEL_FD, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return qp_framer_pending(&w->fr) ? -EPIPE : 0;
        qp_framer_commit(&w->fr, (size_t)k);
    }
}

/* The mapping for (id, d), kept in a small LRU; *ret_map: its handle. */
static int get_map(struct worker *w, int kind, const char *id, size_t d,
                   const struct qt_design **ret, struct qt_cache_map **ret_map, struct qt_diag *dg)
{
    struct wmap *slot = &w->maps[0];
    int r;

    for (int i = 0; i < MAPS_KEPT; i++) {
        if (w->maps[i].map && w->maps[i].d == d && strcmp(w->maps[i].id, id) == 0) {
            struct qt_diag cd = {0};

            if (qt_cache_map_check(w->maps[i].map, &cd) < 0) {
                /* Changed on disk and no longer what was verified: map it afresh (a built-in
                 * is rebuilt). */
                qd_warn("cache: %s", cd.msg);
                qt_cache_unmap(w->maps[i].map);
                w->maps[i].map = NULL;
                slot = &w->maps[i];
                break;
            }
            w->maps[i].last = ++w->tick;
            *ret = qt_cache_map_design(w->maps[i].map);
            *ret_map = w->maps[i].map;
            return 0;
        }
        if (!w->maps[i].map || w->maps[i].last < slot->last)
            slot = &w->maps[i];
    }
    qt_cache_unmap(slot->map);
    slot->map = NULL;
    r = kind == QT_DESIGN_CUSTOM ? qt_cache_map(w->cache, id, d, &slot->map, dg)
                                 : qt_cache_get(w->cache, (enum qt_design_kind)kind, d, &slot->map,
                                                dg);
    if (r < 0)
        return r;
    snprintf(slot->id, sizeof(slot->id), "%s", id);
    slot->d = d;
    slot->last = ++w->tick;
    *ret = qt_cache_map_design(slot->map);
    *ret_map = slot->map;
    return 0;
}

/* A cache file changed under the mapping the worker was computing from: the samples it has not
 * answered may have been computed from zeros (a truncated file's last page) or raised SIGBUS.
 * The worker ends with QD_EXIT_CACHE_CHANGED; the supervisor retries them on a fresh worker,
 * whose mapping verifies the file again (a damaged one is moved aside and rebuilt). */
static _Noreturn void cache_changed_exit(const char *name)
{
    qd_warn("cache: %s changed during an item; exiting so that its samples are retried", name);
    _exit(QD_EXIT_CACHE_CHANGED);
}

/* SIGBUS inside a cache mapping: the file was truncated under it. Anywhere else, or sent by
 * kill(2): the default action (the handler was reset by SA_RESETHAND). Async-signal-safe. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_code > 0 && qt_cache_addr_file(si->si_addr))
        _exit(QD_EXIT_CACHE_CHANGED);
    if (si->si_code <= 0)
        raise(sig); /* from kill(2): returning would ignore it */
    /* a fault elsewhere: returning re-runs the access, which now kills the worker */
}

#ifdef QTOMO_TEST_HOOKS
/* Searched for by tests/packaging/test_deb.py: a packaged qtomod must not contain it. */
__attribute__((used)) static const char hooks_marker[] = "QTOMO_TEST_HOOKS_ENABLED";

/* QD_HOOK_WAIT: says it waits (waiting.<pid>), then waits for go, polling every 5 ms; spin:
 * without sleeping (QD_HOOK_SPIN). */
static void hook_wait(bool spin)
{
    const char *dir = getenv("QTOMO_TEST_HOOK_DIR");
    char path[4096];
    int fd;

    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/waiting.%d", dir, (int)getpid());
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof(path), "%s/go", dir);
    for (int i = 0; i < 12000 && access(path, F_OK) < 0; i++) {
        struct timespec ts = {0, 5000000}, t0, t;

        if (!spin) {
            nanosleep(&ts, NULL);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do
            clock_gettime(CLOCK_MONOTONIC, &t);
        while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < ts.tv_nsec);
    }
}

/* QD_HOOK_ALLOC: memory until the OOM killer comes, or the bound. */
static void hook_alloc(void)
{
    const char *e = getenv("QTOMO_TEST_HOOK_ALLOC_MB");
    long mb = e ? strtol(e, NULL, 10) : 1024;
    char **blocks = calloc((size_t)(mb > 0 ? mb : 1) / 4 + 1, sizeof(*blocks));
    long n = 0;

    for (; blocks && n < mb / 4; n++) {
        blocks[n] = malloc((size_t)4 << 20);
        if (!blocks[n])
            break;
        memset(blocks[n], 0x5a, (size_t)4 << 20);
    }
    while (blocks && n-- > 0)
        free(blocks[n]);
    free(blocks);
}

/* Test-only faults, chosen by the sample's first value (never compiled into release builds):
 * QD_HOOK_CRASH aborts the worker, QD_HOOK_HANG makes it stop answering, QD_HOOK_WAIT and
 * QD_HOOK_SPIN make it wait for the test, QD_HOOK_ALLOC makes it allocate memory (qd.h). */
static void test_hooks(const double *y)
{
    if (y[0] == QD_HOOK_CRASH)
        abort();
    if (y[0] == QD_HOOK_HANG)
        for (;;)
            pause();
    if (y[0] == QD_HOOK_WAIT || y[0] == QD_HOOK_SPIN)
        hook_wait(y[0] == QD_HOOK_SPIN);
    if (y[0] == QD_HOOK_ALLOC)
        hook_alloc();
}

/* QTOMO_TEST_WORKER_START_MS: a slow start-up, so that tests can hit workers while they start. */
static void test_start_delay(void)
{
    const char *v = getenv("QTOMO_TEST_WORKER_START_MS");

    if (v)
        (void)usleep((useconds_t)strtoul(v, NULL, 10) * 1000u);
}
#else
static void test_hooks(const double *y)
{
    (void)y;
}

static void test_start_delay(void)
{
}
#endif

/* One w.result frame for the sample with absolute index idx: its results array as msgpack
 * bytes and how many of its maps are errors; a unit of resamples adds its rows. Frames wait
 * to be written together while the progress word tells the supervisor which sample runs (a
 * crash is charged to it), at most QD_FLUSH_US apart and 64 KB; the last waits for the item's
 * response, with nothing computed in between. Without the progress word each is written at
 * once (the supervisor charges a crash to the first sample it has no answer for). */
static int send_result(struct worker *w, uint64_t idx, double us,
                       const struct qt_result *const *res, size_t n_res, const enum qt_method *meth,
                       size_t d, int err, const char *msg, const struct qp_boot_rows *boot,
                       bool last)
{
    struct qp_w_result wr = {
        .index = idx, .us = us, .failed = (uint32_t)n_res, .boot = boot, .n_boot = n_res};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (res) {
        qp_pack_results(&pk, res, n_res);
        wr.failed = 0;
        for (size_t k = 0; k < n_res; k++)
            wr.failed += res[k]->err != 0;
    } else {
        qp_pack_error_results(&pk, meth, n_res, d, err, msg);
    }
    wr.results = sb.data;
    wr.len = sb.size;
    r = qp_pack_w_result(&w->out, &wr);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0 || last)
        return r;
    if (w->progress && w->out.sb.size < (64u << 10) && elapsed_us(&w->t_flush) < QD_FLUSH_US)
        return 0;
    return flush_out(w);
}

/* The worker's side of qt_chunk_estimate: one result frame per sample. */
struct chunk_ctx {
    struct worker *w;
    struct qt_cache_map *map; /* computed from */
    uint64_t first_index;
    size_t n;    /* samples in the item */
    uint32_t id; /* the item's request id */
    bool called; /* a sample reached us: the estimator's own errors are behind */
    /* a unit of resamples (part.set): the sample's values and the request */
    const struct qt_design *des;
    const struct qp_job *job;
    const double *y;
};

/* A unit of resamples of the sample whose point estimates are res: rows for each method whose
 * estimate succeeded, [k0, k0 + n) of the request's N, streams keyed by the sample's absolute
 * index (the same as qtomoctl --local). Rows that cannot be computed (data that are not counts,
 * which the supervisor's check refuses before) are all failed rows, never missing ones. */
static int boot_unit(struct chunk_ctx *cc, const struct qt_result *const *res, size_t n_res,
                     double us)
{
    const struct qp_job *j = cc->job;
    const struct qt_design *des = cc->des;
    struct qp_boot_rows rows[_QT_METHOD_MAX] = {{0}};
    double *buf[_QT_METHOD_MAX] = {NULL}, *z = malloc(des->m * sizeof(double));
    struct qt_boot_opts bo = {j->boot.resamples, j->boot.kind, j->boot.seed, j->part.sample,
                              j->boot.confidence};
    struct timespec t0;
    char msg[160];
    int r = z ? 0 : -ENOMEM, cr;

    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    cr = z ? qt_boot_counts(des, &cc->w->ws, cc->y, j->boot.shots, z, msg, sizeof(msg)) : -ENOMEM;
    for (size_t k = 0; r == 0 && k < n_res; k++) {
        uint64_t have;
        size_t stride;

        if (res[k]->err)
            continue; /* nil: the estimate's map says why */
        have = qt_boot_have(res[k]);
        stride = qt_boot_stride(have, des->d);
        buf[k] = calloc((size_t)j->part.n * stride, sizeof(double));
        if (!buf[k]) {
            r = -ENOMEM;
            break;
        }
        if (cr == 0)
            r = qt_boot_run(des, &cc->w->ws, res[k]->method, z, &j->opts, res[k], &bo, have,
                            j->part.k0, j->part.n, buf[k]);
        rows[k] = (struct qp_boot_rows){.ok = true,
                                        .have = have,
                                        .k0 = j->part.k0,
                                        .n = j->part.n,
                                        .rows_le = buf[k],
                                        .len = (size_t)j->part.n * stride * sizeof(double),
                                        .boundary =
                                            qt_boot_boundary(res[k], des->d, j->opts.tolerance)};
        if (r == QT_ENOTCOUNTS) { /* not counts: failed rows */
            memset(buf[k], 0, rows[k].len);
            r = 0;
        }
        if (r == 0 && cr == 0 && j->part.k0 == 0 && res[k]->method == QT_METHOD_LINEAR)
            rows[k].has_td_bound = qt_td_bound(des, &cc->w->ws, z, &j->opts, res[k]->rho,
                                               j->boot.confidence, &rows[k].td_bound) == 0;
    }
    if (r == 0) {
        if (qt_cache_map_changed(cc->map))
            cache_changed_exit(qt_cache_map_name(cc->map));
        r = send_result(cc->w, cc->first_index, us + elapsed_us(&t0), res, n_res, NULL, 0, 0, NULL,
                        rows, true);
    }
    for (size_t k = 0; k < _QT_METHOD_MAX; k++)
        free(buf[k]);
    free(z);
    return r;
}

static void set_progress(struct worker *w, uint32_t id, size_t done)
{
    if (w->progress)
        __atomic_store_n(w->progress, QD_PROGRESS(id, done), __ATOMIC_RELEASE);
}

static int chunk_result(size_t i, const struct qt_result *const *res, size_t n_res, double us,
                        void *userdata)
{
    struct chunk_ctx *cc = userdata;
    int r;

    cc->called = true;
    if (qt_cache_map_changed(cc->map))
        cache_changed_exit(qt_cache_map_name(cc->map));
    if (cc->job->part.set)
        return boot_unit(cc, res, n_res, us);
    r = send_result(cc->w, cc->first_index + i, us, res, n_res, NULL, 0, 0, NULL, NULL,
                    i + 1 == cc->n);
    set_progress(cc->w, cc->id, i + 1); /* sample i + 1 runs now */
    return r;
}

/* A chunk: the params of a submit (qp_pack_job) with first_index = absolute index. */
static int do_chunk(struct worker *w, uint32_t id, const msgpack_object *params)
{
    struct qp_job j;
    struct qt_diag dg = {0};
    const struct qt_design *des = NULL;
    struct qt_cache_map *map = NULL;
    enum qt_method meth[_QT_METHOD_MAX];
    size_t nm = 0, d;
    int kind, r, err = 0;
    const char *id_str;

    qp_job_init(&j);
    r = qp_decode_job(params, QP_M_SUBMIT, w->conf->max_dim, QD_MAX_CHUNK, &j, &dg);
    if (r < 0) {
        qd_err("bad chunk from the supervisor: %s", dg.msg);
        qp_job_done(&j);
        return r;
    }
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (j.methods[m])
            meth[nm++] = (enum qt_method)m;
    d = j.d;
    kind = qt_design_kind_from_name(j.design);
    id_str = kind == QT_DESIGN_CUSTOM ? j.design_id : qt_design_kind_name((enum qt_design_kind)kind);
    if (kind < 0 || d == 0) {
        err = kind < 0 ? kind : QT_EDIM;
        snprintf(dg.msg, sizeof(dg.msg), "design '%s' d %zu not resolved", j.design, d);
    } else {
        err = get_map(w, kind, id_str, d, &des, &map, &dg);
        /* A custom design's file removed after the request was accepted (evicted, or deleted
         * by hand): say what to do, as the check layer does when it is missing at submit. */
        if (err == -ENOENT && kind == QT_DESIGN_CUSTOM)
            snprintf(dg.msg, sizeof(dg.msg),
                     "custom design %s at d = %zu is no longer in the cache (upload it again "
                     "with design.put)",
                     id_str, d);
    }
    if (err == 0 && des->m != j.m) {
        err = QT_ESAMPLELEN;
        snprintf(dg.msg, sizeof(dg.msg), "%zu values, design %s d = %zu has %zu outcomes", j.m,
                 des->name, d, des->m);
    }
    if (err == 0 && j.target)
        err = qt_target_check(d, j.target, &dg);
    if (err == 0)
        for (size_t i = 0; i < j.n; i++)
            test_hooks(j.values + j.m * i);
    if (err == 0) {
        struct chunk_ctx cc = {w, map, j.first_index, j.n, id, false, des, &j, j.values};

        set_progress(w, id, 0);
        (void)clock_gettime(CLOCK_MONOTONIC, &w->t_flush);
        r = qt_chunk_estimate(des, &w->ws, j.values, j.m, j.n, &j.opts, meth, nm, chunk_result,
                              &cc);
        if (r < 0 && !cc.called)
            err = r; /* records or the linear batch (-ENOMEM): no sample was sent */
    }
    /* A chunk that could not run gets an error result for every sample. */
    for (size_t i = 0; err && i < j.n; i++) {
        r = send_result(w, j.first_index + i, 0.0, NULL, nm, meth, d, err,
                        dg.msg[0] ? dg.msg : qt_strerror(err), NULL, i + 1 == j.n);
        if (r < 0)
            break;
    }
    qp_job_done(&j);
    if (r < 0)
        return r;
    r = qp_pack_u64_result(&w->out, id, "n", j.n, UINT32_MAX);
    return r < 0 ? r : flush_out(w);
}

static int reply_error(struct worker *w, uint32_t id, int err, const struct qt_diag *dg)
{
    int r = qp_write_error(&w->out, id, qt_status_from_err(err),
                           dg->msg[0] ? dg->msg : qt_strerror(err), -1, UINT32_MAX);

    return r < 0 ? r : flush_out(w);
}

/* design.put: validate, store as a cache file, answer {id, d}. */
static int do_design_put(struct worker *w, uint32_t id, const msgpack_object *params)
{
    struct qt_diag dg = {0};
    struct qt_design *des = NULL;
    const char *text;
    size_t len;
    int r = qp_decode_design_put(params, &text, &len, &dg);

    if (r == 0)
        r = qt_designfile_parse(text, len, &des, &dg);
    if (r == 0)
        r = qt_cache_ensure(w->cache, QT_DESIGN_CUSTOM, des->d, des, NULL, &dg);
    if (r < 0) {
        qt_design_free(des);
        return reply_error(w, id, r, &dg);
    }
    qp_begin_response(&w->out, id);
    (void)msgpack_pack_map(&w->out.pk, 2);
    qp_pack_key(&w->out.pk, "id");
    qp_pack_str(&w->out.pk, des->id);
    qp_pack_key(&w->out.pk, "d");
    (void)msgpack_pack_uint64(&w->out.pk, des->d);
    qt_design_free(des);
    r = qp_frame_end(&w->out, UINT32_MAX);
    return r < 0 ? r : flush_out(w);
}

/* detector.put: the model checked against its base design, its effective design (with the
 * backgrounds) stored as a custom cache file; answer what to reconstruct against. */
static int do_detector_put(struct worker *w, uint32_t id, const msgpack_object *params)
{
    struct qt_diag dg = {0};
    struct qp_detector_put p;
    struct qp_detector_put_result res = {0};
    const struct qt_design *base = NULL;
    struct qt_design *eff = NULL;
    struct qt_detector *det = NULL;
    struct qt_cache_map *map = NULL;
    int kind = -1;
    int r = qp_decode_detector_put(params, w->conf->max_dim, &p, &dg);

    if (r == 0) {
        kind = qt_design_kind_from_name(p.design);
        r = get_map(w, kind, kind == QT_DESIGN_CUSTOM ? p.design_id : p.design, p.d, &base, &map,
                    &dg);
    }
    if (r == 0)
        r = qt_detectorfile_parse(p.text, p.len, base, &det, &dg);
    if (r == 0 && !det->identity)
        r = qt_detector_design(base, det, &eff, &dg);
    if (r == 0 && eff)
        r = qt_cache_ensure(w->cache, QT_DESIGN_CUSTOM, eff->d, eff, NULL, &dg);
    if (r == 0) {
        const struct qt_design *to = eff ? eff : base;

        (void)snprintf(res.design, sizeof(res.design), "%s", to->name);
        if (to->kind == QT_DESIGN_CUSTOM)
            (void)snprintf(res.design_id, sizeof(res.design_id), "%s", to->id);
        if (!det->identity)
            (void)snprintf(res.detector, sizeof(res.detector), "%s", det->id);
        res.d = to->d;
        res.m = to->m;
    }
    qt_design_free(eff);
    qt_detector_free(det);
    if (r < 0)
        return reply_error(w, id, r, &dg);
    r = qp_pack_detector_put_result(&w->out, id, &res, UINT32_MAX);
    return r < 0 ? r : flush_out(w);
}

static int do_warm(struct worker *w, uint32_t id, const msgpack_object *params)
{
    struct qt_diag dg = {0};
    struct qp_design_d *items = NULL;
    enum qt_design_kind kinds[QP_MAX_WARM_ITEMS];
    size_t dims[QP_MAX_WARM_ITEMS], n = 0, failed = 0;
    int r = qp_decode_cache_warm(params, w->conf->max_dim, &items, &n, &dg);

    for (size_t i = 0; r == 0 && i < n; i++) {
        int k = qt_design_kind_from_name(items[i].design);

        if (k < 0 || k == QT_DESIGN_CUSTOM)
            r = qt_diag_set(&dg, QT_EDESIGN, 0, 0, "items[%zu]: '%s' is not a built-in design",
                            i, items[i].design);
        kinds[i] = (enum qt_design_kind)k;
        dims[i] = items[i].d;
    }
    if (r == 0 && (r = qt_cache_warm(w->cache, n, kinds, dims, &failed, &dg)) < 0) {
        char msg[sizeof(dg.msg) + 32];

        snprintf(msg, sizeof(msg), "items[%zu]: %s", failed, dg.msg);
        snprintf(dg.msg, sizeof(dg.msg), "%.*s", (int)sizeof(dg.msg) - 1, msg);
    }
    free(items);
    if (r < 0)
        return reply_error(w, id, r, &dg);
    r = qp_pack_u64_result(&w->out, id, "warmed", n, UINT32_MAX);
    return r < 0 ? r : flush_out(w);
}

static int do_verify(struct worker *w, uint32_t id, const msgpack_object *params)
{
    struct qt_diag dg = {0};
    struct qt_cache_entry *e = NULL;
    struct qp_damaged *dm = NULL;
    size_t n = 0, nd = 0, checked = 0;
    char design[64];
    size_t d;
    int r = qp_decode_design_d(params, QT_DESIGN_MAX_D, design, sizeof(design), &d, &dg);

    if (r == 0 && (design[0] != 0) != (d != 0))
        r = qt_diag_set(&dg, QT_EPARSE, 0, 0, "design and d: give both or neither");
    if (r == 0)
        r = qt_cache_list(w->cache, &e, &n, &dg);
    if (r == 0 && n)
        dm = calloc(n, sizeof(*dm));
    if (r == 0 && n && !dm)
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < n; i++) {
        struct qt_diag vd = {0};

        if (design[0] && (strcmp(e[i].id, design) != 0 || e[i].d != d))
            continue;
        checked++;
        if (e[i].d == 0 || qt_cache_verify(w->cache, e[i].id, e[i].d, &vd) < 0) {
            snprintf(dm[nd].name, sizeof(dm[nd].name), "%s", e[i].name);
            snprintf(dm[nd].reason, sizeof(dm[nd].reason), "%s",
                     e[i].d == 0 ? "unreadable header" : vd.msg);
            nd++;
        }
    }
    if (r == 0 && design[0] && checked == 0)
        r = qt_diag_set(&dg, -ENOENT, 0, 0, "no cache entry %s d = %zu", design, d);
    free(e);
    if (r < 0) {
        free(dm);
        return reply_error(w, id, r, &dg);
    }
    r = qp_pack_verify_result(&w->out, id, checked, dm, nd, UINT32_MAX);
    free(dm);
    return r < 0 ? r : flush_out(w);
}

static void on_cache_event(void *userdata, const struct qt_cache_event *ev)
{
    (void)userdata;
    switch (ev->kind) {
    case QT_CACHE_BUILT:
        qd_info("cache: built %s (%llu bytes, %.3f s)", ev->name, (unsigned long long)ev->bytes,
                ev->seconds);
        break;
    case QT_CACHE_QUARANTINED:
        qd_warn("cache: moved %s aside to %s: %s", ev->name, ev->path, ev->reason);
        break;
    case QT_CACHE_EVICTED:
        qd_info("cache: evicted %s (%llu bytes)", ev->name, (unsigned long long)ev->bytes);
        break;
    }
}

/* One request from the supervisor, by method. */
static int dispatch(struct worker *w, const struct qp_msg *msg)
{
    switch (msg->method) {
    case QP_M_SUBMIT:
        return do_chunk(w, msg->id, msg->params);
    case QP_M_DESIGN_PUT:
        return do_design_put(w, msg->id, msg->params);
    case QP_M_DETECTOR_PUT:
        return do_detector_put(w, msg->id, msg->params);
    case QP_M_CACHE_WARM:
        return do_warm(w, msg->id, msg->params);
    case QP_M_CACHE_VERIFY:
        return do_verify(w, msg->id, msg->params);
    default:
        return -EPROTO;
    }
}

int qd_worker_main(const struct qd_conf *conf)
{
    struct worker w = {.conf = conf, .ws = QT_WS_INIT};
    struct qt_cache_config cc = {.budget = (uint64_t)conf->cache_budget_mb << 20,
                                 .on_event = on_cache_event};
    struct qt_diag dg = {0};
    const char *sup = getenv("QTOMO_SUPERVISOR_PID");
    FILE *oom;
    int r;

    /* Die with the supervisor; it may already be gone by the time the flag is set. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!sup || strtol(sup, NULL, 10) != (long)getppid()) {
        qd_err("worker: the supervisor is gone (or this was not started by qtomod)");
        return QD_EXIT_INIT;
    }
    oom = fopen("/proc/self/oom_score_adj", "we");
    if (oom) {
        fputs("500\n", oom); /* the kernel's OOM killer takes a worker before the supervisor */
        fclose(oom);
    }
    signal(SIGPIPE, SIG_IGN);
    {
        struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = (int)(SA_SIGINFO | SA_RESETHAND)};

        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGBUS, &sa, NULL);
    }
    r = qt_cache_open(conf->cache_dir, &cc, &w.cache, &dg);
    if (r < 0) {
        qd_err("worker: cache %s: %s", conf->cache_dir, dg.msg);
        return QD_EXIT_INIT;
    }
    { /* the supervisor's memfd, nothing else that fd 4 might be */
        char link[64] = "";
        ssize_t k = readlink("/proc/self/fd/4", link, sizeof(link) - 1);

        if (k > 0 && strncmp(link, "/memfd:qtomod-progress", 22) == 0) {
            void *p =
                mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, QD_PROGRESS_FD, 0);

            w.progress = p == MAP_FAILED ? NULL : p;
            (void)close(QD_PROGRESS_FD);
        }
    }
    qp_writer_init(&w.out);
    test_start_delay();
    if (qp_pack_w_ready(&w.out) < 0 || flush_out(&w) < 0) {
        r = QD_EXIT_INIT;
        goto out;
    }
    qp_framer_init(&w.fr);
    for (;;) {
        const uint8_t *body;
        uint32_t len;
        struct qp_msg msg;

        r = read_frame(&w, &body, &len);
        if (r == 0)
            break; /* EOF: the supervisor closed the channel (drain, recycle, exit) */
        if (r > 0)
            r = qp_msg_decode(body, len, &msg, &dg);
        else
            memset(&msg, 0, sizeof(msg));
        if (r == 0 && msg.type == QP_REQUEST)
            r = dispatch(&w, &msg);
        else if (r == 0)
            r = -EPROTO;
        qp_msg_done(&msg);
        if (r < 0) {
            qd_err("worker: channel: %s", dg.msg[0] ? dg.msg : qt_strerror(r));
            break;
        }
    }
out:
    for (int i = 0; i < MAPS_KEPT; i++)
        qt_cache_unmap(w.maps[i].map);
    qt_cache_close(w.cache);
    qp_writer_done(&w.out);
    qt_ws_done(&w.ws);
    qp_framer_done(&w.fr);
    if (w.progress)
        (void)munmap(w.progress, sizeof(uint64_t));
    return r < 0 ? QD_EXIT_FAILURE : 0;
}

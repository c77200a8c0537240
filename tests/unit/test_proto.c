/* Wire codec (proto/qp.h): golden frames for every message the encoders write, round trips
 * through the typed decoders, the frame header, the pre-scan's bounds (allocation bombs, depth,
 * truncation, trailing bytes, the reserved byte), envelope errors with and without a readable
 * id, the field named by each rejected job, and frames dropped by qp_frame_end.
 *
 * Golden frames are QT_PROTO_GOLDEN_DIR/<name>.bin: the exact frame bytes (4-byte big-endian
 * length + body). The golden tests compare the encoder output with them byte for byte; with
 * QTOMO_UPDATE_GOLDEN=1 in the environment they rewrite the files instead. Results in golden
 * frames are built by hand, so their doubles do not depend on the build's floating point. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "io/qt_designfile.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_optdesc.h"
#include "qp.h"
#include "qt_test.h"
#include "qt_test_diag.h"

#ifndef QT_PROTO_GOLDEN_DIR
#    define QT_PROTO_GOLDEN_DIR "tests/unit/golden/proto"
#endif

#define MAXF QP_DEFAULT_MAX_FRAME

/* Filled by the codec calls of the test that is running; printed when one fails. */

/* The last diagnostic mentions s. */
static void assert_diag_has(const char *s)
{
    if (!strstr(diag.msg, s)) {
        print_error("diagnostic \"%s\" does not mention \"%s\"\n", diag.msg, s);
        fail();
    }
}

/* ---- fixtures ---- */

static double *dup_doubles(const double *v, size_t n)
{
    double *p = malloc(n * sizeof(double));

    assert_non_null(p);
    memcpy(p, v, n * sizeof(double));
    return p;
}

static void set_opt(struct qt_opts *o, const char *name, double v)
{
    const struct qt_optdesc *e = qt_optdesc_find(name, strlen(name));

    assert_non_null(e);
    assert_ok(qt_optdesc_set(e, v, o));
}

/* The reconstruct request of the golden frame: one nopovm d = 2 sample, linear and mle,
 * mle-gap-tol 1e-9, physical smolin, timeout 5000 ms. */
static void make_reconstruct_job(struct qp_job *j)
{
    static const double v[4] = {0.25, 0.25, 0.25, 0.25};

    qp_job_init(j);
    j->values = dup_doubles(v, 4);
    j->m = 4;
    j->n = 1;
    (void)snprintf(j->design, sizeof(j->design), "nopovm");
    j->d = 2;
    j->methods[QT_METHOD_LINEAR] = true;
    j->methods[QT_METHOD_MLE] = true;
    set_opt(&j->opts, "mle-gap-tol", 1e-9);
    j->opts.physical = QT_PHYS_SMOLIN;
    j->timeout_ms = 5000;
}

/* The submit request of the golden frame: two nopovm d = 2 samples, linear. */
static void make_submit_job(struct qp_job *j)
{
    static const double v[8] = {40, 10, 25, 30, 0.5, 0.125, 0.25, 0.125};

    qp_job_init(j);
    j->values = dup_doubles(v, 8);
    j->m = 4;
    j->n = 2;
    (void)snprintf(j->design, sizeof(j->design), "nopovm");
    j->d = 2;
    j->methods[QT_METHOD_LINEAR] = true;
    j->progress_ms = 500;
    j->first_index = 10;
}

/* A d = 2 linear result with exactly representable values: rho, scalar metrics of every type,
 * the eigenvalue vector and two warnings. */
static void make_ok_result(struct qt_result *res)
{
    assert_ok(qt_result_init(res, 2));
    qt_result_reset(res, QT_METHOD_LINEAR);
    res->rho[0] = 0.75;
    res->rho[1] = 0.125 + 0.25 * I;
    res->rho[2] = 0.125 - 0.25 * I;
    res->rho[3] = 0.25;
    res->eigenvalues[0] = 0.875;
    res->eigenvalues[1] = 0.125;
    QT_MT_SET(&res->mt, PURITY, purity, 0.78125);
    QT_MT_SET(&res->mt, TRACE, trace, 1.0);
    QT_MT_SET(&res->mt, RANK, rank, 2);
    QT_MT_SET(&res->mt, SUCCESS, success, true);
    QT_MT_SET(&res->mt, STATUS, status, -3);
    QT_MT_SET(&res->mt, MIN_EIGENVALUE, min_eigenvalue, 0.125);
    QT_MT_SET(&res->mt, MESSAGE, message, "converged");
    res->mt.eigenvalues = res->eigenvalues;
    res->mt.eigenvalues_n = 2;
    res->mt.have |= (uint64_t)1 << QT_MT_EIGENVALUES;
    res->warnings = QT_WARN_CLIPPED | QT_WARN_NOT_CONVERGED;
}

static void make_err_result(struct qt_result *res)
{
    assert_ok(qt_result_init(res, 2));
    qt_result_reset(res, QT_METHOD_MLE);
    assert_int_equal(qt_result_fail(res, QT_ENONFINITE, "column 3 is empty"), QT_ENONFINITE);
}

/* A real linear estimate on nopovm d = 2 (round trips only: its last bits depend on the
 * build). */
static void make_estimated_result(struct qt_result *res)
{
    static const double y[4] = {40, 10, 25, 30};
    struct qt_design *des = NULL;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_opts opts;

    assert_ok(qt_design_new(QT_DESIGN_NOPOVM, 2, &des, &diag));
    qt_opts_init(&opts);
    assert_ok(qt_result_init(res, 2));
    assert_ok(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 4, &opts, res));
    assert_true(res->mt.have != 0);
    qt_ws_done(&ws);
    qt_design_free(des);
}

static const char *const features[] = {"stream", "progress", NULL};

static void make_server_info(struct qp_server_info *si)
{
    memset(si, 0, sizeof(*si));
    si->major = QP_VERSION_MAJOR;
    si->minor = QP_VERSION_MINOR;
    (void)snprintf(si->server, sizeof(si->server), "qtomod/0.1.0");
    si->max_frame = MAXF;
    si->max_dim = 256;
    si->max_batch = 100000;
    si->max_inflight = 64;
    si->max_item_ms = 60000;
    si->workers = 2;
    si->features = features;
}

/* ---- golden frames ---- */

static bool update_golden(void)
{
    const char *e = getenv("QTOMO_UPDATE_GOLDEN");

    return e && strcmp(e, "1") == 0;
}

/* The writer holds exactly one well-formed frame; compares it with (or writes) the golden file
 * <name>.bin. */
static void golden_check(const char *name, const struct qp_writer *w)
{
    const uint8_t *p = (const uint8_t *)w->sb.data;
    char path[4096];
    uint32_t len = 0;
    size_t glen = 0, n;
    char *g;
    FILE *f;

    assert_true(w->sb.size > QP_HEADER_LEN);
    assert_ok(qp_frame_header(p, MAXF, &len));
    assert_int_equal(len, w->sb.size - QP_HEADER_LEN);
    assert_ok(qp_prescan(p + QP_HEADER_LEN, len, &diag));
    assert_true(snprintf(path, sizeof(path), "%s/%s.bin", QT_PROTO_GOLDEN_DIR, name) <
                (int)sizeof(path));
    if (update_golden()) {
        f = fopen(path, "wb");
        if (!f) {
            print_error("cannot write '%s'\n", path);
            fail();
        }
        assert_int_equal(fwrite(p, 1, w->sb.size, f), w->sb.size);
        assert_int_equal(fclose(f), 0);
        return;
    }
    f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open '%s' (generate it with QTOMO_UPDATE_GOLDEN=1)\n", path);
        fail();
    }
    (void)fclose(f);
    g = qt_read_file(path, &glen);
    n = glen < w->sb.size ? glen : w->sb.size;
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)g[i] != p[i]) {
            print_error("%s: byte %zu is 0x%02x, golden 0x%02x\n", name, i, p[i], (uint8_t)g[i]);
            break;
        }
    if (glen != w->sb.size)
        print_error("%s: %zu bytes, golden %zu\n", name, w->sb.size, glen);
    assert_int_equal(glen, w->sb.size);
    assert_memory_equal(g, p, glen);
    free(g);
}

static void test_golden_hello(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_hello(&w, 1, "qtomoctl/0.1.0", MAXF));
    golden_check("hello", &w);
    qp_writer_done(&w);
}

static void test_golden_hello_result(void **state)
{
    struct qp_writer w;
    struct qp_server_info si;

    (void)state;
    make_server_info(&si);
    qp_writer_init(&w);
    assert_ok(qp_pack_hello_result(&w, 1, &si, MAXF));
    golden_check("hello_result", &w);
    qp_writer_done(&w);
}

static void test_golden_reconstruct(void **state)
{
    struct qp_writer w;
    struct qp_job j;

    (void)state;
    make_reconstruct_job(&j);
    qp_writer_init(&w);
    assert_ok(qp_pack_job(&w, 2, QP_M_RECONSTRUCT, &j, MAXF));
    golden_check("reconstruct", &w);
    qp_writer_done(&w);
    qp_job_done(&j);
}

static void test_golden_submit(void **state)
{
    struct qp_writer w;
    struct qp_job j;

    (void)state;
    make_submit_job(&j);
    qp_writer_init(&w);
    assert_ok(qp_pack_job(&w, 3, QP_M_SUBMIT, &j, MAXF));
    golden_check("submit", &w);
    qp_writer_done(&w);
    qp_job_done(&j);
}

static void test_golden_result_notify(void **state)
{
    struct qp_writer w;
    struct qt_result ok, err;
    const struct qt_result *res[2] = {&ok, &err};

    (void)state;
    make_ok_result(&ok);
    make_err_result(&err);
    qp_writer_init(&w);
    assert_ok(qp_pack_result_notify(&w, 3, 10, res, 2, MAXF));
    golden_check("result_notify", &w);
    qp_writer_done(&w);
    qt_result_done(&ok);
    qt_result_done(&err);
}

static void test_golden_reconstruct_result(void **state)
{
    struct qp_writer w;
    struct qt_result ok, err;
    const struct qt_result *res[2] = {&ok, &err};

    (void)state;
    make_ok_result(&ok);
    make_err_result(&err);
    qp_writer_init(&w);
    assert_ok(qp_pack_reconstruct_result(&w, 2, res, 2, 1.5, 20.25, 1, MAXF));
    golden_check("reconstruct_result", &w);
    qp_writer_done(&w);
    qt_result_done(&ok);
    qt_result_done(&err);
}

static void test_golden_progress(void **state)
{
    struct qp_writer w;
    const struct qp_progress p = {
        .request = 3, .done = 5, .failed = 1, .total = 20, .eta_ms = 1500};

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_progress(&w, &p, MAXF));
    golden_check("progress", &w);
    qp_writer_done(&w);
}

static void test_golden_submit_result(void **state)
{
    struct qp_writer w;
    const struct qp_totals t = {.n_ok = 18, .n_err = 2, .n_cancelled = 0, .elapsed_ms = 1234.5};

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_submit_result(&w, 3, &t, MAXF));
    golden_check("submit_result", &w);
    qp_writer_done(&w);
}

static void test_golden_cancel(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cancel(&w, 4, 3, MAXF));
    golden_check("cancel", &w);
    qp_writer_done(&w);
}

static void golden_simple(const char *name, uint32_t id, enum qp_method m, const char *design,
                          size_t d)
{
    struct qp_writer w;

    qp_writer_init(&w);
    assert_ok(qp_pack_simple(&w, id, m, design, d, MAXF));
    golden_check(name, &w);
    qp_writer_done(&w);
}

static void test_golden_status(void **state)
{
    (void)state;
    golden_simple("status", 5, QP_M_STATUS, NULL, 0);
}

static void test_golden_stats(void **state)
{
    (void)state;
    golden_simple("stats", 6, QP_M_STATS, NULL, 0);
}

static void test_golden_cache_list(void **state)
{
    (void)state;
    golden_simple("cache_list", 7, QP_M_CACHE_LIST, NULL, 0);
}

static void test_golden_cache_warm(void **state)
{
    (void)state;
    golden_simple("cache_warm", 8, QP_M_CACHE_WARM, NULL, 0);
}

static void test_golden_cache_evict(void **state)
{
    (void)state;
    golden_simple("cache_evict", 9, QP_M_CACHE_EVICT, "mub", 4);
}

static void test_golden_cache_verify(void **state)
{
    (void)state;
    golden_simple("cache_verify", 10, QP_M_CACHE_VERIFY, NULL, 0);
}

static void test_golden_reload(void **state)
{
    (void)state;
    golden_simple("reload", 11, QP_M_RELOAD, NULL, 0);
}

static void test_golden_error(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error(&w, 12, QT_ST_INVALID_PARAMS, "options.mle-gap-tol: 0 is out of range",
                             -1, MAXF));
    golden_check("error", &w);
    qp_writer_done(&w);
}

static void test_golden_error_retry(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error(&w, 13, QT_ST_BUSY, "the batch queue is full", 250, MAXF));
    golden_check("error_retry", &w);
    qp_writer_done(&w);
}

static void test_golden_protocol_error(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_protocol_error(
        &w, QT_ST_PARSE_ERROR, "a container declares 268435455 elements with 0 bytes left", MAXF));
    golden_check("protocol_error", &w);
    qp_writer_done(&w);
}

static void test_golden_bye(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_bye(&w, "shutdown", 1000, MAXF));
    golden_check("bye", &w);
    qp_writer_done(&w);
}

/* ---- golden frames: error totals and the administrative results ---- */

/* The stats result of the golden frame (the status one is its first five keys). */
static struct qp_worker_info golden_workers[2] = {
    {.pid = 4242, .state = "idle", .jobs = 500, .rss_kb = 20480},
    {.pid = 70000, .state = "busy", .jobs = 498, .rss_kb = 21504},
};

static void make_status(struct qp_status *s, bool stats)
{
    memset(s, 0, sizeof(*s));
    s->uptime_s = 3600.5;
    s->queue_interactive = 1;
    s->queue_batch = 7;
    s->inflight = 3;
    s->n_workers = 2;
    s->cache_bytes = 1048576;
    s->cache_files = 4;
    s->cache_budget = 1073741824;
    if (!stats)
        return;
    s->has_stats = true;
    s->items = 1000;
    s->errors = 3;
    s->timeouts = 1;
    s->crashes = 0;
    s->recycled = 2;
    s->output_queued = 123456;
    s->conns = 7;
    s->conns_stopped = 2;
    s->input_reserved = 59768933;
    s->conns_waiting_input = 3;
    s->workers = golden_workers;
    s->n_worker_info = 2;
}

static const struct qt_cache_entry golden_entries[2] = {
    {.name = "mub-d4.qtpc",
     .id = "mub",
     .design = "mub",
     .d = 4,
     .m = 20,
     .bytes = 8192,
     .last_use_ns = 1700000000123456789,
     .mapped_by = 2},
    {.name = "custom-0123456789abcdef0123456789abcdef-d2.qtpc",
     .id = "custom-0123456789abcdef0123456789abcdef",
     .design = "?",
     .d = 0,
     .m = 0,
     .bytes = 100,
     .last_use_ns = -1,
     .mapped_by = 0},
};

static const struct qp_design_d golden_warm_items[2] = {{"nopovm", 2}, {"mub", 4}};

static const struct qp_damaged golden_damaged[1] = {
    {.name = "sic-d3.qtpc", .reason = "section 2: checksum mismatch"}};

#define GOLDEN_DESIGN_TEXT "{\"dim\": 2, \"vectors\": [[1, 0], [0, 1]]}"
#define GOLDEN_DESIGN_ID   "custom-0123456789abcdef0123456789abcdef"

static void test_golden_error_totals(void **state)
{
    struct qp_writer w;
    const struct qp_totals t = {.n_ok = 18, .n_err = 2, .n_cancelled = 5, .elapsed_ms = 1234.5};

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error_totals(&w, 3, QT_ST_CANCELLED, "cancelled", &t, MAXF));
    golden_check("error_totals", &w);
    qp_writer_done(&w);
}

static void test_golden_cancel_result(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cancel_result(&w, 4, true, MAXF));
    golden_check("cancel_result", &w);
    qp_writer_done(&w);
}

static void golden_u64_result(const char *name, uint32_t id, const char *key, uint64_t v)
{
    struct qp_writer w;

    qp_writer_init(&w);
    assert_ok(qp_pack_u64_result(&w, id, key, v, MAXF));
    golden_check(name, &w);
    qp_writer_done(&w);
}

static void test_golden_cache_warm_result(void **state)
{
    (void)state;
    golden_u64_result("cache_warm_result", 8, "warmed", 2);
}

static void test_golden_cache_evict_result(void **state)
{
    (void)state;
    golden_u64_result("cache_evict_result", 9, "bytes", 4198400);
}

static void test_golden_reload_result(void **state)
{
    (void)state;
    golden_u64_result("reload_result", 11, "generation", 300);
}

static void test_golden_status_result(void **state)
{
    struct qp_writer w;
    struct qp_status s;

    (void)state;
    make_status(&s, false);
    qp_writer_init(&w);
    assert_ok(qp_pack_status_result(&w, 5, &s, MAXF));
    golden_check("status_result", &w);
    qp_writer_done(&w);
}

static void test_golden_stats_result(void **state)
{
    struct qp_writer w;
    struct qp_status s;

    (void)state;
    make_status(&s, true);
    qp_writer_init(&w);
    assert_ok(qp_pack_status_result(&w, 6, &s, MAXF));
    golden_check("stats_result", &w);
    qp_writer_done(&w);
}

static void test_golden_design_put(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_design_put(&w, 16, GOLDEN_DESIGN_TEXT, strlen(GOLDEN_DESIGN_TEXT), MAXF));
    golden_check("design_put", &w);
    qp_writer_done(&w);
}

static void test_golden_design_put_result(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_id_result(&w, 16, GOLDEN_DESIGN_ID, MAXF));
    golden_check("design_put_result", &w);
    qp_writer_done(&w);
}

static void test_golden_cache_list_result(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cache_list_result(&w, 7, golden_entries, 2, MAXF));
    golden_check("cache_list_result", &w);
    qp_writer_done(&w);
}

static void test_golden_cache_warm_items(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, golden_warm_items, 2, MAXF));
    golden_check("cache_warm_items", &w);
    qp_writer_done(&w);
}

static void test_golden_cache_verify_result(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_verify_result(&w, 10, 3, golden_damaged, 1, MAXF));
    golden_check("cache_verify_result", &w);
    qp_writer_done(&w);
}

/* ---- round trips ---- */

/* Reads the one frame in w back: header, then envelope. */
static void decode_frame(const struct qp_writer *w, struct qp_msg *msg)
{
    const uint8_t *p = (const uint8_t *)w->sb.data;
    uint32_t len = 0;

    assert_true(w->sb.size > QP_HEADER_LEN);
    assert_ok(qp_frame_header(p, MAXF, &len));
    assert_int_equal(len, w->sb.size - QP_HEADER_LEN);
    assert_ok(qp_msg_decode(p + QP_HEADER_LEN, len, msg, &diag));
}

static void assert_request(const struct qp_msg *msg, uint32_t id, enum qp_method m)
{
    assert_int_equal(msg->type, QP_REQUEST);
    assert_true(msg->id_valid);
    assert_int_equal(msg->id, id);
    assert_int_equal(msg->method, m);
    assert_string_equal(msg->method_name, qp_methods[m].name);
    assert_non_null(msg->params);
    assert_int_equal(msg->params->type, MSGPACK_OBJECT_MAP);
}

static void assert_notification(const struct qp_msg *msg, enum qp_method m)
{
    assert_int_equal(msg->type, QP_NOTIFICATION);
    assert_false(msg->id_valid);
    assert_int_equal(msg->method, m);
    assert_string_equal(msg->method_name, qp_methods[m].name);
    assert_non_null(msg->params);
    assert_int_equal(msg->params->type, MSGPACK_OBJECT_MAP);
}

static void assert_response(const struct qp_msg *msg, uint32_t id)
{
    assert_int_equal(msg->type, QP_RESPONSE);
    assert_true(msg->id_valid);
    assert_int_equal(msg->id, id);
    assert_non_null(msg->error);
    assert_non_null(msg->result);
    assert_null(msg->params);
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = qp_get(map, key);

    if (!o) {
        print_error("key \"%s\" missing\n", key);
        fail();
    }
    return o;
}

static uint64_t get_u64(const msgpack_object *map, const char *key)
{
    uint64_t v = 0;

    assert_ok(qp_read_u64(get(map, key), key, UINT64_MAX, &v, &diag));
    return v;
}

static int64_t get_i64(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = get(map, key);

    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return o->via.i64;
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(o->via.u64 <= INT64_MAX);
    return (int64_t)o->via.u64;
}

static double get_f64(const msgpack_object *map, const char *key)
{
    double v = 0;

    assert_ok(qp_read_f64(get(map, key), key, &v, &diag));
    return v;
}

static void assert_str(const msgpack_object *o, const char *s)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(s));
    assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

static void assert_double_eq(double a, double b)
{
    if (isfinite(b))
        qt_assert_close(a, b, 1e-15, 1e-300);
    else if (isnan(b))
        assert_true(isnan(a));
    else
        assert_true(a == b);
}

/* a (decoded) carries everything b (encoded) had. */
static void assert_result_equal(const struct qt_result *a, const struct qt_result *b)
{
    assert_int_equal(a->method, b->method);
    assert_int_equal(a->d, b->d);
    assert_int_equal(a->err, b->err);
    if (b->err) {
        assert_string_equal(a->errmsg, b->errmsg);
        return;
    }
    for (size_t i = 0; i < b->d * b->d; i++) {
        qt_assert_close(creal(a->rho[i]), creal(b->rho[i]), 0, 1e-15);
        qt_assert_close(cimag(a->rho[i]), cimag(b->rho[i]), 0, 1e-15);
    }
    assert_int_equal(a->warnings, b->warnings);
    assert_int_equal(a->mt.have, b->mt.have);
    for (int i = 0; i < _QT_MT_MAX; i++) {
        const struct qt_metric_desc *md = &qt_metric_descs[i];
        const char *pa = (const char *)&a->mt + md->offset, *pb = (const char *)&b->mt + md->offset;

        if (!qt_metrics_has(&b->mt, (enum qt_metric_id)i))
            continue;
        switch (md->type) {
        case QT_MTYPE_F64:
            assert_double_eq(*(const double *)pa, *(const double *)pb);
            break;
        case QT_MTYPE_I64:
            assert_int_equal(*(const int64_t *)pa, *(const int64_t *)pb);
            break;
        case QT_MTYPE_BOOL:
            assert_int_equal(*(const bool *)pa, *(const bool *)pb);
            break;
        case QT_MTYPE_STR:
            assert_non_null(*(const char *const *)pa);
            assert_string_equal(*(const char *const *)pa, *(const char *const *)pb);
            break;
        case QT_MTYPE_F64V: {
            size_t na = *(const size_t *)((const char *)&a->mt + md->count_offset);
            size_t nb = *(const size_t *)((const char *)&b->mt + md->count_offset);
            const double *va = *(const double *const *)pa, *vb = *(const double *const *)pb;

            assert_int_equal(na, nb);
            assert_non_null(va);
            for (size_t k = 0; k < nb; k++)
                assert_double_eq(va[k], vb[k]);
            /* F64V metrics point into the result's own arrays. */
            assert_true(va == a->eigenvalues || va == a->bell);
            break;
        }
        }
    }
}

static void test_roundtrip_hello(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_hello h;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_hello(&w, 42, "qtomoctl/0.1.0", MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 42, QP_M_HELLO);
    assert_ok(qp_decode_hello(msg.params, &h, &diag));
    assert_int_equal(h.major, QP_VERSION_MAJOR);
    assert_int_equal(h.minor, QP_VERSION_MINOR);
    assert_string_equal(h.client, "qtomoctl/0.1.0");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_hello_result(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_server_info si, out;
    const msgpack_object *f;

    (void)state;
    make_server_info(&si);
    qp_writer_init(&w);
    assert_ok(qp_pack_hello_result(&w, 1, &si, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 1);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_ok(qp_decode_hello_result(msg.result, &out, &diag));
    assert_int_equal(out.major, si.major);
    assert_int_equal(out.minor, si.minor);
    assert_string_equal(out.server, si.server);
    assert_int_equal(out.max_frame, si.max_frame);
    assert_int_equal(out.max_dim, si.max_dim);
    assert_int_equal(out.max_batch, si.max_batch);
    assert_int_equal(out.max_inflight, si.max_inflight);
    assert_int_equal(out.max_item_ms, si.max_item_ms);
    assert_int_equal(out.workers, si.workers);
    /* Features are on the wire (the decoder has nowhere to keep them). */
    f = get(msg.result, "features");
    assert_int_equal(f->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(f->via.array.size, 2);
    assert_str(&f->via.array.ptr[0], "stream");
    assert_str(&f->via.array.ptr[1], "progress");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void assert_job_equal(const struct qp_job *a, const struct qp_job *b)
{
    assert_int_equal(a->m, b->m);
    assert_int_equal(a->n, b->n);
    assert_non_null(a->values);
    for (size_t i = 0; i < b->m * b->n; i++)
        assert_double_eq(a->values[i], b->values[i]);
    assert_string_equal(a->design, b->design);
    assert_string_equal(a->design_id, b->design_id);
    assert_int_equal(a->d, b->d);
    for (int i = 0; i < _QT_METHOD_MAX; i++)
        assert_int_equal(a->methods[i], b->methods[i]);
    for (size_t i = 0; i < qt_optdesc_count; i++)
        assert_double_eq(qt_optdesc_get(&qt_optdescs[i], &a->opts),
                         qt_optdesc_get(&qt_optdescs[i], &b->opts));
    assert_int_equal(a->opts.physical, b->opts.physical);
    assert_int_equal(a->opts.bell, b->opts.bell);
    assert_int_equal(a->opts.metrics, b->opts.metrics);
    assert_double_eq(a->opts.tolerance, b->opts.tolerance);
    if (b->target) {
        assert_non_null(a->target);
        assert_ptr_equal(a->opts.target, a->target);
        for (size_t i = 0; i < b->d * b->d; i++) {
            qt_assert_close(creal(a->target[i]), creal(b->target[i]), 0, 1e-15);
            qt_assert_close(cimag(a->target[i]), cimag(b->target[i]), 0, 1e-15);
        }
    } else {
        assert_null(a->target);
        assert_null(a->opts.target);
    }
    assert_int_equal(a->timeout_ms, b->timeout_ms);
    assert_int_equal(a->boot.resamples, b->boot.resamples);
    if (b->boot.resamples) {
        assert_int_equal(a->boot.kind, b->boot.kind);
        assert_int_equal(a->boot.has_seed, b->boot.has_seed);
        assert_true(a->boot.seed == b->boot.seed);
        assert_double_eq(a->boot.confidence, b->boot.confidence);
        assert_true(a->boot.shots == b->boot.shots);
    }
    assert_int_equal(a->progress_ms, b->progress_ms);
    assert_int_equal(a->first_index, b->first_index);
}

static void roundtrip_job(enum qp_method m, const struct qp_job *j, uint32_t id)
{
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_job out;

    qp_writer_init(&w);
    assert_ok(qp_pack_job(&w, id, m, j, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, id, m);
    assert_ok(qp_decode_job(msg.params, m, 256, 1000, &out, &diag));
    assert_job_equal(&out, j);
    qp_job_done(&out);
    /* Without the copy: the same job, its values read in place. */
    assert_ok(qp_decode_job_ref(msg.params, m, 256, 1000, &out, &diag));
    assert_null(out.values);
    assert_non_null(out.values_le);
    out.values = malloc(out.m * out.n * sizeof(double));
    assert_non_null(out.values);
    memcpy(out.values, out.values_le, out.m * out.n * sizeof(double));
    assert_job_equal(&out, j);
    qp_job_done(&out);
    assert_null(out.values_le);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_reconstruct(void **state)
{
    struct qp_job j;

    (void)state;
    make_reconstruct_job(&j);
    roundtrip_job(QP_M_RECONSTRUCT, &j, 2);

    /* Every kind of option, bell and a target. */
    set_opt(&j.opts, "tolerance", 1e-7);
    set_opt(&j.opts, "mle-max-iterations", 123);
    set_opt(&j.opts, "rhor-diluted", 1);
    set_opt(&j.opts, "rhor-diluted-mu", 0.5);
    set_opt(&j.opts, "rhor-eig-abs-thresh", 0);
    j.opts.bell = true;
    j.target = calloc(4, sizeof(double complex));
    assert_non_null(j.target);
    j.target[0] = 0.5;
    j.target[1] = 0.5 * I;
    j.target[2] = -0.5 * I;
    j.target[3] = 0.5;
    j.opts.target = j.target;
    j.timeout_ms = UINT32_MAX;
    roundtrip_job(QP_M_RECONSTRUCT, &j, UINT32_MAX);
    qp_job_done(&j);
}

static void test_roundtrip_submit(void **state)
{
    struct qp_job j;

    (void)state;
    make_submit_job(&j);
    roundtrip_job(QP_M_SUBMIT, &j, 3);

    /* A custom design by id, no d, clip, other methods, flags switched off. */
    (void)snprintf(j.design, sizeof(j.design), "custom");
    (void)snprintf(j.design_id, sizeof(j.design_id), "custom-0123456789abcdef0123456789abcdef");
    j.d = 0;
    j.methods[QT_METHOD_LINEAR] = false;
    j.methods[QT_METHOD_WLS] = true;
    j.methods[QT_METHOD_RHOR] = true;
    j.opts.physical = QT_PHYS_CLIP;
    set_opt(&j.opts, "rhor-warm-start", 1);
    set_opt(&j.opts, "wls-max-iterations", 0);
    j.progress_ms = 0;
    j.first_index = 123456789;
    j.timeout_ms = 1;
    roundtrip_job(QP_M_SUBMIT, &j, 0);
    qp_job_done(&j);
}

/* qp_pack_job refuses what it cannot encode. */
static void test_pack_job_rejects(void **state)
{
    struct qp_writer w;
    struct qp_job j;

    (void)state;
    make_submit_job(&j);
    qp_writer_init(&w);
    assert_err(qp_pack_job(&w, 1, QP_M_RECONSTRUCT, &j, MAXF), -EINVAL);
    assert_err(qp_pack_job(&w, 1, QP_M_HELLO, &j, MAXF), -EINVAL);
    assert_int_equal(w.sb.size, 0);
    qp_writer_done(&w);
    qp_job_done(&j);
}

/* A job with a target but no d (d inferred from m) either is refused by the encoder or makes a
 * frame the decoder accepts: never a request the peer must reject. */
static void test_pack_job_target_without_d(void **state)
{
    struct qp_writer w;
    struct qp_job j, out;
    struct qp_msg msg;
    int r;

    (void)state;
    make_reconstruct_job(&j);
    j.d = 0;
    j.target = calloc(4, sizeof(double complex));
    assert_non_null(j.target);
    j.target[0] = j.target[3] = 0.5;
    j.opts.target = j.target;
    qp_writer_init(&w);
    r = qp_pack_job(&w, 1, QP_M_RECONSTRUCT, &j, MAXF);
    if (r == 0) {
        decode_frame(&w, &msg);
        memset(&diag, 0, sizeof(diag));
        r = qp_decode_job(msg.params, QP_M_RECONSTRUCT, 256, 1, &out, &diag);
        if (r != 0)
            print_error("qp_pack_job wrote a target the decoder rejects: %s\n", diag.msg);
        assert_int_equal(r, 0);
        qp_job_done(&out);
        qp_msg_done(&msg);
    } else {
        assert_int_equal(r, -EINVAL);
        assert_int_equal(w.sb.size, 0);
    }
    qp_writer_done(&w);
    qp_job_done(&j);
}

/* Decodes every map of results[] and compares it with res[]. */
static void check_results(const msgpack_object *container, const struct qt_result *const *res,
                          size_t n)
{
    const msgpack_object *arr = get(container, "results");

    assert_int_equal(arr->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(arr->via.array.size, n);
    for (size_t i = 0; i < n; i++) {
        struct qt_result out;

        /* The first is decoded into a too-small result (resized), the rest into zeroed ones. */
        if (i == 0) {
            assert_ok(qt_result_init(&out, 1));
        } else {
            memset(&out, 0, sizeof(out));
        }
        assert_ok(qp_decode_result_map(&arr->via.array.ptr[i], 256, &out, &diag));
        assert_result_equal(&out, res[i]);
        qt_result_done(&out);
    }
}

static void test_roundtrip_results(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    struct qt_result est, ok, err;
    const struct qt_result *res[3] = {&est, &ok, &err};
    const msgpack_object *timing;

    (void)state;
    make_estimated_result(&est);
    make_ok_result(&ok);
    make_err_result(&err);

    qp_writer_init(&w);
    assert_ok(qp_pack_result_notify(&w, 77, 123456, res, 3, MAXF));
    decode_frame(&w, &msg);
    assert_notification(&msg, QP_M_RESULT);
    assert_int_equal(get_u64(msg.params, "request"), 77);
    assert_int_equal(get_u64(msg.params, "index"), 123456);
    check_results(msg.params, res, 3);
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_pack_reconstruct_result(&w, 9, res, 3, 0.5, 12.75, 3, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 9);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(get_u64(msg.result, "index"), 0);
    check_results(msg.result, res, 3);
    timing = get(msg.result, "timing");
    qt_assert_close(get_f64(timing, "queue_ms"), 0.5, 0, 0);
    qt_assert_close(get_f64(timing, "compute_ms"), 12.75, 0, 0);
    assert_int_equal(get_i64(msg.result, "worker"), 3);
    qp_msg_done(&msg);

    /* A negative worker (none) survives. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_reconstruct_result(&w, 9, res, 1, 0, 0, -1, MAXF));
    decode_frame(&w, &msg);
    assert_int_equal(get_i64(msg.result, "worker"), -1);
    qp_msg_done(&msg);

    qp_writer_done(&w);
    qt_result_done(&est);
    qt_result_done(&ok);
    qt_result_done(&err);
}

/* Decodes one packed result map (sb) into out. */
static int decode_packed_result(const msgpack_sbuffer *sb, struct qt_result *out,
                                struct qt_diag *dg)
{
    msgpack_unpacked u;
    int r;

    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb->data, sb->size, NULL), MSGPACK_UNPACK_SUCCESS);
    r = qp_decode_result_map(&u.data, 256, out, dg);
    msgpack_unpacked_destroy(&u);
    return r;
}

/* --spectral: the result map's "spectral" survives the round trip exactly; a decoder requires
 * its four keys with dim values each. */
static void test_roundtrip_result_spectral(void **state)
{
    static const char *const keys[] = {"amplitudes", "phases_pi", "eigenvalues"};
    struct qt_result ok, out = {0};
    msgpack_sbuffer sb;
    msgpack_packer pk;

    (void)state;
    make_ok_result(&ok);
    ok.has_spectral = true;
    ok.spectral_dominant = 0.875;
    for (size_t i = 0; i < 6; i++)
        ok.spectral[i] = 0.1 * (double)i - 0.25;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_result_map(&pk, &ok);
    assert_ok(decode_packed_result(&sb, &out, &diag));
    assert_result_equal(&out, &ok);
    assert_true(out.has_spectral);
    assert_double_eq(out.spectral_dominant, 0.875);
    assert_memory_equal(out.spectral, ok.spectral, 6 * sizeof(double));
    /* decoded again into the same result without spectral: cleared */
    ok.has_spectral = false;
    msgpack_sbuffer_clear(&sb);
    qp_pack_result_map(&pk, &ok);
    assert_ok(decode_packed_result(&sb, &out, &diag));
    assert_false(out.has_spectral);
    /* each key missing, or a vector of the wrong length */
    for (int bad = 0; bad < 5; bad++) {
        msgpack_sbuffer_clear(&sb);
        (void)msgpack_pack_map(&pk, 5);
        qp_pack_key(&pk, "method");
        qp_pack_str(&pk, "linear");
        qp_pack_key(&pk, "dim");
        (void)msgpack_pack_uint64(&pk, 2);
        qp_pack_key(&pk, "status");
        qp_pack_str(&pk, "ok");
        qp_pack_key(&pk, "rho");
        qp_pack_c128m(&pk, ok.rho, 2, 2);
        qp_pack_key(&pk, "spectral");
        (void)msgpack_pack_map(&pk, bad < 4 ? 3 : 4);
        if (bad != 0) {
            qp_pack_key(&pk, "dominant_eigenvalue");
            (void)msgpack_pack_double(&pk, 0.5);
        }
        for (int k = 0; k < 3; k++)
            if (bad != k + 1) {
                qp_pack_key(&pk, keys[k]);
                qp_pack_f64v(&pk, ok.spectral, bad == 4 && k == 2 ? 1 : 2);
            }
        assert_int_equal(decode_packed_result(&sb, &out, &diag), QT_EPARSE);
        assert_non_null(strstr(diag.msg, "spectral"));
    }
    msgpack_sbuffer_destroy(&sb);
    qt_result_done(&ok);
    qt_result_done(&out);
}

/* An error result read back keeps its kind: the record writer prints qt_errname(res->err), so
 * a remote error must name the same error as a local one. */
static void test_roundtrip_result_error_kind(void **state)
{
    static const int errs[] = {QT_ENONFINITE, QT_EZEROGROUP, QT_ENEGATIVE, QT_ESAMPLELEN,
                               QT_EDIM,       QT_EOPTION,    -ETIMEDOUT,   -ECANCELED};
    struct qp_writer w;
    size_t bad = 0;

    (void)state;
    qp_writer_init(&w);
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        struct qt_result r, out;
        const struct qt_result *res[1] = {&r};
        struct qp_msg msg;

        assert_ok(qt_result_init(&r, 2));
        qt_result_reset(&r, QT_METHOD_LINEAR);
        (void)qt_result_fail(&r, errs[i], "failure %zu", i);
        qp_writer_reset(&w);
        assert_ok(qp_pack_result_notify(&w, 1, i, res, 1, MAXF));
        decode_frame(&w, &msg);
        assert_ok(qt_result_init(&out, 2));
        assert_ok(
            qp_decode_result_map(&get(msg.params, "results")->via.array.ptr[0], 256, &out, &diag));
        assert_int_equal(qt_status_from_err(out.err), qt_status_from_err(errs[i]));
        if (strcmp(qt_errname(out.err), qt_errname(errs[i])) != 0) {
            print_error("%s came back as %s\n", qt_errname(errs[i]), qt_errname(out.err));
            bad++;
        }
        assert_string_equal(out.errmsg, r.errmsg);
        qp_msg_done(&msg);
        qt_result_done(&out);
        qt_result_done(&r);
    }
    qp_writer_done(&w);
    assert_int_equal(bad, 0);
}

static void test_roundtrip_progress(void **state)
{
    static const struct qp_progress ps[] = {
        {.request = 3, .done = 5, .failed = 1, .total = 20, .eta_ms = 1500},
        {.request = UINT32_MAX, .done = UINT64_MAX, .failed = 0, .total = UINT64_MAX, .eta_ms = -1},
        {.request = 0, .done = 0, .failed = 0, .total = 0, .eta_ms = 0},
    };
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        struct qp_msg msg;
        struct qp_progress out;

        qp_writer_reset(&w);
        assert_ok(qp_pack_progress(&w, &ps[i], MAXF));
        decode_frame(&w, &msg);
        assert_notification(&msg, QP_M_PROGRESS);
        assert_ok(qp_decode_progress(msg.params, &out, &diag));
        assert_int_equal(out.request, ps[i].request);
        assert_int_equal(out.done, ps[i].done);
        assert_int_equal(out.failed, ps[i].failed);
        assert_int_equal(out.total, ps[i].total);
        assert_int_equal(out.eta_ms, ps[i].eta_ms);
        qp_msg_done(&msg);
    }
    qp_writer_done(&w);
}

/* The worker channel: w.ready, w.result with its failure count (checked against the results
 * array), and submit items whose fields are relayed as bytes decode like qp_pack_job's. */
static void test_worker_channel(void **state)
{
    static const uint8_t two_maps[] = {0x92, 0x80, 0x80}; /* [{}, {}] */
    struct qp_w_result in = {.index = 41, .us = 12.5, .failed = 2, .results = two_maps,
                             .len = sizeof(two_maps)},
                       out;
    double v[8] = {1, 0, 0.5, 0.5, 0, 1, 0.5, 0.5};
    msgpack_sbuffer fields;
    msgpack_packer fpk;
    struct qp_job j, back;
    struct qp_writer w;
    struct qp_msg msg;
    size_t nf;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_w_ready(&w));
    decode_frame(&w, &msg);
    assert_notification(&msg, QP_M_W_READY);
    qp_msg_done(&msg);
    qp_writer_reset(&w);
    assert_ok(qp_pack_w_result(&w, &in));
    decode_frame(&w, &msg);
    assert_notification(&msg, QP_M_W_RESULT);
    assert_ok(qp_decode_w_result(msg.params, &out, &diag));
    assert_int_equal(out.index, 41);
    assert_int_equal(out.failed, 2);
    assert_int_equal(out.len, sizeof(two_maps));
    assert_memory_equal(out.results, two_maps, sizeof(two_maps));
    qp_msg_done(&msg);
    in.failed = 3; /* more failures than results */
    qp_writer_reset(&w);
    assert_ok(qp_pack_w_result(&w, &in));
    decode_frame(&w, &msg);
    assert_err(qp_decode_w_result(msg.params, &out, &diag), QT_EPARSE);
    qp_msg_done(&msg);
    /* An item of columns 1..2 of a 2-column job with its fields packed once. */
    qp_job_init(&j);
    j.values = v;
    j.m = 4;
    j.n = 2;
    snprintf(j.design, sizeof(j.design), "nopovm");
    j.d = 2;
    j.methods[QT_METHOD_LINEAR] = true;
    j.timeout_ms = 500;
    msgpack_sbuffer_init(&fields);
    msgpack_packer_init(&fpk, &fields, msgpack_sbuffer_write);
    nf = qp_pack_job_fields(&fpk, &j);
    qp_writer_reset(&w);
    assert_ok(qp_pack_chunk(&w, 9, v + 4, 4, 1, 1, fields.data, fields.size, nf, NULL, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_job(msg.params, QP_M_SUBMIT, 64, 64, &back, &diag));
    assert_int_equal(back.m, 4);
    assert_int_equal(back.n, 1);
    assert_int_equal(back.first_index, 1);
    assert_int_equal(back.d, 2);
    assert_int_equal(back.timeout_ms, 500);
    assert_string_equal(back.design, "nopovm");
    assert_memory_equal(back.values, v + 4, 4 * sizeof(double));
    qp_job_done(&back);
    qp_msg_done(&msg);
    msgpack_sbuffer_destroy(&fields);
    j.values = NULL;
    qp_job_done(&j);
    qp_writer_done(&w);
}

static void test_roundtrip_totals(void **state)
{
    const struct qp_totals t = {
        .n_ok = 1u << 20, .n_err = 3, .n_cancelled = UINT64_MAX, .elapsed_ms = 98765.4321};
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_totals out;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_submit_result(&w, 17, &t, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 17);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_ok(qp_decode_totals(msg.result, &out, &diag));
    assert_int_equal(out.n_ok, t.n_ok);
    assert_int_equal(out.n_err, t.n_err);
    assert_int_equal(out.n_cancelled, t.n_cancelled);
    qt_assert_close(out.elapsed_ms, t.elapsed_ms, 1e-15, 0);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_cancel(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    uint32_t target = 0;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cancel(&w, 4, UINT32_MAX, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 4, QP_M_CANCEL);
    assert_ok(qp_decode_cancel(msg.params, &target, &diag));
    assert_int_equal(target, UINT32_MAX);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_design_d(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    char design[16];
    size_t d = 99;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_simple(&w, 9, QP_M_CACHE_EVICT, "mub", 4, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 9, QP_M_CACHE_EVICT);
    assert_ok(qp_decode_design_d(msg.params, QT_DESIGN_MAX_DIM, design, sizeof(design), &d, &diag));
    assert_string_equal(design, "mub");
    assert_int_equal(d, 4);
    qp_msg_done(&msg);

    /* No design, no d: an empty map. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_simple(&w, 10, QP_M_STATUS, NULL, 0, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 10, QP_M_STATUS);
    assert_int_equal(msg.params->via.map.size, 0);
    assert_ok(qp_decode_design_d(msg.params, QT_DESIGN_MAX_DIM, design, sizeof(design), &d, &diag));
    assert_string_equal(design, "");
    assert_int_equal(d, 0);
    qp_msg_done(&msg);

    /* d beyond the largest design dimension. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_simple(&w, 11, QP_M_CACHE_WARM, "nopovm", QT_DESIGN_MAX_DIM + 1, MAXF));
    decode_frame(&w, &msg);
    assert_err(qp_decode_design_d(msg.params, QT_DESIGN_MAX_DIM, design, sizeof(design), &d, &diag),
               QT_EPARSE);
    assert_diag_has("d:");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_error_response(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    const msgpack_object *data;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error(&w, 12, QT_ST_INVALID_PARAMS, "bad option", -1, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 12);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(msg.result->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(msg.error->via.map.size, 2);
    assert_int_equal(get_i64(msg.error, "code"), QT_ST_INVALID_PARAMS);
    assert_str(get(msg.error, "message"), "bad option");
    assert_null(qp_get(msg.error, "data"));
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_write_error(&w, 13, QT_ST_BUSY, "queue full", 250, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 13);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(msg.result->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(get_i64(msg.error, "code"), QT_ST_BUSY);
    assert_str(get(msg.error, "message"), "queue full");
    data = get(msg.error, "data");
    assert_int_equal(get_i64(data, "retry_after_ms"), 250);
    qp_msg_done(&msg);

    /* retry_after_ms 0 is a value, not absence. */
    qp_writer_reset(&w);
    assert_ok(qp_write_error(&w, 14, QT_ST_BUSY, "queue full", 0, MAXF));
    decode_frame(&w, &msg);
    assert_int_equal(get_i64(get(msg.error, "data"), "retry_after_ms"), 0);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_notifications(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_protocol_error(&w, QT_ST_TOO_LARGE, "frame too large", MAXF));
    decode_frame(&w, &msg);
    assert_notification(&msg, QP_M_PROTOCOL_ERROR);
    assert_int_equal(get_i64(msg.params, "code"), QT_ST_TOO_LARGE);
    assert_str(get(msg.params, "message"), "frame too large");
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_write_bye(&w, "reload", 0, MAXF));
    decode_frame(&w, &msg);
    assert_notification(&msg, QP_M_BYE);
    assert_str(get(msg.params, "reason"), "reload");
    assert_int_equal(get_i64(msg.params, "retry_after_ms"), 0);
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_write_bye(&w, "idle", -1, MAXF));
    decode_frame(&w, &msg);
    assert_int_equal(get_i64(msg.params, "retry_after_ms"), -1);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

/* ---- round trips: error maps and the administrative results ---- */

static void test_roundtrip_error_map(void **state)
{
    const struct qp_totals t = {
        .n_ok = 1u << 20, .n_err = 3, .n_cancelled = UINT64_MAX, .elapsed_ms = 98765.4321};
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_error e;
    char longmsg[300];

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error_totals(&w, 21, QT_ST_SHUTTING_DOWN, "shutting down", &t, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 21);
    assert_int_equal(msg.result->type, MSGPACK_OBJECT_NIL);
    assert_ok(qp_decode_error(msg.error, &e, &diag));
    assert_int_equal(e.code, QT_ST_SHUTTING_DOWN);
    assert_string_equal(e.message, "shutting down");
    assert_int_equal(e.retry_after_ms, -1);
    assert_true(e.has_totals);
    assert_int_equal(e.totals.n_ok, t.n_ok);
    assert_int_equal(e.totals.n_err, t.n_err);
    assert_int_equal(e.totals.n_cancelled, t.n_cancelled);
    qt_assert_close(e.totals.elapsed_ms, t.elapsed_ms, 1e-15, 0);
    qp_msg_done(&msg);

    /* qp_write_error: retry_after_ms in data, no totals. */
    qp_writer_reset(&w);
    assert_ok(qp_write_error(&w, 22, QT_ST_BUSY, "queue full", 250, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_error(msg.error, &e, &diag));
    assert_int_equal(e.code, QT_ST_BUSY);
    assert_string_equal(e.message, "queue full");
    assert_int_equal(e.retry_after_ms, 250);
    assert_false(e.has_totals);
    qp_msg_done(&msg);

    /* No data; the lowest code; a message longer than the buffer is truncated. */
    memset(longmsg, 'x', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    qp_writer_reset(&w);
    assert_ok(qp_write_error(&w, 23, INT32_MIN, longmsg, -1, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_error(msg.error, &e, &diag));
    assert_int_equal(e.code, INT32_MIN);
    assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
    assert_memory_equal(e.message, longmsg, sizeof(e.message) - 1);
    assert_int_equal(e.retry_after_ms, -1);
    assert_false(e.has_totals);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_msg_status(void **state)
{
    /* [1, 7, 5, nil]: the id is readable, the error is neither nil nor a map. */
    static const uint8_t with_id[] = {0x94, 0x01, 0x07, 0x05, 0xc0};
    /* [9, 7, 5, nil]: no such type. */
    static const uint8_t unreadable[] = {0x94, 0x09, 0x07, 0x05, 0xc0};
    struct qp_msg msg;

    (void)state;
    assert_err(qp_msg_decode(with_id, sizeof(with_id), &msg, &diag), QT_EPARSE);
    assert_true(msg.id_valid);
    assert_int_equal(qp_msg_status(&msg), QT_ST_INVALID_REQUEST);
    qp_msg_done(&msg);
    assert_err(qp_msg_decode(unreadable, sizeof(unreadable), &msg, &diag), QT_EPARSE);
    assert_false(msg.id_valid);
    assert_int_equal(qp_msg_status(&msg), QT_ST_PARSE_ERROR);
    qp_msg_done(&msg);
}

static void test_roundtrip_u64_result(void **state)
{
    static const char *const keys[] = {"warmed", "bytes", "generation"};
    static const uint64_t vals[] = {0, 127, 128, 65536, UINT32_MAX + (uint64_t)1, UINT64_MAX};
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
            struct qp_msg msg;
            uint64_t v = 12345;

            qp_writer_reset(&w);
            assert_ok(qp_pack_u64_result(&w, (uint32_t)i, keys[k], vals[i], MAXF));
            decode_frame(&w, &msg);
            assert_response(&msg, (uint32_t)i);
            assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
            assert_int_equal(msg.result->via.map.size, 1);
            assert_ok(qp_decode_u64_result(msg.result, keys[k], &v, &diag));
            assert_int_equal(v, vals[i]);
            /* Another method's key is missing. */
            assert_err(qp_decode_u64_result(msg.result, keys[(k + 1) % 3], &v, &diag), QT_EPARSE);
            assert_diag_has(keys[(k + 1) % 3]);
            qp_msg_done(&msg);
        }
    qp_writer_done(&w);
}

static void test_roundtrip_cancel_result(void **state)
{
    struct qp_writer w;

    (void)state;
    qp_writer_init(&w);
    for (int f = 0; f < 2; f++) {
        struct qp_msg msg;
        bool found = !f;

        qp_writer_reset(&w);
        assert_ok(qp_pack_cancel_result(&w, 30, f != 0, MAXF));
        decode_frame(&w, &msg);
        assert_response(&msg, 30);
        assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
        assert_ok(qp_decode_cancel_result(msg.result, &found, &diag));
        assert_int_equal(found, f != 0);
        qp_msg_done(&msg);
    }
    qp_writer_done(&w);
}

static void assert_status_equal(const struct qp_status *a, const struct qp_status *b)
{
    assert_true(a->uptime_s == b->uptime_s);
    assert_int_equal(a->queue_interactive, b->queue_interactive);
    assert_int_equal(a->queue_batch, b->queue_batch);
    assert_int_equal(a->inflight, b->inflight);
    assert_int_equal(a->n_workers, b->n_workers);
    assert_int_equal(a->cache_bytes, b->cache_bytes);
    assert_int_equal(a->cache_files, b->cache_files);
    assert_int_equal(a->cache_budget, b->cache_budget);
    assert_int_equal(a->has_stats, b->has_stats);
    assert_int_equal(a->items, b->items);
    assert_int_equal(a->errors, b->errors);
    assert_int_equal(a->timeouts, b->timeouts);
    assert_int_equal(a->crashes, b->crashes);
    assert_int_equal(a->recycled, b->recycled);
    assert_int_equal(a->output_queued, b->output_queued);
    assert_int_equal(a->conns, b->conns);
    assert_int_equal(a->conns_stopped, b->conns_stopped);
    assert_int_equal(a->input_reserved, b->input_reserved);
    assert_int_equal(a->conns_waiting_input, b->conns_waiting_input);
    assert_int_equal(a->n_worker_info, b->n_worker_info);
    if (!b->n_worker_info)
        assert_null(a->workers);
    for (size_t i = 0; i < b->n_worker_info; i++) {
        assert_int_equal(a->workers[i].pid, b->workers[i].pid);
        assert_string_equal(a->workers[i].state, b->workers[i].state);
        assert_int_equal(a->workers[i].jobs, b->workers[i].jobs);
        assert_int_equal(a->workers[i].rss_kb, b->workers[i].rss_kb);
    }
}

static void roundtrip_status(const struct qp_status *s, uint32_t id)
{
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_status out;

    qp_writer_init(&w);
    assert_ok(qp_pack_status_result(&w, id, s, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, id);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(msg.result->via.map.size, s->has_stats ? 9 : 5);
    assert_ok(qp_decode_status_result(msg.result, &out, &diag));
    assert_status_equal(&out, s);
    qp_status_done(&out);
    assert_null(out.workers);
    assert_int_equal(out.n_worker_info, 0);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_status(void **state)
{
    struct qp_worker_info many[QP_MAX_WORKERS];
    struct qp_status s;

    (void)state;
    make_status(&s, false);
    roundtrip_status(&s, 5);

    make_status(&s, true);
    roundtrip_status(&s, 6);

    /* Extremes; stats with no workers; and the most workers a decoder takes. */
    make_status(&s, true);
    s.uptime_s = 0.1;
    s.queue_interactive = UINT64_MAX;
    s.cache_budget = 0;
    s.items = UINT64_MAX;
    s.n_worker_info = 0;
    s.workers = NULL;
    roundtrip_status(&s, 7);
    for (uint32_t i = 0; i < QP_MAX_WORKERS; i++) {
        many[i].pid = UINT32_MAX - i;
        (void)snprintf(many[i].state, sizeof(many[i].state), "%s", i % 2 ? "draining" : "");
        many[i].jobs = i;
        many[i].rss_kb = UINT64_MAX - i;
    }
    s.workers = many;
    s.n_worker_info = QP_MAX_WORKERS;
    roundtrip_status(&s, UINT32_MAX);
}

static void test_roundtrip_design_put(void **state)
{
    static const char text[] = GOLDEN_DESIGN_TEXT;
    struct qp_writer w;
    struct qp_msg msg;
    const char *out = NULL;
    size_t len = 0;
    char id[64];

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_design_put(&w, 16, text, strlen(text), MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 16, QP_M_DESIGN_PUT);
    assert_ok(qp_decode_design_put(msg.params, &out, &len, &diag));
    assert_int_equal(len, strlen(text));
    assert_memory_equal(out, text, len);
    /* It points into the message, not at a copy. */
    assert_true(out == get(msg.params, "design")->via.str.ptr);
    qp_msg_done(&msg);

    /* The text need not be NUL-terminated and may hold any byte (the server validates it). */
    qp_writer_reset(&w);
    assert_ok(qp_pack_design_put(&w, 17, "a\0b", 3, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_design_put(msg.params, &out, &len, &diag));
    assert_int_equal(len, 3);
    assert_memory_equal(out, "a\0b", 3);
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_pack_id_result(&w, 16, GOLDEN_DESIGN_ID, MAXF));
    decode_frame(&w, &msg);
    assert_response(&msg, 16);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_ok(qp_decode_id_result(msg.result, id, sizeof(id), &diag));
    assert_string_equal(id, GOLDEN_DESIGN_ID);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void pack_detector_put_map(struct qp_writer *w, uint32_t id, const char *const *kv,
                                  size_t n)
{
    qp_begin_request(w, id, QP_M_DETECTOR_PUT);
    (void)msgpack_pack_map(&w->pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        qp_pack_key(&w->pk, kv[2 * i]);
        if (strcmp(kv[2 * i], "d") == 0)
            (void)msgpack_pack_uint64(&w->pk, strtoull(kv[2 * i + 1], NULL, 10));
        else
            qp_pack_str(&w->pk, kv[2 * i + 1]);
    }
    assert_ok(qp_frame_end(w, MAXF));
}

static void test_detector_put(void **state)
{
    static const char text[] = "{\"efficiencies\": [1, 0.9]}";
    struct qp_detector_put p = {text, strlen(text), "custom", GOLDEN_DESIGN_ID, 2}, out;
    struct qp_detector_put_result res = {"custom", GOLDEN_DESIGN_ID, "det-0123", 2, 6}, back;
    struct qp_writer w;
    struct qp_msg msg;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_detector_put(&w, 5, &p, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 5, QP_M_DETECTOR_PUT);
    assert_ok(qp_decode_detector_put(msg.params, 64, &out, &diag));
    assert_int_equal(out.len, strlen(text));
    assert_true(out.text == get(msg.params, "detector")->via.str.ptr); /* not a copy */
    assert_string_equal(out.design, "custom");
    assert_string_equal(out.design_id, GOLDEN_DESIGN_ID);
    assert_int_equal(out.d, 2);
    qp_msg_done(&msg);
    /* Refusals: each names its field. */
    static const struct {
        const char *kv[8];
        size_t n;
        const char *msg;
    } bad[] = {
        {{"design", "mub", "d", "3"}, 2, "detector: missing"},
        {{"detector", "", "design", "mub", "d", "3"}, 3, "detector: missing"},
        {{"detector", "{}", "d", "3"}, 2, "design: missing"},
        {{"detector", "{}", "design", "square", "d", "3"}, 3, "unknown design"},
        {{"detector", "{}", "design", "mub"}, 2, "d: missing"},
        {{"detector", "{}", "design", "mub", "d", "1"}, 3, "d: missing or below 2"},
        {{"detector", "{}", "design", "mub", "d", "65"}, 3, "d"},
        {{"detector", "{}", "design", "custom", "d", "2"}, 3, "design_id: required"},
        {{"detector", "{}", "design", "mub", "d", "3", "design_id", GOLDEN_DESIGN_ID},
         4,
         "design_id: required with design \"custom\" and only with it"},
        {{"detector", "{}", "design", "custom", "d", "3", "design_id", "custom-00"},
         4,
         "32 lower-case hex"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        qp_writer_reset(&w);
        pack_detector_put_map(&w, 6, bad[i].kv, bad[i].n);
        decode_frame(&w, &msg);
        memset(&diag, 0, sizeof(diag));
        if (qp_decode_detector_put(msg.params, 64, &out, &diag) == 0)
            fail_msg("case %zu accepted", i);
        if (!strstr(diag.msg, bad[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, diag.msg, bad[i].msg);
        qp_msg_done(&msg);
    }
    /* The result, with and without its optional keys. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_detector_put_result(&w, 5, &res, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_detector_put_result(msg.result, &back, &diag));
    assert_memory_equal(&back, &res, sizeof(res));
    qp_msg_done(&msg);
    res = (struct qp_detector_put_result){"mub", "", "", 3, 12};
    qp_writer_reset(&w);
    assert_ok(qp_pack_detector_put_result(&w, 5, &res, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_detector_put_result(msg.result, &back, &diag));
    assert_string_equal(back.design, "mub");
    assert_string_equal(back.design_id, "");
    assert_string_equal(back.detector, "");
    assert_int_equal(back.m, 12);
    qp_msg_done(&msg);
    /* "custom" without its id, or an id without "custom", is refused. */
    res = (struct qp_detector_put_result){"custom", "", "det-1", 3, 12};
    qp_writer_reset(&w);
    assert_ok(qp_pack_detector_put_result(&w, 5, &res, MAXF));
    decode_frame(&w, &msg);
    assert_err(qp_decode_detector_put_result(msg.result, &back, &diag), QT_EPARSE);
    qp_msg_done(&msg);
    res = (struct qp_detector_put_result){"mub", GOLDEN_DESIGN_ID, "", 3, 12};
    qp_writer_reset(&w);
    assert_ok(qp_pack_detector_put_result(&w, 5, &res, MAXF));
    decode_frame(&w, &msg);
    assert_err(qp_decode_detector_put_result(msg.result, &back, &diag), QT_EPARSE);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void assert_entry_equal(const struct qt_cache_entry *a, const struct qt_cache_entry *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->design, b->design);
    assert_int_equal(a->d, b->d);
    assert_int_equal(a->m, b->m);
    assert_int_equal(a->bytes, b->bytes);
    assert_int_equal(a->last_use_ns, b->last_use_ns);
    assert_int_equal(a->mapped_by, b->mapped_by);
}

static void test_roundtrip_cache_list(void **state)
{
    struct qt_cache_entry in[4], *out = NULL;
    struct qp_writer w;
    struct qp_msg msg;
    size_t n = 99;

    (void)state;
    memcpy(in, golden_entries, sizeof(golden_entries));
    in[2] = golden_entries[0];
    in[2].d = QT_DESIGN_MAX_DIM;
    in[2].m = UINT32_MAX;
    in[2].bytes = UINT64_MAX;
    in[2].last_use_ns = INT64_MAX;
    in[2].mapped_by = UINT32_MAX;
    in[3] = golden_entries[1];
    in[3].last_use_ns = INT64_MIN;
    in[3].name[0] = in[3].id[0] = in[3].design[0] = '\0';
    qp_writer_init(&w);
    for (size_t k = 0; k <= 4; k++) {
        qp_writer_reset(&w);
        assert_ok(qp_pack_cache_list_result(&w, 7, in, k, MAXF));
        decode_frame(&w, &msg);
        assert_response(&msg, 7);
        assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
        assert_ok(qp_decode_cache_list_result(msg.result, &out, &n, &diag));
        assert_int_equal(n, k);
        if (k == 0)
            assert_null(out);
        for (size_t i = 0; i < k; i++)
            assert_entry_equal(&out[i], &in[i]);
        free(out);
        qp_msg_done(&msg);
    }
    qp_writer_done(&w);
}

static void test_roundtrip_cache_warm(void **state)
{
    struct qp_design_d in[QP_MAX_WARM_ITEMS], *out = NULL;
    struct qp_writer w;
    struct qp_msg msg;
    size_t n = 0;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, golden_warm_items, 2, MAXF));
    decode_frame(&w, &msg);
    assert_request(&msg, 8, QP_M_CACHE_WARM);
    assert_ok(qp_decode_cache_warm(msg.params, QT_DESIGN_MAX_DIM, &out, &n, &diag));
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].design, golden_warm_items[i].design);
        assert_int_equal(out[i].d, golden_warm_items[i].d);
    }
    free(out);
    qp_msg_done(&msg);

    /* The most items, d from 1 up to max_dim, a 15-byte design name. */
    for (size_t i = 0; i < QP_MAX_WARM_ITEMS; i++) {
        (void)snprintf(in[i].design, sizeof(in[i].design), "%s",
                       i % 3 ? "pauli" : "abcdefghijklmno");
        in[i].d = 1 + i % 64;
    }
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 9, in, QP_MAX_WARM_ITEMS, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_cache_warm(msg.params, 64, &out, &n, &diag));
    assert_int_equal(n, QP_MAX_WARM_ITEMS);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].design, in[i].design);
        assert_int_equal(out[i].d, in[i].d);
    }
    free(out);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_roundtrip_verify(void **state)
{
    struct qp_damaged in[3], *out = NULL;
    struct qp_writer w;
    struct qp_msg msg;
    uint64_t checked = 0;
    size_t n = 99;

    (void)state;
    memset(in, 0, sizeof(in));
    in[0] = golden_damaged[0];
    (void)snprintf(in[1].name, sizeof(in[1].name), "nopovm-d256.qtpc");
    memset(in[2].name, 'n', sizeof(in[2].name) - 1);
    memset(in[2].reason, 'r', sizeof(in[2].reason) - 1);
    qp_writer_init(&w);
    for (size_t k = 0; k <= 3; k++) {
        qp_writer_reset(&w);
        assert_ok(qp_pack_verify_result(&w, 10, k ? UINT64_MAX - k : 0, in, k, MAXF));
        decode_frame(&w, &msg);
        assert_response(&msg, 10);
        assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
        assert_ok(qp_decode_verify_result(msg.result, &checked, &out, &n, &diag));
        assert_int_equal(checked, k ? UINT64_MAX - k : 0);
        assert_int_equal(n, k);
        if (k == 0)
            assert_null(out);
        for (size_t i = 0; i < k; i++) {
            assert_string_equal(out[i].name, in[i].name);
            assert_string_equal(out[i].reason, in[i].reason);
        }
        free(out);
        qp_msg_done(&msg);
    }
    qp_writer_done(&w);
}

/* ---- frame header ---- */

static void test_frame_header(void **state)
{
    static const uint8_t zero[4] = {0, 0, 0, 0}, one[4] = {0, 0, 0, 1}, k4[4] = {0, 0, 0x10, 0x00},
                         k4p1[4] = {0, 0, 0x10, 0x01}, big[4] = {0xff, 0xff, 0xff, 0xff},
                         d64m[4] = {0x04, 0x00, 0x00, 0x00}, d64m1[4] = {0x04, 0x00, 0x00, 0x01},
                         order[4] = {0x01, 0x02, 0x03, 0x04};
    uint32_t len = 7;

    (void)state;
    assert_err(qp_frame_header(zero, MAXF, &len), QT_EPARSE);
    assert_int_equal(len, 7);
    assert_ok(qp_frame_header(one, MAXF, &len));
    assert_int_equal(len, 1);
    /* Exactly the limit is fine, one more is too big. */
    assert_ok(qp_frame_header(k4, QP_MIN_MAX_FRAME, &len));
    assert_int_equal(len, QP_MIN_MAX_FRAME);
    len = 7;
    assert_err(qp_frame_header(k4p1, QP_MIN_MAX_FRAME, &len), QT_ETOOBIG);
    assert_int_equal(len, 7);
    assert_ok(qp_frame_header(d64m, MAXF, &len));
    assert_int_equal(len, MAXF);
    assert_err(qp_frame_header(d64m1, MAXF, &len), QT_ETOOBIG);
    assert_err(qp_frame_header(big, MAXF, &len), QT_ETOOBIG);
    assert_ok(qp_frame_header(big, UINT32_MAX, &len));
    assert_int_equal(len, UINT32_MAX);
    /* Big-endian. */
    assert_ok(qp_frame_header(order, UINT32_MAX, &len));
    assert_int_equal(len, 0x01020304u);
}

/* ---- pre-scan ---- */

static void expect_prescan(const void *buf, size_t len, int want, const char *what)
{
    int r;

    memset(&diag, 0, sizeof(diag));
    r = qp_prescan((const uint8_t *)buf, len, &diag);
    if (r != want) {
        print_error("%s (%zu bytes): qp_prescan = %d, expected %d: %s\n", what, len, r, want,
                    diag.msg);
        fail();
    }
    if (r < 0 && !diag.msg[0]) {
        print_error("%s: rejected without a message\n", what);
        fail();
    }
}

#define PRESCAN_BAD(...)                                         \
    do {                                                         \
        static const uint8_t b_[] = {__VA_ARGS__};               \
        expect_prescan(b_, sizeof(b_), QT_EPARSE, #__VA_ARGS__); \
    } while (0)

#define PRESCAN_GOOD(...)                                \
    do {                                                 \
        static const uint8_t b_[] = {__VA_ARGS__};       \
        expect_prescan(b_, sizeof(b_), 0, #__VA_ARGS__); \
    } while (0)

static void test_prescan_bombs(void **state)
{
    (void)state;
    /* array32 of 268 M elements in a 5-byte frame: msgpack-c would allocate 6.4 GB. */
    PRESCAN_BAD(0xdd, 0x0f, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xdd, 0x7f, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xdd, 0xff, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0);
    /* map32: counts entries (two values each). */
    PRESCAN_BAD(0xdf, 0x0f, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0);
    PRESCAN_BAD(0xdf, 0x80, 0x00, 0x00, 0x00, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0);
    PRESCAN_BAD(0xdf, 0x00, 0x00, 0x00, 0x03, 0xc0, 0xc0, 0xc0, 0xc0);
    PRESCAN_BAD(0xdf, 0x00, 0x00, 0x00, 0x03, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0);
    /* 16-bit and fix counts. */
    PRESCAN_BAD(0xdc, 0xff, 0xff, 0xc0);
    PRESCAN_BAD(0xde, 0x80, 0x00, 0xc0, 0xc0);
    PRESCAN_BAD(0x9f, 0xc0);
    PRESCAN_BAD(0x8f, 0xc0, 0xc0);
    PRESCAN_BAD(0x81, 0xc0);
    /* A bomb below the top level. */
    PRESCAN_BAD(0x91, 0xdd, 0x0f, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0x81, 0xa1, 'k', 0xdf, 0x0f, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0x94, 0x00, 0x01, 0xa5, 'h', 'e', 'l', 'l', 'o', 0xdd, 0x0f, 0xff, 0xff, 0xff);
    /* str / bin / ext lengths past the end. */
    PRESCAN_BAD(0xdb, 0x00, 0x01, 0x00, 0x00, 'a', 'b');
    PRESCAN_BAD(0xdb, 0xff, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b');
    PRESCAN_BAD(0xc6, 0xff, 0xff, 0xff, 0xff, 0x00);
    PRESCAN_BAD(0xc6, 0x00, 0x00, 0x00, 0x05, 0x01, 0x02, 0x03, 0x04);
    PRESCAN_BAD(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01);
    PRESCAN_BAD(0xc9, 0x00, 0x00, 0x00, 0x04, 0x01, 0xaa, 0xbb, 0xcc);
    PRESCAN_BAD(0xc8, 0xff, 0xff, 0x01, 0x00);
    PRESCAN_BAD(0xc7, 0x02, 0x01, 0xaa);
    PRESCAN_BAD(0xc4, 0x05, 0x01, 0x02);
    PRESCAN_BAD(0xc5, 0x01, 0x00, 0x01);
    PRESCAN_BAD(0xd9, 0x10, 'a');
    PRESCAN_BAD(0xda, 0x01, 0x00, 'a');
    PRESCAN_BAD(0xbf, 'a', 'b');
    /* Exactly enough is fine. */
    PRESCAN_GOOD(0xdb, 0x00, 0x00, 0x00, 0x02, 'a', 'b');
    PRESCAN_GOOD(0xc6, 0x00, 0x00, 0x00, 0x01, 0x00);
    PRESCAN_GOOD(0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0xaa);
    PRESCAN_GOOD(0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0, 0xc0);
    PRESCAN_GOOD(0xdf, 0x00, 0x00, 0x00, 0x02, 0xc0, 0xc0, 0xc0, 0xc0);
}

static void test_prescan_truncated(void **state)
{
    (void)state;
    PRESCAN_BAD(0xca, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xcb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xcc);
    PRESCAN_BAD(0xcd, 0x00);
    PRESCAN_BAD(0xce, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xcf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xd0);
    PRESCAN_BAD(0xd1, 0xff);
    PRESCAN_BAD(0xd2, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    PRESCAN_BAD(0xd4, 0x01);
    PRESCAN_BAD(0xd5, 0x01, 0x00);
    PRESCAN_BAD(0xd6, 0x01, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xd7, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xd8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00);
    PRESCAN_BAD(0xc7);
    PRESCAN_BAD(0xc7, 0x00);
    PRESCAN_BAD(0xc8, 0x00, 0x00);
    PRESCAN_BAD(0xc9, 0x00, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xc4);
    PRESCAN_BAD(0xc5, 0x00);
    PRESCAN_BAD(0xc6, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xd9);
    PRESCAN_BAD(0xda, 0x00);
    PRESCAN_BAD(0xdb, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xdc, 0x00);
    PRESCAN_BAD(0xdd, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0xde, 0x00);
    PRESCAN_BAD(0xdf, 0x00, 0x00, 0x00);
    PRESCAN_BAD(0x92, 0xcb, 0x00, 0x00);
    expect_prescan("", 0, QT_EPARSE, "empty");
}

static void test_prescan_trailing_and_reserved(void **state)
{
    (void)state;
    PRESCAN_BAD(0xc0, 0xc0);
    PRESCAN_BAD(0x90, 0x00);
    PRESCAN_BAD(0x91, 0x01, 0x02);
    PRESCAN_BAD(0xa1, 'a', 'b');
    PRESCAN_BAD(0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    PRESCAN_BAD(0x93, 0x00, 0x01, 0x90, 0xc1);
    /* 0xc1 is never used. */
    PRESCAN_BAD(0xc1);
    PRESCAN_BAD(0x91, 0xc1);
    PRESCAN_BAD(0x81, 0xc1, 0xc0);
    PRESCAN_BAD(0x81, 0xc0, 0xc1);
    PRESCAN_BAD(0x92, 0xc1, 0xc0);
}

static void nested(uint8_t *buf, size_t n_arrays, uint8_t leaf)
{
    memset(buf, 0x91, n_arrays);
    buf[n_arrays] = leaf;
}

/* SCHEMA.md §1: the top-level value has depth 1, an element of a container at depth k has
 * depth k + 1, and every value, scalars included, has depth <= QP_MAX_DEPTH. */
static void test_prescan_depth(void **state)
{
    uint8_t buf[64];

    (void)state;
    /* Depth exactly 16: a scalar inside 15 arrays, or 16 arrays the innermost empty. */
    nested(buf, QP_MAX_DEPTH - 1, 0xc0);
    expect_prescan(buf, QP_MAX_DEPTH, 0, "15 nested arrays around nil");
    nested(buf, QP_MAX_DEPTH - 1, 0x90);
    expect_prescan(buf, QP_MAX_DEPTH, 0, "15 nested arrays around []");
    /* Depth 17. */
    nested(buf, QP_MAX_DEPTH, 0xc0);
    expect_prescan(buf, QP_MAX_DEPTH + 1, QT_EPARSE, "16 nested arrays around nil");
    assert_diag_has("nesting");
    nested(buf, QP_MAX_DEPTH, 0x90);
    expect_prescan(buf, QP_MAX_DEPTH + 1, QT_EPARSE, "16 nested arrays around []");
    nested(buf, QP_MAX_DEPTH + 1, 0xc0);
    expect_prescan(buf, QP_MAX_DEPTH + 2, QT_EPARSE, "17 nested arrays around nil");
    assert_diag_has("nesting");
    nested(buf, 40, 0xc0);
    expect_prescan(buf, 41, QT_EPARSE, "40 nested arrays");
    /* Maps count too: {nil: {nil: ... nil}}, keys at the depth of the values. */
    for (size_t i = 0; i < QP_MAX_DEPTH - 1; i++)
        buf[2 * i] = 0x81, buf[2 * i + 1] = 0xc0;
    buf[2 * (QP_MAX_DEPTH - 1)] = 0xc0;
    expect_prescan(buf, 2 * (QP_MAX_DEPTH - 1) + 1, 0, "15 nested maps");
    for (size_t i = 0; i < QP_MAX_DEPTH; i++)
        buf[2 * i] = 0x81, buf[2 * i + 1] = 0xc0;
    buf[2 * QP_MAX_DEPTH] = 0xc0;
    expect_prescan(buf, 2 * QP_MAX_DEPTH + 1, QT_EPARSE, "16 nested maps");
    /* A deep key. */
    for (size_t i = 0; i < QP_MAX_DEPTH - 1; i++)
        buf[i] = 0x91;
    buf[QP_MAX_DEPTH - 1] = 0x81, buf[QP_MAX_DEPTH] = 0x91, buf[QP_MAX_DEPTH + 1] = 0xc0;
    buf[QP_MAX_DEPTH + 2] = 0xc0;
    expect_prescan(buf, QP_MAX_DEPTH + 3, QT_EPARSE, "a map key at depth 17");
    /* Depth is nesting, not count: 16 sibling arrays at depth 2 are fine. */
    buf[0] = 0xdc, buf[1] = 0x00, buf[2] = 0x10;
    memset(buf + 3, 0x90, 16);
    expect_prescan(buf, 19, 0, "array16 of 16 empty arrays");
}

/* One msgpack value of every type and width, packed by msgpack-c, with the first byte it must
 * have. Containers hold a mix of real elements. */
enum { BIG = 70000 };

enum sample_kind {
    SK_NIL,
    SK_TRUE,
    SK_FALSE,
    SK_INT,
    SK_UINT,
    SK_F32,
    SK_F64,
    SK_STR,
    SK_BIN,
    SK_EXT,
    SK_ARRAY,
    SK_MAP
};

struct sample {
    uint8_t first;
    const char *name;
    enum sample_kind kind;
    int64_t arg; /* value, or length / count */
};

static const struct sample samples[] = {
    {0xc0, "nil", SK_NIL, 0},
    {0xc3, "true", SK_TRUE, 0},
    {0xc2, "false", SK_FALSE, 0},
    {0x05, "positive fixint", SK_INT, 5},
    {0x7f, "largest positive fixint", SK_INT, 127},
    {0xfb, "negative fixint", SK_INT, -5},
    {0xe0, "smallest negative fixint", SK_INT, -32},
    {0xd0, "int8", SK_INT, -100},
    {0xd1, "int16", SK_INT, -1000},
    {0xd2, "int32", SK_INT, -100000},
    {0xd3, "int64", SK_INT, -10000000000},
    {0xd3, "int64 min", SK_INT, INT64_MIN},
    {0xcc, "uint8", SK_UINT, 200},
    {0xcd, "uint16", SK_UINT, 60000},
    {0xce, "uint32", SK_UINT, 4000000000},
    {0xcf, "uint64", SK_UINT, -1}, /* UINT64_MAX */
    {0xca, "float32", SK_F32, 0},
    {0xcb, "float64", SK_F64, 0},
    {0xa0, "empty fixstr", SK_STR, 0},
    {0xa3, "fixstr", SK_STR, 3},
    {0xbf, "fixstr 31", SK_STR, 31},
    {0xd9, "str8", SK_STR, 40},
    {0xda, "str16", SK_STR, 300},
    {0xdb, "str32", SK_STR, BIG},
    {0xc4, "empty bin8", SK_BIN, 0},
    {0xc4, "bin8", SK_BIN, 10},
    {0xc5, "bin16", SK_BIN, 300},
    {0xc6, "bin32", SK_BIN, BIG},
    {0xd4, "fixext1", SK_EXT, 1},
    {0xd5, "fixext2", SK_EXT, 2},
    {0xd6, "fixext4", SK_EXT, 4},
    {0xd7, "fixext8", SK_EXT, 8},
    {0xd8, "fixext16", SK_EXT, 16},
    {0xc7, "empty ext8", SK_EXT, 0},
    {0xc7, "ext8", SK_EXT, 3},
    {0xc8, "ext16", SK_EXT, 300},
    {0xc9, "ext32", SK_EXT, BIG},
    {0x90, "empty fixarray", SK_ARRAY, 0},
    {0x93, "fixarray", SK_ARRAY, 3},
    {0xdc, "array16", SK_ARRAY, 20},
    {0xdd, "array32", SK_ARRAY, BIG},
    {0x80, "empty fixmap", SK_MAP, 0},
    {0x82, "fixmap", SK_MAP, 2},
    {0xde, "map16", SK_MAP, 20},
    {0xdf, "map32", SK_MAP, BIG},
};

static void pack_sample(msgpack_packer *pk, const struct sample *s)
{
    static char big[BIG];
    size_t n = (size_t)s->arg;

    memset(big, 'x', sizeof(big));
    switch (s->kind) {
    case SK_NIL:
        (void)msgpack_pack_nil(pk);
        break;
    case SK_TRUE:
        (void)msgpack_pack_true(pk);
        break;
    case SK_FALSE:
        (void)msgpack_pack_false(pk);
        break;
    case SK_INT:
        (void)msgpack_pack_int64(pk, s->arg);
        break;
    case SK_UINT:
        (void)msgpack_pack_uint64(pk, (uint64_t)s->arg);
        break;
    case SK_F32:
        (void)msgpack_pack_float(pk, 1.5f);
        break;
    case SK_F64:
        (void)msgpack_pack_double(pk, -0.1);
        break;
    case SK_STR:
        (void)msgpack_pack_str_with_body(pk, big, n);
        break;
    case SK_BIN:
        (void)msgpack_pack_bin_with_body(pk, big, n);
        break;
    case SK_EXT:
        (void)msgpack_pack_ext_with_body(pk, big, n, (int8_t)(n % 7) - 3);
        break;
    case SK_ARRAY:
        (void)msgpack_pack_array(pk, n);
        for (size_t k = 0; k < n; k++) {
            if (k % 4 == 0)
                (void)msgpack_pack_double(pk, (double)k);
            else if (k % 4 == 1)
                (void)msgpack_pack_nil(pk);
            else if (k % 4 == 2)
                (void)msgpack_pack_int64(pk, -(int64_t)k);
            else
                (void)msgpack_pack_str_with_body(pk, big, k % 5);
        }
        break;
    case SK_MAP:
        (void)msgpack_pack_map(pk, n);
        for (size_t k = 0; k < n; k++) {
            (void)msgpack_pack_uint64(pk, k);
            if (k % 2)
                (void)msgpack_pack_false(pk);
            else
                (void)msgpack_pack_bin_with_body(pk, big, k % 7);
        }
        break;
    }
}

static void test_prescan_accepts_all_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        const char *what = samples[i].name;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
        uint8_t *buf;
        size_t off = 0, cuts[8], ncuts;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_sample(&pk, &samples[i]);
        assert_true(sb.size > 0);
        if ((uint8_t)sb.data[0] != samples[i].first) {
            print_error("%s: packed as 0x%02x, expected 0x%02x\n", what, (uint8_t)sb.data[0],
                        samples[i].first);
            fail();
        }
        /* A valid value for msgpack-c too. */
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, sb.size);
        msgpack_unpacked_destroy(&up);

        expect_prescan(sb.data, sb.size, 0, what);
        /* With a trailing byte, rejected. */
        buf = malloc(sb.size + 1);
        assert_non_null(buf);
        memcpy(buf, sb.data, sb.size);
        buf[sb.size] = 0xc0;
        expect_prescan(buf, sb.size + 1, QT_EPARSE, what);
        /* Every proper prefix is incomplete (all of them for small samples). */
        if (sb.size <= 4096) {
            for (size_t k = 0; k < sb.size; k++)
                expect_prescan(buf, k, QT_EPARSE, what);
        } else {
            ncuts = 0;
            cuts[ncuts++] = 1;
            cuts[ncuts++] = 3;
            cuts[ncuts++] = 5;
            cuts[ncuts++] = 6;
            cuts[ncuts++] = sb.size / 2;
            cuts[ncuts++] = sb.size - 2;
            cuts[ncuts++] = sb.size - 1;
            for (size_t k = 0; k < ncuts; k++)
                expect_prescan(buf, cuts[k], QT_EPARSE, what);
        }
        free(buf);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* Every frame the encoders write passes the pre-scan (the golden tests check them one by one;
 * here several frames in one writer are split by their headers). */
static void test_prescan_frames_in_sequence(void **state)
{
    struct qp_writer w;
    struct qp_job j;
    size_t off = 0, n = 0;

    (void)state;
    make_reconstruct_job(&j);
    qp_writer_init(&w);
    assert_ok(qp_pack_hello(&w, 1, "c", MAXF));
    assert_ok(qp_pack_job(&w, 2, QP_M_RECONSTRUCT, &j, MAXF));
    assert_ok(qp_pack_cancel(&w, 3, 2, MAXF));
    assert_ok(qp_write_bye(&w, "idle", 5, MAXF));
    while (off < w.sb.size) {
        uint32_t len = 0;
        struct qp_msg msg;

        assert_true(w.sb.size - off >= QP_HEADER_LEN);
        assert_ok(qp_frame_header((const uint8_t *)w.sb.data + off, MAXF, &len));
        off += QP_HEADER_LEN;
        assert_true(w.sb.size - off >= len);
        assert_ok(qp_msg_decode((const uint8_t *)w.sb.data + off, len, &msg, &diag));
        qp_msg_done(&msg);
        off += len;
        n++;
    }
    assert_int_equal(n, 4);
    qp_writer_done(&w);
    qp_job_done(&j);
}

/* ---- envelope ---- */

static void expect_msg_error(const void *buf, size_t len, bool id_valid, uint32_t id,
                             const char *what)
{
    struct qp_msg msg;
    int r;

    memset(&diag, 0, sizeof(diag));
    r = qp_msg_decode((const uint8_t *)buf, len, &msg, &diag);
    if (r != QT_EPARSE || msg.id_valid != id_valid || (id_valid && msg.id != id)) {
        print_error("%s: qp_msg_decode = %d, id_valid %d, id %u; expected %d, %d, %u: %s\n", what,
                    r, msg.id_valid, msg.id, QT_EPARSE, id_valid, id, diag.msg);
        qp_msg_done(&msg);
        fail();
    }
    if (!diag.msg[0]) {
        print_error("%s: no message\n", what);
        fail();
    }
    qp_msg_done(&msg);
}

#define MSG_BAD(id_valid, id, ...)                                    \
    do {                                                              \
        static const uint8_t b_[] = {__VA_ARGS__};                    \
        expect_msg_error(b_, sizeof(b_), id_valid, id, #__VA_ARGS__); \
    } while (0)

#define HELLO 0xa5, 'h', 'e', 'l', 'l', 'o'

static void test_msg_malformed_with_id(void **state)
{
    uint8_t name[64];

    (void)state;
    /* [0, 7, 5, []]: the method is not a string. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, 0x05, 0x90);
    /* [0, 7, "hello", {}]: params not an array. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, HELLO, 0x80);
    /* [0, 7, "hello", [1]]: params not [map]. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, HELLO, 0x91, 0x01);
    /* [0, 7, "hello", [{}, {}]]. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, HELLO, 0x92, 0x80, 0x80);
    /* [0, 7, "hello", nil]. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, HELLO, 0xc0);
    /* [0, 7, "hel\0o", []]: a NUL byte in the method name (was reported as method 'hel'). */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, 0xa5, 'h', 'e', 'l', 0x00, 'o', 0x90);
    /* [0, 7, bin "hello", []]. */
    MSG_BAD(true, 7, 0x94, 0x00, 0x07, 0xc4, 0x05, 'h', 'e', 'l', 'l', 'o', 0x90);
    /* [1, 7, 5, nil]: a response whose error is neither nil nor a map. */
    MSG_BAD(true, 7, 0x94, 0x01, 0x07, 0x05, 0xc0);
    /* Largest id. */
    MSG_BAD(true, UINT32_MAX, 0x94, 0x00, 0xce, 0xff, 0xff, 0xff, 0xff, 0x05, 0x90);
    /* A method name of 48 bytes does not fit. */
    name[0] = 0x94, name[1] = 0x00, name[2] = 0x07, name[3] = 0xd9, name[4] = 48;
    memset(name + 5, 'm', 48);
    name[53] = 0x90;
    expect_msg_error(name, 54, true, 7, "48-byte method");
}

static void test_msg_unreadable(void **state)
{
    (void)state;
    /* Not an array. */
    MSG_BAD(false, 0, 0x07);
    MSG_BAD(false, 0, 0x80);
    MSG_BAD(false, 0, 0x90);
    MSG_BAD(false, 0, 0x92, 0x00, 0x07);
    /* Type 9, a negative type, a string type. */
    MSG_BAD(false, 0, 0x94, 0x09, 0x07, HELLO, 0x90);
    MSG_BAD(false, 0, 0x94, 0xff, 0x07, HELLO, 0x90);
    MSG_BAD(false, 0, 0x94, 0xa1, '0', 0x07, HELLO, 0x90);
    /* Negative id, id past u32, id not an integer. */
    MSG_BAD(false, 0, 0x94, 0x00, 0xff, HELLO, 0x90);
    MSG_BAD(false, 0, 0x94, 0x00, 0xd0, 0x80, HELLO, 0x90);
    MSG_BAD(false, 0, 0x94, 0x00, 0xcf, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, HELLO,
            0x90);
    MSG_BAD(false, 0, 0x94, 0x00, 0xcb, 0x40, 0x1c, 0, 0, 0, 0, 0, 0, HELLO, 0x90);
    MSG_BAD(false, 0, 0x94, 0x00, 0xc0, HELLO, 0x90);
    /* Notifications have no id: every error is unreadable. */
    MSG_BAD(false, 0, 0x93, 0x02, 0x05, 0x90);
    MSG_BAD(false, 0, 0x93, 0x02, HELLO, 0x80);
    MSG_BAD(false, 0, 0x94, 0x02, 0x07, HELLO, 0x90);
    /* Bytes the pre-scan refuses. */
    MSG_BAD(false, 0, 0xc1);
    MSG_BAD(false, 0, 0xdd, 0x0f, 0xff, 0xff, 0xff);
    MSG_BAD(false, 0, 0x94, 0x00, 0x07, HELLO, 0x90, 0x00);
}

static void test_msg_decodes(void **state)
{
    /* [0, 7, "frobnicate", [{}]]: unknown method, for the dispatcher to answer. */
    static const uint8_t unknown[] = {0x94, 0x00, 0x07, 0xaa, 'f', 'r', 'o',  'b',
                                      'n',  'i',  'c',  'a',  't', 'e', 0x91, 0x80};
    /* [0, 8, "status", []]: no params. */
    static const uint8_t noparams[] = {0x94, 0x00, 0x08, 0xa6, 's', 't', 'a', 't', 'u', 's', 0x90};
    /* [2, "progress", [{"request": 1}]]. */
    static const uint8_t notif[] = {0x93, 0x02, 0xa8, 'p', 'r', 'o', 'g', 'r', 'e', 's', 's',
                                    0x91, 0x81, 0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0x01};
    /* [2, "nosuch", []]. */
    static const uint8_t notif_unknown[] = {0x93, 0x02, 0xa6, 'n', 'o', 's', 'u', 'c', 'h', 0x90};
    /* [1, 7, nil, {"found": true}]. */
    static const uint8_t resp_ok[] = {0x94, 0x01, 0x07, 0xc0, 0x81, 0xa5,
                                      'f',  'o',  'u',  'n',  'd',  0xc3};
    /* [1, 7, {"code": -32601, "message": "x"}, nil]. */
    static const uint8_t resp_err[] = {0x94, 0x01, 0x07, 0x82, 0xa4, 'c', 'o', 'd',
                                       'e',  0xd1, 0x80, 0xa7, 0xa7, 'm', 'e', 's',
                                       's',  'a',  'g',  'e',  0xa1, 'x', 0xc0};
    struct qp_msg msg;
    bool found = false;

    (void)state;
    assert_ok(qp_msg_decode(unknown, sizeof(unknown), &msg, &diag));
    assert_int_equal(msg.type, QP_REQUEST);
    assert_true(msg.id_valid);
    assert_int_equal(msg.id, 7);
    assert_int_equal(msg.method, -1);
    assert_string_equal(msg.method_name, "frobnicate");
    assert_non_null(msg.params);
    assert_int_equal(msg.params->type, MSGPACK_OBJECT_MAP);
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(noparams, sizeof(noparams), &msg, &diag));
    assert_int_equal(msg.method, QP_M_STATUS);
    assert_int_equal(msg.id, 8);
    assert_null(msg.params);
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(notif, sizeof(notif), &msg, &diag));
    assert_int_equal(msg.type, QP_NOTIFICATION);
    assert_false(msg.id_valid);
    assert_int_equal(msg.method, QP_M_PROGRESS);
    assert_int_equal(get_u64(msg.params, "request"), 1);
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(notif_unknown, sizeof(notif_unknown), &msg, &diag));
    assert_int_equal(msg.type, QP_NOTIFICATION);
    assert_int_equal(msg.method, -1);
    assert_string_equal(msg.method_name, "nosuch");
    assert_null(msg.params);
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(resp_ok, sizeof(resp_ok), &msg, &diag));
    assert_response(&msg, 7);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(msg.result->type, MSGPACK_OBJECT_MAP);
    assert_ok(qp_read_bool(qp_get(msg.result, "found"), "found", &found, &diag));
    assert_true(found);
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(resp_err, sizeof(resp_err), &msg, &diag));
    assert_response(&msg, 7);
    assert_int_equal(msg.error->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(get_i64(msg.error, "code"), QT_ST_METHOD_NOT_FOUND);
    assert_str(get(msg.error, "message"), "x");
    assert_int_equal(msg.result->type, MSGPACK_OBJECT_NIL);
    qp_msg_done(&msg);

    /* Every method of the table is found by name, and only by its exact name. */
    for (int i = 0; i < _QP_M_MAX; i++) {
        assert_int_equal(qp_method_find(qp_methods[i].name, strlen(qp_methods[i].name)), i);
        assert_int_equal(qp_method_find(qp_methods[i].name, strlen(qp_methods[i].name) - 1), -1);
    }
    assert_int_equal(qp_method_find("hello!", 6), -1);
    assert_int_equal(qp_method_find("", 0), -1);
}

/* ---- job rejections ---- */

/* A reconstruct/submit params map with every part adjustable. */
struct jobspec {
    bool no_values;
    const char *dtype;
    uint64_t rows, cols, bytes;
    const char *method;
    const char *opt; /* option name, or NULL */
    char opt_kind;   /* 'f' double, 's' string */
    double opt_f;
    const char *opt_s;
    uint64_t trows, tcols; /* target shape; 0: no target */
    uint64_t d;            /* 0: absent */
    const char *extra;     /* another u64 key, or NULL */
    uint64_t extra_val;
};

static const struct jobspec good_spec = {
    .dtype = "f64le", .rows = 4, .cols = 1, .bytes = 32, .method = "linear", .d = 2};

static int decode_spec(enum qp_method m, const struct jobspec *s, size_t max_dim, size_t max_batch,
                       struct qp_job *j)
{
    static const char zeros[4096];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    struct qp_msg msg;
    size_t nkeys =
        3u + (s->opt != NULL) + (s->trows != 0) + (s->d != 0) + (s->extra != NULL) - s->no_values;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    (void)msgpack_pack_array(&pk, 4);
    (void)msgpack_pack_int(&pk, 0);
    (void)msgpack_pack_int(&pk, 1);
    qp_pack_str(&pk, qp_methods[m].name);
    (void)msgpack_pack_array(&pk, 1);
    (void)msgpack_pack_map(&pk, nkeys);
    if (!s->no_values) {
        qp_pack_key(&pk, "values");
        (void)msgpack_pack_map(&pk, 3);
        qp_pack_key(&pk, "dtype");
        qp_pack_str(&pk, s->dtype);
        qp_pack_key(&pk, "shape");
        (void)msgpack_pack_array(&pk, 2);
        (void)msgpack_pack_uint64(&pk, s->rows);
        (void)msgpack_pack_uint64(&pk, s->cols);
        qp_pack_key(&pk, "data");
        assert_true(s->bytes <= sizeof(zeros));
        (void)msgpack_pack_bin_with_body(&pk, zeros, s->bytes);
    }
    qp_pack_key(&pk, "design");
    qp_pack_str(&pk, "nopovm");
    if (s->d) {
        qp_pack_key(&pk, "d");
        (void)msgpack_pack_uint64(&pk, s->d);
    }
    qp_pack_key(&pk, "methods");
    (void)msgpack_pack_array(&pk, 1);
    qp_pack_str(&pk, s->method);
    if (s->opt) {
        qp_pack_key(&pk, "options");
        (void)msgpack_pack_map(&pk, 1);
        qp_pack_key(&pk, s->opt);
        if (s->opt_kind == 's')
            qp_pack_str(&pk, s->opt_s);
        else
            (void)msgpack_pack_double(&pk, s->opt_f);
    }
    if (s->trows) {
        qp_pack_key(&pk, "target");
        (void)msgpack_pack_map(&pk, 3);
        qp_pack_key(&pk, "dtype");
        qp_pack_str(&pk, "c128le");
        qp_pack_key(&pk, "shape");
        (void)msgpack_pack_array(&pk, 2);
        (void)msgpack_pack_uint64(&pk, s->trows);
        (void)msgpack_pack_uint64(&pk, s->tcols);
        qp_pack_key(&pk, "data");
        assert_true(s->trows * s->tcols * 16 <= sizeof(zeros));
        (void)msgpack_pack_bin_with_body(&pk, zeros, s->trows * s->tcols * 16);
    }
    if (s->extra) {
        qp_pack_key(&pk, s->extra);
        (void)msgpack_pack_uint64(&pk, s->extra_val);
    }
    assert_ok(qp_msg_decode((const uint8_t *)sb.data, sb.size, &msg, &diag));
    assert_int_equal(msg.method, m);
    memset(&diag, 0, sizeof(diag));
    r = qp_decode_job(msg.params, m, max_dim, max_batch, j, &diag);
    qp_msg_done(&msg);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void expect_job_error(enum qp_method m, const struct jobspec *s, size_t max_dim,
                             size_t max_batch, int code, const char *field)
{
    struct qp_job j;
    int r = decode_spec(m, s, max_dim, max_batch, &j);

    if (r != code) {
        print_error("expected %d (%s) naming %s, got %d: %s\n", code, qt_strerror(code), field, r,
                    diag.msg);
        fail();
    }
    assert_diag_has(field);
    /* Nothing is left allocated. */
    assert_null(j.values);
    assert_null(j.target);
}

static void test_job_rejections(void **state)
{
    struct jobspec s;
    struct qp_job j;

    (void)state;
    /* The base spec is fine for both methods. */
    s = good_spec;
    assert_ok(decode_spec(QP_M_RECONSTRUCT, &s, 256, 8, &j));
    assert_int_equal(j.m, 4);
    assert_int_equal(j.n, 1);
    assert_int_equal(j.d, 2);
    assert_true(j.methods[QT_METHOD_LINEAR]);
    qp_job_done(&j);
    s.trows = s.tcols = 2;
    s.opt = "mle-gap-tol", s.opt_kind = 'f', s.opt_f = 1e-6;
    assert_ok(decode_spec(QP_M_SUBMIT, &s, 256, 8, &j));
    assert_non_null(j.target);
    qt_assert_close(j.opts.mle.gap_tol, 1e-6, 0, 0);
    qp_job_done(&j);

    s = good_spec, s.no_values = true;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values");
    s = good_spec, s.dtype = "c128le";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values: dtype");
    s = good_spec, s.dtype = "f32le";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values: dtype");
    s = good_spec, s.bytes = 24;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values");
    s = good_spec, s.bytes = 40;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values");
    s = good_spec, s.rows = 0, s.bytes = 0;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "values");
    /* reconstruct takes one column. */
    s = good_spec, s.cols = 2, s.bytes = 64;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_ETOOBIG, "values");
    /* submit takes at most max_batch columns. */
    s = good_spec, s.cols = 3, s.bytes = 96;
    assert_ok(decode_spec(QP_M_SUBMIT, &s, 256, 3, &j));
    assert_int_equal(j.n, 3);
    qp_job_done(&j);
    expect_job_error(QP_M_SUBMIT, &s, 256, 2, QT_ETOOBIG, "values");
    s = good_spec, s.method = "bayes";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EMETHOD, "methods");
    s = good_spec, s.opt = "mle-gap", s.opt_kind = 'f', s.opt_f = 1e-9;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EOPTION, "mle-gap");
    assert_diag_has("options");
    s = good_spec, s.opt = "mle-gap-tol", s.opt_kind = 'f', s.opt_f = 0;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EOPTION, "options.mle-gap-tol");
    s = good_spec, s.opt = "mle-max-iterations", s.opt_kind = 'f', s.opt_f = 1.5;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EOPTION, "options.mle-max-iterations");
    s = good_spec, s.opt = "mle-gap-tol", s.opt_kind = 's', s.opt_s = "small";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "mle-gap-tol");
    s = good_spec, s.opt = "physical", s.opt_kind = 's', s.opt_s = "foo";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EOPTION, "options.physical");
    s = good_spec, s.opt = "physical", s.opt_kind = 'f', s.opt_f = 1;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "options.physical");
    s = good_spec, s.opt = "bell", s.opt_kind = 's', s.opt_s = "yes";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "options.bell");
    /* target: square, and d x d when d is given. */
    s = good_spec, s.trows = 2, s.tcols = 3;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_ESHAPE, "target");
    s = good_spec, s.trows = 3, s.tcols = 3;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_ESHAPE, "target");
    s = good_spec, s.trows = 3, s.tcols = 3;
    expect_job_error(QP_M_RECONSTRUCT, &s, 2, 8, QT_EPARSE, "target");
    /* d bounded by max_dim. */
    s = good_spec, s.d = 257;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "d:");
    s = good_spec, s.d = 3;
    expect_job_error(QP_M_RECONSTRUCT, &s, 2, 8, QT_EPARSE, "d:");
    /* The other bounded integers. */
    s = good_spec, s.extra = "timeout_ms", s.extra_val = (uint64_t)UINT32_MAX + 1;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "timeout_ms");
    s = good_spec, s.extra = "progress_ms", s.extra_val = (uint64_t)UINT32_MAX + 1;
    expect_job_error(QP_M_SUBMIT, &s, 256, 8, QT_EPARSE, "progress_ms");
    s = good_spec, s.extra = "first_index", s.extra_val = (uint64_t)1 << 63;
    expect_job_error(QP_M_SUBMIT, &s, 256, 8, QT_EPARSE, "first_index");
    s = good_spec, s.extra = "first_index", s.extra_val = ((uint64_t)1 << 63) - 1;
    assert_ok(decode_spec(QP_M_SUBMIT, &s, 256, 8, &j));
    assert_int_equal(j.first_index, ((uint64_t)1 << 63) - 1);
    qp_job_done(&j);
    /* Estimation-method names are case-insensitive (SCHEMA.md §2). */
    s = good_spec, s.method = "MLE";
    assert_ok(decode_spec(QP_M_RECONSTRUCT, &s, 256, 8, &j));
    assert_true(j.methods[QT_METHOD_MLE]);
    assert_false(j.methods[QT_METHOD_LINEAR]);
    qp_job_done(&j);
}

/* Values that are legal msgpack but empty or of the wrong type, decoded without undefined
 * behaviour (msgpack-c gives an empty str a NULL pointer; the sanitizer builds check). */
static void test_empty_and_mistyped_values(void **state)
{
    /* [0, 7, "", [{}]]: an empty method name is unknown, not an error. */
    static const uint8_t empty_method[] = {0x94, 0x00, 0x07, 0xa0, 0x91, 0x80};
    /* [0, 1, "hello", [{"proto": [1, 0], "client": ""}]]. */
    static const uint8_t empty_client[] = {0x94, 0x00, 0x01, 0xa5, 'h', 'e', 'l', 'l',  'o',  0x91,
                                           0x82, 0xa5, 'p',  'r',  'o', 't', 'o', 0x92, 0x01, 0x00,
                                           0xa6, 'c',  'l',  'i',  'e', 'n', 't', 0xa0};
    struct jobspec s;
    struct qp_msg msg;
    struct qp_hello h;

    (void)state;
    assert_ok(qp_msg_decode(empty_method, sizeof(empty_method), &msg, &diag));
    assert_int_equal(msg.method, -1);
    assert_string_equal(msg.method_name, "");
    qp_msg_done(&msg);

    assert_ok(qp_msg_decode(empty_client, sizeof(empty_client), &msg, &diag));
    assert_int_equal(msg.method, QP_M_HELLO);
    assert_ok(qp_decode_hello(msg.params, &h, &diag));
    assert_string_equal(h.client, "");
    qp_msg_done(&msg);

    /* A flag option whose value is not a boolean. */
    s = good_spec, s.opt = "rhor-diluted", s.opt_kind = 'f', s.opt_f = 1;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "rhor-diluted");
    s = good_spec, s.opt = "rhor-warm-start", s.opt_kind = 's', s.opt_s = "";
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EPARSE, "rhor-warm-start");
    /* An empty option name. */
    s = good_spec, s.opt = "", s.opt_kind = 'f', s.opt_f = 1;
    expect_job_error(QP_M_RECONSTRUCT, &s, 256, 8, QT_EOPTION, "options");
}

/* ---- frames dropped by qp_frame_end ---- */

static void test_frame_end_too_big(void **state)
{
    const uint32_t max = QP_MIN_MAX_FRAME;
    struct qp_writer w;
    struct qp_job j;
    uint8_t *keep;
    size_t keep_len, off, n;
    static const char body[QP_MIN_MAX_FRAME];

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_hello(&w, 1, "qtomoctl/0.1.0", max));
    assert_ok(qp_pack_cancel(&w, 2, 1, max));
    keep_len = w.sb.size;
    keep = malloc(keep_len);
    assert_non_null(keep);
    memcpy(keep, w.sb.data, keep_len);

    /* A 1024-value reconstruct needs 8 KiB of body. */
    qp_job_init(&j);
    j.values = calloc(1024, sizeof(double));
    assert_non_null(j.values);
    j.m = 1024;
    j.n = 1;
    (void)snprintf(j.design, sizeof(j.design), "nopovm");
    j.methods[QT_METHOD_LINEAR] = true;
    assert_err(qp_pack_job(&w, 3, QP_M_RECONSTRUCT, &j, max), QT_ETOOBIG);
    assert_int_equal(w.sb.size, keep_len);
    assert_memory_equal(w.sb.data, keep, keep_len);
    assert_err(qp_write_error(&w, 4, QT_ST_INTERNAL, "x", -1, 8), QT_ETOOBIG);
    assert_int_equal(w.sb.size, keep_len);

    /* A body of exactly max bytes is kept; max + 1 is dropped. bin16 has a 3-byte head. */
    qp_frame_begin(&w);
    (void)msgpack_pack_bin_with_body(&w.pk, body, max - 2);
    assert_err(qp_frame_end(&w, max), QT_ETOOBIG);
    assert_int_equal(w.sb.size, keep_len);
    qp_frame_begin(&w);
    (void)msgpack_pack_bin_with_body(&w.pk, body, max - 3);
    assert_ok(qp_frame_end(&w, max));
    assert_int_equal(w.sb.size, keep_len + QP_HEADER_LEN + max);
    /* An empty frame is dropped too. */
    qp_frame_begin(&w);
    assert_true(qp_frame_end(&w, max) < 0);
    assert_int_equal(w.sb.size, keep_len + QP_HEADER_LEN + max);
    assert_ok(qp_write_bye(&w, "idle", 0, max));

    /* The writer now holds hello, cancel, the bin frame and bye, all readable. */
    assert_memory_equal(w.sb.data, keep, keep_len);
    for (off = 0, n = 0; off < w.sb.size; n++) {
        uint32_t len = 0;
        struct qp_msg msg;

        assert_true(w.sb.size - off >= QP_HEADER_LEN);
        assert_ok(qp_frame_header((const uint8_t *)w.sb.data + off, max, &len));
        off += QP_HEADER_LEN;
        assert_true(w.sb.size - off >= len);
        if (n == 2) {
            assert_int_equal(len, max);
            assert_ok(qp_prescan((const uint8_t *)w.sb.data + off, len, &diag));
        } else {
            assert_ok(qp_msg_decode((const uint8_t *)w.sb.data + off, len, &msg, &diag));
            qp_msg_done(&msg);
        }
        off += len;
    }
    assert_int_equal(n, 4);

    /* After a reset the next frame starts at offset 0. */
    qp_writer_reset(&w);
    assert_int_equal(w.sb.size, 0);
    assert_ok(qp_pack_hello(&w, 1, "qtomoctl/0.1.0", max));
    assert_memory_equal(w.sb.data, keep, w.sb.size);

    free(keep);
    qp_job_done(&j);
    qp_writer_done(&w);
}

/* ---- bulk arrays ---- */

/* qp_read_array checks the shape's product against max_elems and the data without overflow,
 * whatever max_elems the caller allows. */
static void test_read_array_bounds(void **state)
{
    static const char data[64];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    size_t off = 0, shape[2] = {0, 0};
    void *out = NULL;
    int r;

    (void)state;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* {dtype: "f64le", shape: [2^32, 2^32], data: bin 0}: 2^64 elements, wrapping to 0. */
    (void)msgpack_pack_map(&pk, 3);
    qp_pack_key(&pk, "dtype");
    qp_pack_str(&pk, "f64le");
    qp_pack_key(&pk, "shape");
    (void)msgpack_pack_array(&pk, 2);
    (void)msgpack_pack_uint64(&pk, (uint64_t)1 << 32);
    (void)msgpack_pack_uint64(&pk, (uint64_t)1 << 32);
    qp_pack_key(&pk, "data");
    (void)msgpack_pack_bin_with_body(&pk, data, 0);
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    memset(&diag, 0, sizeof(diag));
    r = qp_read_array(&up.data, "x", false, 2, shape, (size_t)1 << 44, &out, &diag);
    if (r == 0) {
        print_error("shape [%zu, %zu] accepted with %u data bytes\n", shape[0], shape[1],
                    up.data.via.map.ptr[2].val.via.bin.size);
        free(out);
    }
    assert_int_equal(r, QT_EPARSE);
    assert_diag_has("x:");
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- rejections: error maps and the administrative results ---- */

/* Writable views of a decoded message (msg->up owns it): the rejection tests decode a frame
 * that is valid, break one field in place and run the decoder again. */
static msgpack_object *m_result(struct qp_msg *msg)
{
    assert_int_equal(msg->type, QP_RESPONSE);
    return &msg->up.data.via.array.ptr[3];
}

static msgpack_object *m_error(struct qp_msg *msg)
{
    assert_int_equal(msg->type, QP_RESPONSE);
    return &msg->up.data.via.array.ptr[2];
}

static msgpack_object *m_params(struct qp_msg *msg)
{
    assert_int_equal(msg->type, QP_REQUEST);
    return &msg->up.data.via.array.ptr[3].via.array.ptr[0];
}

static msgpack_object_kv *m_kv(msgpack_object *map, const char *key)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object_kv *kv = &map->via.map.ptr[i];

        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
            return kv;
    }
    print_error("key \"%s\" missing\n", key);
    fail();
    return NULL;
}

static msgpack_object *m_get(msgpack_object *map, const char *key)
{
    return &m_kv(map, key)->val;
}

static msgpack_object *m_at(msgpack_object *array, uint32_t i)
{
    assert_int_equal(array->type, MSGPACK_OBJECT_ARRAY);
    assert_true(i < array->via.array.size);
    return &array->via.array.ptr[i];
}

/* Renames the key so that decoders no longer find it (unknown keys are ignored). */
static void m_hide(msgpack_object *map, const char *key)
{
    msgpack_object_kv *kv = m_kv(map, key);

    kv->key.via.str.ptr = "no_such_key";
    kv->key.via.str.size = (uint32_t)strlen("no_such_key");
}

static void m_set_str(msgpack_object *o, const char *s)
{
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = s;
    o->via.str.size = (uint32_t)strlen(s);
}

static void m_set_int(msgpack_object *o, int64_t v)
{
    if (v < 0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v;
    } else {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    }
}

static void m_set_u64(msgpack_object *o, uint64_t v)
{
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o->via.u64 = v;
}

static void m_set_nil(msgpack_object *o)
{
    o->type = MSGPACK_OBJECT_NIL;
}

static void m_set_bool(msgpack_object *o, bool v)
{
    o->type = MSGPACK_OBJECT_BOOLEAN;
    o->via.boolean = v;
}

/* Decodes the one frame in w again into a fresh msg (after qp_msg_done of the old one). */
static void redecode(const struct qp_writer *w, struct qp_msg *msg)
{
    qp_msg_done(msg);
    decode_frame(w, msg);
}

static void expect_error_map_err(struct qp_msg *msg, const char *field)
{
    struct qp_error e;

    assert_err(qp_decode_error(m_error(msg), &e, &diag), QT_EPARSE);
    assert_diag_has(field);
}

static void test_error_map_rejections(void **state)
{
    const struct qp_totals t = {.n_ok = 1, .n_err = 2, .n_cancelled = 3, .elapsed_ms = 4};
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_error e;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_write_error_totals(&w, 3, QT_ST_CANCELLED, "cancelled", &t, MAXF));
    decode_frame(&w, &msg);

    /* Not a map. */
    m_set_nil(m_error(&msg));
    expect_error_map_err(&msg, "error");

    /* code: missing, zero, positive, a string, below INT32_MIN. */
    redecode(&w, &msg);
    m_hide(m_error(&msg), "code");
    expect_error_map_err(&msg, "error.code");
    redecode(&w, &msg);
    m_set_int(m_get(m_error(&msg), "code"), 0);
    expect_error_map_err(&msg, "error.code");
    redecode(&w, &msg);
    m_set_int(m_get(m_error(&msg), "code"), 32800);
    expect_error_map_err(&msg, "error.code");
    redecode(&w, &msg);
    m_set_str(m_get(m_error(&msg), "code"), "-32800");
    expect_error_map_err(&msg, "error.code");
    redecode(&w, &msg);
    m_set_int(m_get(m_error(&msg), "code"), (int64_t)INT32_MIN - 1);
    expect_error_map_err(&msg, "error.code");

    /* message: missing, not a string. */
    redecode(&w, &msg);
    m_hide(m_error(&msg), "message");
    expect_error_map_err(&msg, "error.message");
    redecode(&w, &msg);
    m_set_int(m_get(m_error(&msg), "message"), 5);
    expect_error_map_err(&msg, "error.message");

    /* Totals in data that do not decode. */
    redecode(&w, &msg);
    m_hide(m_get(m_error(&msg), "data"), "elapsed_ms");
    expect_error_map_err(&msg, "totals");
    redecode(&w, &msg);
    m_set_int(m_get(m_get(m_error(&msg), "data"), "n_err"), -2);
    expect_error_map_err(&msg, "totals");

    /* data that is not a map, or has no n_ok, is not totals; a negative or mistyped
     * retry_after_ms reads as absent. */
    redecode(&w, &msg);
    m_set_str(m_get(m_error(&msg), "data"), "x");
    assert_ok(qp_decode_error(m_error(&msg), &e, &diag));
    assert_false(e.has_totals);
    assert_int_equal(e.retry_after_ms, -1);
    redecode(&w, &msg);
    m_hide(m_get(m_error(&msg), "data"), "n_ok");
    assert_ok(qp_decode_error(m_error(&msg), &e, &diag));
    assert_false(e.has_totals);
    qp_msg_done(&msg);

    qp_writer_reset(&w);
    assert_ok(qp_write_error(&w, 13, QT_ST_BUSY, "busy", 250, MAXF));
    decode_frame(&w, &msg);
    m_set_int(m_get(m_get(m_error(&msg), "data"), "retry_after_ms"), -5);
    assert_ok(qp_decode_error(m_error(&msg), &e, &diag));
    assert_int_equal(e.retry_after_ms, -1);
    redecode(&w, &msg);
    m_set_str(m_get(m_get(m_error(&msg), "data"), "retry_after_ms"), "250");
    assert_ok(qp_decode_error(m_error(&msg), &e, &diag));
    assert_int_equal(e.retry_after_ms, -1);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_u64_and_cancel_result_rejections(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    uint64_t v = 0;
    bool found = true;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_u64_result(&w, 8, "warmed", 2, MAXF));
    decode_frame(&w, &msg);
    m_set_nil(m_result(&msg));
    assert_err(qp_decode_u64_result(m_result(&msg), "warmed", &v, &diag), QT_EPARSE);
    assert_diag_has("result");
    redecode(&w, &msg);
    m_hide(m_result(&msg), "warmed");
    assert_err(qp_decode_u64_result(m_result(&msg), "warmed", &v, &diag), QT_EPARSE);
    assert_diag_has("warmed: missing");
    redecode(&w, &msg);
    m_set_int(m_get(m_result(&msg), "warmed"), -1);
    assert_err(qp_decode_u64_result(m_result(&msg), "warmed", &v, &diag), QT_EPARSE);
    assert_diag_has("warmed");
    redecode(&w, &msg);
    m_set_str(m_get(m_result(&msg), "warmed"), "2");
    assert_err(qp_decode_u64_result(m_result(&msg), "warmed", &v, &diag), QT_EPARSE);
    assert_diag_has("warmed");
    qp_msg_done(&msg);

    /* cancel: found is required and must be a bool. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_cancel_result(&w, 4, true, MAXF));
    decode_frame(&w, &msg);
    m_hide(m_result(&msg), "found");
    assert_err(qp_decode_cancel_result(m_result(&msg), &found, &diag), QT_EPARSE);
    assert_diag_has("found: missing");
    assert_false(found);
    redecode(&w, &msg);
    m_set_int(m_get(m_result(&msg), "found"), 1);
    assert_err(qp_decode_cancel_result(m_result(&msg), &found, &diag), QT_EPARSE);
    assert_diag_has("found");
    redecode(&w, &msg);
    m_set_nil(m_get(m_result(&msg), "found"));
    assert_err(qp_decode_cancel_result(m_result(&msg), &found, &diag), QT_EPARSE);
    assert_diag_has("found");
    redecode(&w, &msg);
    m_set_str(m_result(&msg), "found");
    assert_err(qp_decode_cancel_result(m_result(&msg), &found, &diag), QT_EPARSE);
    assert_diag_has("result");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

/* The status decoder refuses the message and names field; nothing is left allocated. */
static void expect_status_err(struct qp_msg *msg, const char *field)
{
    struct qp_status s;

    assert_err(qp_decode_status_result(m_result(msg), &s, &diag), QT_EPARSE);
    assert_diag_has(field);
    assert_null(s.workers);
    assert_int_equal(s.n_worker_info, 0);
}

static void test_status_rejections(void **state)
{
    static const char *const top[] = {"uptime_s", "queue", "inflight", "n_workers", "cache"};
    static const char *const queue[] = {"interactive", "batch"};
    static const char *const cache[] = {"bytes", "files", "budget"};
    static const char *const totals[] = {"items", "errors", "timeouts", "crashes", "recycled"};
    static const char *const worker[] = {"pid", "state", "jobs", "rss_kb"};
    struct qp_worker_info many[QP_MAX_WORKERS + 1];
    struct qp_writer w;
    struct qp_msg msg;
    struct qp_status s;

    (void)state;
    make_status(&s, true);
    qp_writer_init(&w);
    assert_ok(qp_pack_status_result(&w, 6, &s, MAXF));
    decode_frame(&w, &msg);

    m_set_nil(m_result(&msg));
    expect_status_err(&msg, "result");
    /* Every required key, one at a time: missing, then of the wrong type. */
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_result(&msg), top[i]);
        expect_status_err(&msg, top[i]);
        redecode(&w, &msg);
        m_set_str(m_get(m_result(&msg), top[i]), "1");
        expect_status_err(&msg, top[i]);
    }
    for (size_t i = 0; i < sizeof(queue) / sizeof(queue[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_get(m_result(&msg), "queue"), queue[i]);
        expect_status_err(&msg, queue[i]);
        redecode(&w, &msg);
        m_set_int(m_get(m_get(m_result(&msg), "queue"), queue[i]), -1);
        expect_status_err(&msg, queue[i]);
    }
    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_get(m_result(&msg), "cache"), cache[i]);
        expect_status_err(&msg, cache[i]);
    }
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_get(m_result(&msg), "totals"), totals[i]);
        expect_status_err(&msg, totals[i]);
        redecode(&w, &msg);
        m_set_bool(m_get(m_get(m_result(&msg), "totals"), totals[i]), true);
        expect_status_err(&msg, totals[i]);
    }
    redecode(&w, &msg);
    m_set_u64(m_get(m_result(&msg), "totals"), 5);
    expect_status_err(&msg, "totals");

    /* Stats: workers is required with totals, an array of maps; the second worker is broken so
     * that the first one's allocation has to be freed. */
    redecode(&w, &msg);
    m_hide(m_result(&msg), "workers");
    expect_status_err(&msg, "workers");
    redecode(&w, &msg);
    m_set_nil(m_get(m_result(&msg), "workers"));
    expect_status_err(&msg, "workers");
    redecode(&w, &msg);
    m_set_u64(m_at(m_get(m_result(&msg), "workers"), 1), 4243);
    expect_status_err(&msg, "workers[]");
    for (size_t i = 0; i < sizeof(worker) / sizeof(worker[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_at(m_get(m_result(&msg), "workers"), 1), worker[i]);
        expect_status_err(&msg, worker[i]);
        redecode(&w, &msg);
        m_set_int(m_get(m_at(m_get(m_result(&msg), "workers"), 1), worker[i]), -1);
        expect_status_err(&msg, worker[i]);
    }
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_result(&msg), "workers"), 1), "pid"), UINT32_MAX + (uint64_t)1);
    expect_status_err(&msg, "pid");
    redecode(&w, &msg);
    m_set_str(m_get(m_at(m_get(m_result(&msg), "workers"), 1), "state"), "0123456789abcdef");
    expect_status_err(&msg, "state");
    qp_msg_done(&msg);

    /* One worker more than a decoder takes. */
    for (uint32_t i = 0; i <= QP_MAX_WORKERS; i++)
        many[i] = golden_workers[i % 2];
    s.workers = many;
    s.n_worker_info = QP_MAX_WORKERS + 1;
    qp_writer_reset(&w);
    assert_ok(qp_pack_status_result(&w, 6, &s, MAXF));
    decode_frame(&w, &msg);
    expect_status_err(&msg, "workers");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void test_design_put_rejections(void **state)
{
    static const char text[] = GOLDEN_DESIGN_TEXT;
    struct qp_writer w;
    struct qp_msg msg;
    const char *out = text;
    size_t len = 1;
    char id[64], small[8];
    char *big;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_design_put(&w, 16, text, strlen(text), MAXF));
    decode_frame(&w, &msg);
    m_hide(m_params(&msg), "design");
    assert_err(qp_decode_design_put(m_params(&msg), &out, &len, &diag), QT_EPARSE);
    assert_diag_has("design");
    assert_null(out);
    assert_int_equal(len, 0);
    redecode(&w, &msg);
    m_set_str(m_get(m_params(&msg), "design"), "");
    assert_err(qp_decode_design_put(m_params(&msg), &out, &len, &diag), QT_EPARSE);
    assert_diag_has("design");
    redecode(&w, &msg);
    m_get(m_params(&msg), "design")->type = MSGPACK_OBJECT_BIN;
    assert_err(qp_decode_design_put(m_params(&msg), &out, &len, &diag), QT_EPARSE);
    assert_diag_has("design");
    redecode(&w, &msg);
    m_set_u64(m_get(m_params(&msg), "design"), 2);
    assert_err(qp_decode_design_put(m_params(&msg), &out, &len, &diag), QT_EPARSE);
    assert_diag_has("design");

    /* At most QT_DESIGNFILE_MAX_BYTES; one more is QT_ETOOBIG (-32007). */
    big = malloc(QT_DESIGNFILE_MAX_BYTES + 1);
    assert_non_null(big);
    memset(big, ' ', QT_DESIGNFILE_MAX_BYTES + 1);
    redecode(&w, &msg);
    m_get(m_params(&msg), "design")->via.str.ptr = big;
    m_get(m_params(&msg), "design")->via.str.size = (uint32_t)QT_DESIGNFILE_MAX_BYTES;
    assert_ok(qp_decode_design_put(m_params(&msg), &out, &len, &diag));
    assert_int_equal(len, QT_DESIGNFILE_MAX_BYTES);
    m_get(m_params(&msg), "design")->via.str.size = (uint32_t)QT_DESIGNFILE_MAX_BYTES + 1;
    assert_err(qp_decode_design_put(m_params(&msg), &out, &len, &diag), QT_ETOOBIG);
    assert_diag_has("design");
    assert_null(out);
    qp_msg_done(&msg);
    free(big);

    /* The id result: id required, a string that fits the buffer. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_id_result(&w, 16, GOLDEN_DESIGN_ID, MAXF));
    decode_frame(&w, &msg);
    assert_err(qp_decode_id_result(m_result(&msg), small, sizeof(small), &diag), QT_EPARSE);
    assert_diag_has("id");
    assert_string_equal(small, "");
    m_hide(m_result(&msg), "id");
    assert_err(qp_decode_id_result(m_result(&msg), id, sizeof(id), &diag), QT_EPARSE);
    assert_diag_has("id: missing");
    redecode(&w, &msg);
    m_set_u64(m_get(m_result(&msg), "id"), 7);
    assert_err(qp_decode_id_result(m_result(&msg), id, sizeof(id), &diag), QT_EPARSE);
    assert_diag_has("id");
    redecode(&w, &msg);
    m_set_nil(m_result(&msg));
    assert_err(qp_decode_id_result(m_result(&msg), id, sizeof(id), &diag), QT_EPARSE);
    assert_diag_has("result");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void expect_cache_list_err(struct qp_msg *msg, const char *field)
{
    struct qt_cache_entry *e = NULL;
    size_t n = 99;

    assert_err(qp_decode_cache_list_result(m_result(msg), &e, &n, &diag), QT_EPARSE);
    assert_diag_has(field);
    assert_null(e);
    assert_int_equal(n, 0);
}

static void test_cache_list_rejections(void **state)
{
    static const char *const keys[] = {"name", "id",    "design",      "d",
                                       "m",    "bytes", "last_use_ns", "mapped_by"};
    struct qp_writer w;
    struct qp_msg msg;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_cache_list_result(&w, 7, golden_entries, 2, MAXF));
    decode_frame(&w, &msg);
    m_set_nil(m_result(&msg));
    expect_cache_list_err(&msg, "entries");
    redecode(&w, &msg);
    m_hide(m_result(&msg), "entries");
    expect_cache_list_err(&msg, "entries");
    redecode(&w, &msg);
    m_set_u64(m_get(m_result(&msg), "entries"), 2);
    expect_cache_list_err(&msg, "entries");
    redecode(&w, &msg);
    m_set_str(m_at(m_get(m_result(&msg), "entries"), 1), "x");
    expect_cache_list_err(&msg, "entries[]");
    /* Every key of the second entry is required and typed. */
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        redecode(&w, &msg);
        m_hide(m_at(m_get(m_result(&msg), "entries"), 1), keys[i]);
        expect_cache_list_err(&msg, keys[i]);
        redecode(&w, &msg);
        m_set_bool(m_get(m_at(m_get(m_result(&msg), "entries"), 1), keys[i]), false);
        expect_cache_list_err(&msg, keys[i]);
    }
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_result(&msg), "entries"), 1), "d"), QT_DESIGN_MAX_D + 1);
    expect_cache_list_err(&msg, "d");
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_result(&msg), "entries"), 1), "last_use_ns"),
              (uint64_t)INT64_MAX + 1);
    expect_cache_list_err(&msg, "last_use_ns");
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_result(&msg), "entries"), 1), "mapped_by"),
              UINT32_MAX + (uint64_t)1);
    expect_cache_list_err(&msg, "mapped_by");
    redecode(&w, &msg);
    m_set_str(m_get(m_at(m_get(m_result(&msg), "entries"), 1), "design"), "0123456789abcdef");
    expect_cache_list_err(&msg, "design");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void expect_warm_err(const struct qp_writer *w, size_t max_dim, const char *field)
{
    struct qp_design_d *items = NULL;
    struct qp_msg msg;
    size_t n = 99;

    decode_frame(w, &msg);
    assert_request(&msg, 8, QP_M_CACHE_WARM);
    assert_err(qp_decode_cache_warm(msg.params, max_dim, &items, &n, &diag), QT_EPARSE);
    assert_diag_has(field);
    assert_null(items);
    assert_int_equal(n, 0);
    qp_msg_done(&msg);
}

static void test_cache_warm_rejections(void **state)
{
    struct qp_design_d in[QP_MAX_WARM_ITEMS + 1], *items = NULL;
    struct qp_writer w;
    struct qp_msg msg;
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i <= QP_MAX_WARM_ITEMS; i++)
        in[i] = golden_warm_items[i % 2];
    qp_writer_init(&w);
    /* No items, one too many. */
    assert_ok(qp_pack_cache_warm(&w, 8, in, 0, MAXF));
    expect_warm_err(&w, QT_DESIGN_MAX_DIM, "items");
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, in, QP_MAX_WARM_ITEMS + 1, MAXF));
    expect_warm_err(&w, QT_DESIGN_MAX_DIM, "items");
    /* No items key: the old {design, d} form. */
    qp_writer_reset(&w);
    assert_ok(qp_pack_simple(&w, 8, QP_M_CACHE_WARM, "mub", 4, MAXF));
    expect_warm_err(&w, QT_DESIGN_MAX_DIM, "items");
    /* d above max_dim; d = max_dim is accepted. */
    in[1].d = 65;
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, in, 2, MAXF));
    expect_warm_err(&w, 64, "d:");
    decode_frame(&w, &msg);
    assert_ok(qp_decode_cache_warm(msg.params, 65, &items, &n, &diag));
    assert_int_equal(n, 2);
    assert_int_equal(items[1].d, 65);
    free(items);
    qp_msg_done(&msg);
    /* d = 0, design "", design too long for str(15). */
    in[1].d = 0;
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, in, 2, MAXF));
    expect_warm_err(&w, QT_DESIGN_MAX_DIM, "items[1]");
    in[1] = golden_warm_items[1];
    in[1].design[0] = '\0';
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, in, 2, MAXF));
    expect_warm_err(&w, QT_DESIGN_MAX_DIM, "items[1]");
    qp_writer_reset(&w);
    assert_ok(qp_pack_cache_warm(&w, 8, golden_warm_items, 2, MAXF));
    decode_frame(&w, &msg);
    m_set_str(m_get(m_at(m_get(m_params(&msg), "items"), 1), "design"), "abcdefghijklmnop");
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("design");
    /* Items missing a key, of the wrong type, not maps; items not an array. */
    redecode(&w, &msg);
    m_hide(m_at(m_get(m_params(&msg), "items"), 1), "d");
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("items[1]");
    redecode(&w, &msg);
    m_hide(m_at(m_get(m_params(&msg), "items"), 0), "design");
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("items[0]");
    redecode(&w, &msg);
    m_set_int(m_get(m_at(m_get(m_params(&msg), "items"), 1), "d"), -4);
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("d:");
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_params(&msg), "items"), 0), "design"), 1);
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("design");
    redecode(&w, &msg);
    m_set_str(m_at(m_get(m_params(&msg), "items"), 1), "mub");
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("items[]");
    redecode(&w, &msg);
    m_set_str(m_get(m_params(&msg), "items"), "mub");
    assert_err(qp_decode_cache_warm(m_params(&msg), QT_DESIGN_MAX_DIM, &items, &n, &diag),
               QT_EPARSE);
    assert_diag_has("items");
    assert_null(items);
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

/* qp_decode_design_d bounds d by the caller's max_dim. */
static void test_design_d_max_dim(void **state)
{
    struct qp_writer w;
    struct qp_msg msg;
    char design[16];
    size_t d = 0;

    (void)state;
    qp_writer_init(&w);
    assert_ok(qp_pack_simple(&w, 9, QP_M_CACHE_EVICT, "mub", 64, MAXF));
    decode_frame(&w, &msg);
    assert_ok(qp_decode_design_d(msg.params, 64, design, sizeof(design), &d, &diag));
    assert_int_equal(d, 64);
    assert_err(qp_decode_design_d(msg.params, 63, design, sizeof(design), &d, &diag), QT_EPARSE);
    assert_diag_has("d:");
    assert_err(qp_decode_design_d(msg.params, 0, design, sizeof(design), &d, &diag), QT_EPARSE);
    assert_diag_has("d:");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

static void expect_verify_err(struct qp_msg *msg, const char *field)
{
    struct qp_damaged *dm = NULL;
    uint64_t checked = 0;
    size_t n = 99;

    assert_err(qp_decode_verify_result(m_result(msg), &checked, &dm, &n, &diag), QT_EPARSE);
    assert_diag_has(field);
    assert_null(dm);
    assert_int_equal(n, 0);
}

static void test_verify_rejections(void **state)
{
    struct qp_damaged two[2];
    struct qp_writer w;
    struct qp_msg msg;

    (void)state;
    two[0] = two[1] = golden_damaged[0];
    qp_writer_init(&w);
    assert_ok(qp_pack_verify_result(&w, 10, 3, two, 2, MAXF));
    decode_frame(&w, &msg);
    m_set_nil(m_result(&msg));
    expect_verify_err(&msg, "result");
    redecode(&w, &msg);
    m_hide(m_result(&msg), "checked");
    expect_verify_err(&msg, "checked: missing");
    redecode(&w, &msg);
    m_set_str(m_get(m_result(&msg), "checked"), "3");
    expect_verify_err(&msg, "checked");
    redecode(&w, &msg);
    m_hide(m_result(&msg), "damaged");
    expect_verify_err(&msg, "damaged");
    redecode(&w, &msg);
    m_set_nil(m_get(m_result(&msg), "damaged"));
    expect_verify_err(&msg, "damaged");
    redecode(&w, &msg);
    m_set_str(m_at(m_get(m_result(&msg), "damaged"), 1), "sic-d3.qtpc");
    expect_verify_err(&msg, "damaged[1]");
    redecode(&w, &msg);
    m_hide(m_at(m_get(m_result(&msg), "damaged"), 1), "name");
    expect_verify_err(&msg, "damaged[1]");
    redecode(&w, &msg);
    m_set_u64(m_get(m_at(m_get(m_result(&msg), "damaged"), 1), "name"), 5);
    expect_verify_err(&msg, "damaged[1]");
    qp_msg_done(&msg);
    qp_writer_done(&w);
}

/* cache.list entries and cache.verify damaged files: at most QP_MAX_CACHE_ENTRIES. */
static void test_cache_arrays_over_limit(void **state)
{
    const size_t n = QP_MAX_CACHE_ENTRIES + 1;
    struct qt_cache_entry *e = calloc(n, sizeof(*e));
    struct qp_damaged *dm = calloc(n, sizeof(*dm));
    struct qp_writer w;
    struct qp_msg msg;

    (void)state;
    assert_non_null(e);
    assert_non_null(dm);
    qp_writer_init(&w);
    assert_ok(qp_pack_cache_list_result(&w, 7, e, n, MAXF));
    decode_frame(&w, &msg);
    expect_cache_list_err(&msg, "entries");
    qp_msg_done(&msg);
    qp_writer_reset(&w);
    assert_ok(qp_pack_verify_result(&w, 10, n, dm, n, MAXF));
    decode_frame(&w, &msg);
    expect_verify_err(&msg, "damaged");
    qp_msg_done(&msg);
    qp_writer_done(&w);
    free(e);
    free(dm);
}


/* Error bars on the wire: the request's bootstrap map (and what is refused in it), the
 * worker-only boot_part, and uncertainty maps, scalar, vector and error forms. */
static void test_roundtrip_bootstrap(void **state)
{
    struct qp_job j;

    (void)state;
    make_reconstruct_job(&j);
    j.boot = (struct qt_boot_req){.resamples = 200,
                                  .kind = QT_RESAMPLE_PARAMETRIC,
                                  .has_seed = true,
                                  .seed = QT_BOOT_MAX_SEED,
                                  .confidence = 0.68,
                                  .shots = 5000};
    roundtrip_job(QP_M_RECONSTRUCT, &j, 3);
    j.boot = (struct qt_boot_req){.resamples = 2, .confidence = QT_BOOT_CONFIDENCE};
    roundtrip_job(QP_M_RECONSTRUCT, &j, 4);
    qp_job_done(&j);
}

/* Decodes {"bootstrap": <the msgpack of text>} built by pack(). */
static int decode_boot_of(void (*pack)(msgpack_packer *), struct qt_boot_req *b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone z;
    msgpack_object o;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack(&pk);
    msgpack_zone_init(&z, 1024);
    assert_int_equal(msgpack_unpack(sb.data, sb.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    r = qp_decode_boot_req(&o, b, &diag);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void boot_unknown_key(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
    qp_pack_key(pk, "resample");
    qp_pack_str(pk, "data");
}

static void boot_one(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 1);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 1);
}

static void boot_conf(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
    qp_pack_key(pk, "confidence");
    (void)msgpack_pack_double(pk, 1.0);
}

static void boot_kind(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
    qp_pack_key(pk, "kind");
    qp_pack_str(pk, "jackknife");
}

static void boot_seed(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
    qp_pack_key(pk, "seed");
    (void)msgpack_pack_uint64(pk, QT_BOOT_MAX_SEED + 1);
}

static void boot_twice(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 12);
}

static void boot_defaults(msgpack_packer *pk)
{
    (void)msgpack_pack_map(pk, 1);
    qp_pack_key(pk, "resamples");
    (void)msgpack_pack_uint32(pk, 10);
}

static void test_bootstrap_refusals(void **state)
{
    struct qt_boot_req b;

    (void)state;
    assert_int_equal(decode_boot_of(boot_unknown_key, &b), QT_EOPTION);
    assert_non_null(strstr(diag.msg, "\"resample\""));
    assert_int_equal(decode_boot_of(boot_one, &b), QT_EOPTION);
    assert_int_equal(decode_boot_of(boot_conf, &b), QT_EOPTION);
    assert_int_equal(decode_boot_of(boot_kind, &b), QT_EOPTION);
    assert_true(decode_boot_of(boot_seed, &b) < 0);
    assert_int_equal(decode_boot_of(boot_twice, &b), QT_EOPTION);
    assert_int_equal(decode_boot_of(boot_defaults, &b), 0);
    assert_int_equal(b.resamples, 10);
    assert_int_equal(b.kind, QT_RESAMPLE_DATA);
    assert_false(b.has_seed);
    assert_double_eq(b.confidence, QT_BOOT_CONFIDENCE);
    assert_true(b.shots == 0);
}

static void test_roundtrip_uncertainty(void **state)
{
    struct qt_uncertainty u = {0}, v = {0};
    struct qp_boot_part p = {true, 77, 40, 20}, q;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone z;
    msgpack_object o;

    (void)state;
    u.resamples = 100;
    u.kind = QT_RESAMPLE_PARAMETRIC;
    u.seed = 123456789;
    u.confidence = 0.9;
    u.shots = 1000;
    u.failed = 3;
    u.warn = QT_BOOT_WARN_BOUNDARY | QT_BOOT_WARN_FAILED;
    u.d = 2;
    u.have = (uint64_t)1 << QT_MT_PURITY | (uint64_t)1 << QT_MT_EIGENVALUES;
    u.stats[QT_MT_PURITY] = (struct qt_boot_stat){0.01, 0.9, 0.95};
    u.veig = calloc(2, sizeof(*u.veig));
    u.rho_std_re = calloc(4, sizeof(double));
    u.rho_std_im = calloc(4, sizeof(double));
    assert_true(u.veig && u.rho_std_re && u.rho_std_im);
    u.veig[0] = (struct qt_boot_stat){0.02, 0.8, 0.99};
    u.veig[1] = (struct qt_boot_stat){0.03, 0.01, 0.2};
    for (int i = 0; i < 4; i++) {
        u.rho_std_re[i] = 0.1 * (i + 1);
        u.rho_std_im[i] = i == 1 ? 0.05 : 0.0;
    }
    u.has_td_bound = true;
    u.td_bound = 0.0625;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    (void)msgpack_pack_array(&pk, 2);
    qp_pack_uncertainty(&pk, &u);
    (void)msgpack_pack_map(&pk, 1);
    qp_pack_boot_part(&pk, &p);
    msgpack_zone_init(&z, 4096);
    assert_int_equal(msgpack_unpack(sb.data, sb.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    assert_ok(qp_decode_uncertainty(&o.via.array.ptr[0], 2, &v, &diag));
    assert_int_equal(v.resamples, 100);
    assert_int_equal(v.kind, QT_RESAMPLE_PARAMETRIC);
    assert_true(v.seed == 123456789 && v.shots == 1000);
    assert_int_equal(v.failed, 3);
    assert_int_equal(v.warn, u.warn);
    assert_true(v.have == u.have);
    assert_memory_equal(&v.stats[QT_MT_PURITY], &u.stats[QT_MT_PURITY], sizeof(u.stats[0]));
    assert_memory_equal(v.veig, u.veig, 2 * sizeof(*u.veig));
    assert_memory_equal(v.rho_std_re, u.rho_std_re, 4 * sizeof(double));
    assert_memory_equal(v.rho_std_im, u.rho_std_im, 4 * sizeof(double));
    assert_true(v.has_td_bound);
    assert_double_eq(v.td_bound, 0.0625);
    /* the wrong dimension is refused, not read past */
    assert_int_equal(qp_decode_uncertainty(&o.via.array.ptr[0], 3, &v, &diag), QT_EPARSE);
    assert_ok(qp_decode_boot_part(qp_get(&o.via.array.ptr[1], "boot_part"), &q, &diag));
    assert_true(q.set && q.sample == 77 && q.k0 == 40 && q.n == 20);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);

    /* the error form */
    qt_uncertainty_done(&v);
    qt_boot_fail(&u, &(struct qt_boot_req){.resamples = 50, .confidence = 0.95}, 9, QT_ENOTCOUNTS,
                 "value 3 is not a count");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_uncertainty(&pk, &u);
    msgpack_zone_init(&z, 4096);
    assert_int_equal(msgpack_unpack(sb.data, sb.size, NULL, &z, &o), MSGPACK_UNPACK_SUCCESS);
    assert_ok(qp_decode_uncertainty(&o, 2, &v, &diag));
    assert_int_equal(v.err, QT_ENOTCOUNTS);
    assert_string_equal(v.errmsg, "value 3 is not a count");
    assert_null(v.rho_std_re);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&sb);
    qt_uncertainty_done(&u);
    qt_uncertainty_done(&v);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_roundtrip_bootstrap),
    cmocka_unit_test(test_bootstrap_refusals),
    cmocka_unit_test(test_roundtrip_uncertainty),
    cmocka_unit_test(test_golden_hello),
    cmocka_unit_test(test_golden_hello_result),
    cmocka_unit_test(test_golden_reconstruct),
    cmocka_unit_test(test_golden_submit),
    cmocka_unit_test(test_golden_result_notify),
    cmocka_unit_test(test_golden_reconstruct_result),
    cmocka_unit_test(test_golden_progress),
    cmocka_unit_test(test_golden_submit_result),
    cmocka_unit_test(test_golden_cancel),
    cmocka_unit_test(test_golden_status),
    cmocka_unit_test(test_golden_stats),
    cmocka_unit_test(test_golden_cache_list),
    cmocka_unit_test(test_golden_cache_warm),
    cmocka_unit_test(test_golden_cache_evict),
    cmocka_unit_test(test_golden_cache_verify),
    cmocka_unit_test(test_golden_reload),
    cmocka_unit_test(test_golden_error),
    cmocka_unit_test(test_golden_error_retry),
    cmocka_unit_test(test_golden_protocol_error),
    cmocka_unit_test(test_golden_bye),
    cmocka_unit_test(test_golden_error_totals),
    cmocka_unit_test(test_golden_cancel_result),
    cmocka_unit_test(test_golden_cache_warm_result),
    cmocka_unit_test(test_golden_cache_evict_result),
    cmocka_unit_test(test_golden_reload_result),
    cmocka_unit_test(test_golden_status_result),
    cmocka_unit_test(test_golden_stats_result),
    cmocka_unit_test(test_golden_design_put),
    cmocka_unit_test(test_golden_design_put_result),
    cmocka_unit_test(test_golden_cache_list_result),
    cmocka_unit_test(test_golden_cache_warm_items),
    cmocka_unit_test(test_golden_cache_verify_result),
    cmocka_unit_test(test_roundtrip_hello),
    cmocka_unit_test(test_roundtrip_hello_result),
    cmocka_unit_test(test_roundtrip_reconstruct),
    cmocka_unit_test(test_roundtrip_submit),
    cmocka_unit_test(test_pack_job_rejects),
    cmocka_unit_test(test_pack_job_target_without_d),
    cmocka_unit_test(test_roundtrip_results),
    cmocka_unit_test(test_roundtrip_result_spectral),
    cmocka_unit_test(test_roundtrip_result_error_kind),
    cmocka_unit_test(test_roundtrip_progress),
    cmocka_unit_test(test_worker_channel),
    cmocka_unit_test(test_roundtrip_totals),
    cmocka_unit_test(test_roundtrip_cancel),
    cmocka_unit_test(test_roundtrip_design_d),
    cmocka_unit_test(test_roundtrip_error_response),
    cmocka_unit_test(test_roundtrip_notifications),
    cmocka_unit_test(test_roundtrip_error_map),
    cmocka_unit_test(test_msg_status),
    cmocka_unit_test(test_roundtrip_u64_result),
    cmocka_unit_test(test_roundtrip_cancel_result),
    cmocka_unit_test(test_roundtrip_status),
    cmocka_unit_test(test_roundtrip_design_put),
    cmocka_unit_test(test_roundtrip_cache_list),
    cmocka_unit_test(test_roundtrip_cache_warm),
    cmocka_unit_test(test_roundtrip_verify),
    cmocka_unit_test(test_frame_header),
    cmocka_unit_test(test_prescan_bombs),
    cmocka_unit_test(test_prescan_truncated),
    cmocka_unit_test(test_prescan_trailing_and_reserved),
    cmocka_unit_test(test_prescan_depth),
    cmocka_unit_test(test_prescan_accepts_all_types),
    cmocka_unit_test(test_prescan_frames_in_sequence),
    cmocka_unit_test(test_msg_malformed_with_id),
    cmocka_unit_test(test_msg_unreadable),
    cmocka_unit_test(test_msg_decodes),
    cmocka_unit_test(test_job_rejections),
    cmocka_unit_test(test_empty_and_mistyped_values),
    cmocka_unit_test(test_frame_end_too_big),
    cmocka_unit_test(test_read_array_bounds),
    cmocka_unit_test(test_error_map_rejections),
    cmocka_unit_test(test_u64_and_cancel_result_rejections),
    cmocka_unit_test(test_status_rejections),
    cmocka_unit_test(test_design_put_rejections),
    cmocka_unit_test(test_detector_put),
    cmocka_unit_test(test_cache_list_rejections),
    cmocka_unit_test(test_cache_warm_rejections),
    cmocka_unit_test(test_design_d_max_dim),
    cmocka_unit_test(test_verify_rejections),
    cmocka_unit_test(test_cache_arrays_over_limit),
};

QT_TEST_MAIN(tests)

/* Request checking (daemon/qd_check.c): every client method's valid request is accepted, the
 * connection-state rules hold (hello first, admin, draining, in-flight limit, ids), relations
 * between fields are checked (values vs d vs design vs target vs design_id), and every semantic
 * mutation of every valid request is either accepted or refused with a code and a message. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "qd_check.h"
#include "qt_reqgen.h"
#include "qd_boot.h"
#include "qt_test.h"

static const struct qd_check_env env0 = {64,   1000, 4, false, qt_reqgen_find_custom,
                                         NULL, (uint64_t)2048 << 20};
static const struct qd_peer peer0 = {true, true, 0, qt_reqgen_id_busy, NULL};

/* Checks the one frame in w; returns qd_check's result with req freed. */
static int check_frame(const struct qd_check_env *env, const struct qd_peer *peer,
                       struct qp_writer *w, struct qd_req *keep, struct qd_reject *rej)
{
    struct qp_msg msg;
    struct qt_diag dg = {0};
    struct qd_req req;
    int r = qp_msg_decode((const uint8_t *)w->sb.data + QP_HEADER_LEN, w->sb.size - QP_HEADER_LEN,
                          &msg, &dg);

    if (r < 0) {
        qp_msg_done(&msg);
        return 1; /* refused by the envelope decoder: not the checker's */
    }
    r = qd_check(env, peer, &msg, &req, rej);
    if (r == 0 && keep) {
        keep->method = req.method;
        keep->job.d = req.job.d;
        keep->nm = req.nm;
        memcpy(keep->key, req.key, sizeof(keep->key));
    }
    if (r == 0)
        qd_req_done(&req);
    else
        assert_true(rej->msg[0] != '\0');
    qp_msg_done(&msg);
    return r;
}

static int check_valid(enum qp_method m, const struct qd_check_env *env, const struct qd_peer *peer,
                       struct qd_reject *rej)
{
    struct qp_writer w;
    int r;

    qp_writer_init(&w);
    assert_int_equal(qt_reqgen_valid(m, &w), 0);
    r = check_frame(env, peer, &w, NULL, rej);
    qp_writer_done(&w);
    return r;
}

static void test_every_method_valid(void **state)
{
    struct qd_reject rej;
    struct qd_peer fresh = peer0;

    (void)state;
    fresh.hello_done = false;
    assert_int_equal(check_valid(QP_M_HELLO, &env0, &fresh, &rej), 0);
    for (int m = 0; m < _QP_M_MAX; m++) {
        if (qp_methods[m].dir != QP_C2S_REQUEST || m == QP_M_HELLO)
            continue;
        if (check_valid((enum qp_method)m, &env0, &peer0, &rej) != 0)
            fail_msg("%s refused: %s", qp_methods[m].name, rej.msg);
    }
}

static void test_connection_state(void **state)
{
    struct qd_reject rej;
    struct qd_peer p = peer0;
    struct qd_check_env e = env0;

    (void)state;
    assert_int_equal(check_valid(QP_M_HELLO, &e, &p, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_INVALID_REQUEST); /* hello twice */
    p.hello_done = false;
    assert_int_equal(check_valid(QP_M_STATUS, &e, &p, &rej), -EINVAL);
    assert_string_equal(rej.msg, "hello must come first");
    p = peer0;
    p.admin = false;
    assert_int_equal(check_valid(QP_M_CACHE_EVICT, &e, &p, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_PERMISSION_DENIED);
    assert_int_equal(check_valid(QP_M_RELOAD, &e, &p, &rej), -EINVAL);
    assert_int_equal(check_valid(QP_M_CACHE_LIST, &e, &p, &rej), 0);
    p = peer0;
    p.inflight = 4;
    assert_int_equal(check_valid(QP_M_SUBMIT, &e, &p, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_BUSY);
    assert_true(rej.retry_ms > 0);
    assert_int_equal(check_valid(QP_M_STATUS, &e, &p, &rej), 0);
    e.draining = true;
    p = peer0;
    assert_int_equal(check_valid(QP_M_RECONSTRUCT, &e, &p, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_SHUTTING_DOWN);
    assert_int_equal(check_valid(QP_M_STATS, &e, &p, &rej), 0);
    assert_int_equal(check_valid(QP_M_CANCEL, &e, &p, &rej), 0);
}

static void test_unsupported_major_closes(void **state)
{
    struct qp_writer w;
    struct qd_reject rej;
    struct qd_peer p = peer0;

    (void)state;
    p.hello_done = false;
    qp_writer_init(&w);
    qp_begin_request(&w, 1, QP_M_HELLO);
    (void)msgpack_pack_map(&w.pk, 1);
    qp_pack_key(&w.pk, "proto");
    (void)msgpack_pack_array(&w.pk, 2);
    (void)msgpack_pack_uint32(&w.pk, 2);
    (void)msgpack_pack_uint32(&w.pk, 0);
    assert_int_equal(qp_frame_end(&w, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &p, &w, NULL, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_UNSUPPORTED_PROTOCOL);
    assert_true(rej.close);
    qp_writer_done(&w);
}

/* A reconstruct of 16 nopovm values (d = 4 inferred) with a k x k target and optional d. */
static int reconstruct_with_target(size_t k, size_t d, struct qd_reject *rej)
{
    double values[16], target[2 * 64] = {0};
    struct qp_writer w;
    int r;

    for (int i = 0; i < 16; i++)
        values[i] = 1.0 / 16;
    target[0] = 1.0;
    qp_writer_init(&w);
    qp_begin_request(&w, 5, QP_M_RECONSTRUCT);
    (void)msgpack_pack_map(&w.pk, 4u + (d != 0));
    qp_pack_key(&w.pk, "values");
    qp_pack_f64m(&w.pk, values, 16, 1);
    qp_pack_key(&w.pk, "design");
    qp_pack_str(&w.pk, "nopovm");
    qp_pack_key(&w.pk, "methods");
    (void)msgpack_pack_array(&w.pk, 1);
    qp_pack_str(&w.pk, "linear");
    qp_pack_key(&w.pk, "target");
    qp_pack_c128m(&w.pk, (const double complex *)target, k, k);
    if (d) {
        qp_pack_key(&w.pk, "d");
        (void)msgpack_pack_uint64(&w.pk, d);
    }
    assert_int_equal(qp_frame_end(&w, UINT32_MAX), 0);
    r = check_frame(&env0, &peer0, &w, NULL, rej);
    qp_writer_done(&w);
    return r;
}

static void test_target_must_match_the_resolved_d(void **state)
{
    struct qd_reject rej;

    (void)state;
    assert_int_equal(reconstruct_with_target(4, 0, &rej), 0);
    assert_int_equal(reconstruct_with_target(2, 0, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_INVALID_PARAMS);
    assert_non_null(strstr(rej.msg, "2 x 2"));
    assert_non_null(strstr(rej.msg, "d = 4"));
    assert_int_equal(reconstruct_with_target(8, 0, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "8 x 8"));
    assert_int_equal(reconstruct_with_target(2, 4, &rej), -EINVAL); /* the decoder's check */
    assert_int_equal(rej.code, QT_ST_INVALID_PARAMS);
}

/* A job request from a qp_job with the given design fields. */
static int job_request(enum qp_method m, const char *design, const char *design_id, size_t d,
                       size_t rows, struct qd_req *keep, struct qd_reject *rej)
{
    double v[64];
    struct qp_job j;
    struct qp_writer w;
    int r;

    for (size_t i = 0; i < rows; i++)
        v[i] = 1.0;
    qp_job_init(&j);
    j.values = v;
    j.m = rows;
    j.n = 1;
    j.d = d;
    snprintf(j.design, sizeof(j.design), "%s", design);
    snprintf(j.design_id, sizeof(j.design_id), "%s", design_id);
    j.methods[QT_METHOD_LINEAR] = true;
    qp_writer_init(&w);
    assert_int_equal(qp_pack_job(&w, 9, m, &j, UINT32_MAX), 0);
    r = check_frame(&env0, &peer0, &w, keep, rej);
    qp_writer_done(&w);
    j.values = NULL;
    qp_job_done(&j);
    return r;
}

static void test_design_relations(void **state)
{
    struct qd_reject rej;
    struct qd_req req;

    (void)state;
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "nopovm", "", 0, 16, &req, &rej), 0);
    assert_int_equal(req.job.d, 4);
    assert_string_equal(req.key, "nopovm-d4");
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "mub", "", 0, 12, &req, &rej), 0);
    assert_int_equal(req.job.d, 3);
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "nopovm", "", 5, 16, &req, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "d = 4"));
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "nopovm", "", 0, 15, &req, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_INVALID_PARAMS);
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "bogus", "", 0, 16, &req, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "design"));
    assert_int_equal(job_request(QP_M_RECONSTRUCT, "nopovm", "c0ffee", 0, 16, &req, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "design_id"));
    assert_int_equal(job_request(QP_M_SUBMIT, "custom", "", 0, 4, &req, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "design_id"));
    assert_int_equal(job_request(QP_M_SUBMIT, "custom", "c0ffee", 0, 4, &req, &rej), 0);
    assert_int_equal(req.job.d, 2);
    assert_string_equal(req.key, "c0ffee-d2");
    assert_int_equal(job_request(QP_M_SUBMIT, "custom", "c0ffee", 3, 4, &req, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_NOT_FOUND);
    assert_int_equal(job_request(QP_M_SUBMIT, "custom", "beef", 0, 4, &req, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_NOT_FOUND);
}

static void test_max_dim(void **state)
{
    struct qd_reject rej;
    struct qd_check_env e = env0;
    struct qp_writer w;
    double v[81];

    (void)state;
    e.max_dim = 8;
    for (int i = 0; i < 81; i++)
        v[i] = 1.0;
    qp_writer_init(&w);
    qp_begin_request(&w, 5, QP_M_RECONSTRUCT);
    (void)msgpack_pack_map(&w.pk, 3);
    qp_pack_key(&w.pk, "values");
    qp_pack_f64m(&w.pk, v, 81, 1);
    qp_pack_key(&w.pk, "design");
    qp_pack_str(&w.pk, "nopovm");
    qp_pack_key(&w.pk, "methods");
    (void)msgpack_pack_array(&w.pk, 1);
    qp_pack_str(&w.pk, "linear");
    assert_int_equal(qp_frame_end(&w, UINT32_MAX), 0);
    assert_int_equal(check_frame(&e, &peer0, &w, NULL, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_TOO_LARGE);
    assert_non_null(strstr(rej.msg, "max-dim"));
    qp_writer_done(&w);
}

/* A sample predicted to need more memory than a worker may hold is refused before it is
 * queued, with the prediction and the limit in the message; below the limit it is accepted. */
static void test_sample_memory(void **state)
{
    size_t m = 46656; /* pauli, 6 qubits */
    double *v = malloc(m * sizeof(double));
    bool lin_mle[_QT_METHOD_MAX] = {[QT_METHOD_LINEAR] = true, [QT_METHOD_MLE] = true};
    uint64_t need = qd_check_sample_bytes(64, m, lin_mle);
    struct qd_check_env e = env0;
    struct qd_reject rej;
    struct qp_writer w;

    (void)state;
    assert_non_null(v);
    for (size_t i = 0; i < m; i++)
        v[i] = 1.0;
    /* 64 MiB + 3 * 8m + 1.5 * (20 * 8m + 50 * 16 * 64^2 + 1 MiB) + 2 * 4 * 16 * 64^2 */
    assert_true(need == 86438400u);
    qp_writer_init(&w);
    qp_begin_request(&w, 5, QP_M_SUBMIT);
    (void)msgpack_pack_map(&w.pk, 3);
    qp_pack_key(&w.pk, "values");
    qp_pack_f64m(&w.pk, v, m, 1);
    qp_pack_key(&w.pk, "design");
    qp_pack_str(&w.pk, "pauli");
    qp_pack_key(&w.pk, "methods");
    (void)msgpack_pack_array(&w.pk, 2);
    qp_pack_str(&w.pk, "linear");
    qp_pack_str(&w.pk, "mle");
    assert_int_equal(qp_frame_end(&w, UINT32_MAX), 0);
    e.max_sample_bytes = need - 1;
    assert_int_equal(check_frame(&e, &peer0, &w, NULL, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_TOO_LARGE);
    assert_non_null(strstr(rej.msg, "predicted to need 83 MB"));
    assert_non_null(strstr(rej.msg, "max-sample-mb"));
    e.max_sample_bytes = need;
    assert_int_equal(check_frame(&e, &peer0, &w, NULL, &rej), 0);
    e.max_sample_bytes = 0; /* no limit */
    assert_int_equal(check_frame(&e, &peer0, &w, NULL, &rej), 0);
    qp_writer_done(&w);
    free(v);
    /* 9 qubits, linear and mle: 2,935 MB, what bench_qubits.py compares with the worker's peak */
    assert_true(qd_check_sample_bytes(512, 10077696, lin_mle) > ((uint64_t)2048 << 20));
}

static void test_cache_params(void **state)
{
    struct qp_writer w;
    struct qd_reject rej;
    struct qp_design_d bad[1] = {{"custom", 2}};

    (void)state;
    qp_writer_init(&w);
    assert_int_equal(qp_pack_cache_warm(&w, 3, bad, 1, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "built-in"));
    qp_writer_reset(&w);
    assert_int_equal(qp_pack_simple(&w, 3, QP_M_CACHE_EVICT, "nopovm", 0, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), -EINVAL);
    qp_writer_reset(&w);
    assert_int_equal(qp_pack_simple(&w, 3, QP_M_CACHE_VERIFY, "nopovm", 0, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "both or neither"));
    qp_writer_reset(&w);
    assert_int_equal(qp_pack_simple(&w, 3, QP_M_CACHE_VERIFY, "nopovm", 4, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), 0);
    qp_writer_done(&w);
}

static void test_busy_id_and_unknown_method(void **state)
{
    struct qp_writer w;
    struct qd_reject rej;

    (void)state;
    qp_writer_init(&w);
    assert_int_equal(qp_pack_simple(&w, 99, QP_M_STATUS, NULL, 0, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "already in flight"));
    qp_writer_reset(&w);
    qp_begin_request(&w, 4, QP_M_RESULT); /* a notification's name as a request */
    (void)msgpack_pack_map(&w.pk, 0);
    assert_int_equal(qp_frame_end(&w, UINT32_MAX), 0);
    assert_int_equal(check_frame(&env0, &peer0, &w, NULL, &rej), -EINVAL);
    assert_int_equal(rej.code, QT_ST_METHOD_NOT_FOUND);
    qp_writer_done(&w);
}

static void test_duplicate_keys(void **state)
{
    struct qp_writer w, m;
    struct qd_reject rej;
    const uint8_t ops[] = {0xe0, 10}; /* entry 0 again, with another value */

    (void)state;
    qp_writer_init(&w);
    qp_writer_init(&m);
    assert_int_equal(qt_reqgen_valid(QP_M_RECONSTRUCT, &w), 0);
    assert_int_equal(qt_reqgen_mutate((const uint8_t *)w.sb.data + QP_HEADER_LEN,
                                      w.sb.size - QP_HEADER_LEN, ops, sizeof(ops), &m),
                     0);
    assert_int_equal(check_frame(&env0, &peer0, &m, NULL, &rej), -EINVAL);
    assert_non_null(strstr(rej.msg, "given twice"));
    qp_writer_done(&w);
    qp_writer_done(&m);
}

/* Every key of every valid request replaced by every variant, removed, duplicated: the checker
 * answers each (accepted, or refused with a public code and a message). */
static void test_mutation_sweep(void **state)
{
    size_t accepted = 0, refused = 0;

    (void)state;
    for (int m = 0; m < _QP_M_MAX; m++) {
        struct qp_writer w;

        if (qp_methods[m].dir != QP_C2S_REQUEST)
            continue;
        qp_writer_init(&w);
        assert_int_equal(qt_reqgen_valid((enum qp_method)m, &w), 0);
        for (unsigned e = 0; e < 256; e += (e < 16 ? 1 : 0x10)) {
            for (unsigned v = 0; v < QT_REQGEN_VARIANTS; v++) {
                struct qp_writer out;
                struct qd_reject rej;
                struct qd_peer p = peer0;
                uint8_t ops[2] = {(uint8_t)e, (uint8_t)v};
                int r;

                p.hello_done = m != QP_M_HELLO;
                qp_writer_init(&out);
                assert_int_equal(qt_reqgen_mutate((const uint8_t *)w.sb.data + QP_HEADER_LEN,
                                                  w.sb.size - QP_HEADER_LEN, ops, 2, &out),
                                 0);
                r = check_frame(&env0, &p, &out, NULL, &rej);
                if (r == 0)
                    accepted++;
                else if (r < 0) {
                    refused++;
                    assert_true(rej.code <= -32000 && rej.code >= -32800);
                }
                qp_writer_done(&out);
            }
        }
        qp_writer_done(&w);
    }
    assert_true(accepted > 0);
    assert_true(refused > 1000);
}


/* A mub d = 4 job (20 values) with error bars, values from v, boot and part as given. */
static int boot_request(enum qp_method m, const double *v, size_t n, const struct qt_boot_req *b,
                        const struct qp_boot_part *part, size_t first_index,
                        struct qd_reject *rej)
{
    struct qp_job j;
    struct qp_writer w;
    msgpack_sbuffer fields;
    msgpack_packer fpk;
    size_t nf;
    int r;

    qp_job_init(&j);
    j.values = (double *)(uintptr_t)v;
    j.m = 20;
    j.n = n;
    j.d = 4;
    j.first_index = first_index;
    snprintf(j.design, sizeof(j.design), "mub");
    j.methods[QT_METHOD_LINEAR] = j.methods[QT_METHOD_MLE] = true;
    j.boot = *b;
    qp_writer_init(&w);
    if (!part) {
        assert_int_equal(qp_pack_job(&w, 9, m, &j, UINT32_MAX), 0);
    } else { /* a worker item sent by a client */
        msgpack_sbuffer_init(&fields);
        msgpack_packer_init(&fpk, &fields, msgpack_sbuffer_write);
        nf = qp_pack_job_fields(&fpk, &j);
        assert_int_equal(qp_pack_chunk(&w, 9, v, 20, n, 0, fields.data, fields.size, nf, part,
                                       UINT32_MAX),
                         0);
        msgpack_sbuffer_destroy(&fields);
    }
    r = check_frame(&env0, &peer0, &w, NULL, rej);
    qp_writer_done(&w);
    j.values = NULL;
    qp_job_done(&j);
    return r;
}

/* Error bars: counts without shots, rows that fit, no worker-only keys, first_index on a
 * reconstruct with error bars (it names the resample streams). */
static void test_bootstrap(void **state)
{
    struct qt_boot_req b = {.resamples = 100, .confidence = 0.95};
    struct qp_boot_part part = {true, 0, 0, 10};
    struct qd_reject rej;
    double v[40];

    (void)state;
    for (int i = 0; i < 40; i++)
        v[i] = 100 + i;
    assert_int_equal(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej), 0);
    assert_int_equal(boot_request(QP_M_RECONSTRUCT, v, 1, &b, NULL, 7, &rej), 0);
    v[23] = 0.25;
    assert_true(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej) < 0);
    assert_int_equal(rej.code, QT_ST_INVALID_PARAMS);
    assert_non_null(strstr(rej.msg, "values[3, 1] = 0.25 is not a count"));
    assert_non_null(strstr(rej.msg, "shots"));
    b.shots = 1000; /* powers with shots are fine */
    assert_int_equal(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej), 0);
    v[24] = -0.5; /* not with a negative value */
    assert_true(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej) < 0);
    assert_non_null(strstr(rej.msg, "non-negative"));
    v[24] = 124;
    for (int i = 20; i < 40; i++) /* an empty column fails as a sample, not the request */
        v[i] = NAN;
    b.shots = 0;
    assert_int_equal(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej), 0);
    for (int i = 20; i < 40; i++)
        v[i] = 100 + i;
    /* the samples' indexes (first_index + column) key their streams: no overflow */
    assert_true(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, SIZE_MAX / 2, &rej) < 0);
    assert_non_null(strstr(rej.msg, "first_index"));
    { /* a plain submit too: its results carry first_index + column (was accepted, and the
         last result's index came out as 2^63) */
        struct qt_boot_req none = {0};

        assert_true(boot_request(QP_M_SUBMIT, v, 2, &none, NULL, SIZE_MAX / 2, &rej) < 0);
        assert_int_equal(rej.code, QT_ST_INVALID_PARAMS);
        assert_non_null(strstr(rej.msg, "first_index: "));
        /* the last index may be 2^63 - 1 itself */
        assert_int_equal(boot_request(QP_M_SUBMIT, v, 2, &none, NULL, SIZE_MAX / 2 - 1, &rej), 0);
    }
    b.shots = 1000;
    v[23] = -1.0; /* a negative count is not resampled either */
    b.shots = 0;
    assert_true(boot_request(QP_M_SUBMIT, v, 2, &b, NULL, 0, &rej) < 0);
    v[23] = 123;
    b.resamples = 100000; /* 100000 rows of 2 methods at d = 4: fits under 64 MB? */
    {
        uint32_t per, parts;
        int fits = qd_boot_plan(100000, 2, 4, 1, &per, &parts);

        assert_int_equal(boot_request(QP_M_SUBMIT, v, 1, &b, NULL, 0, &rej) < 0, fits < 0);
        if (fits < 0)
            assert_non_null(strstr(rej.msg, "ask for fewer resamples"));
    }
    b.resamples = 100;
    assert_true(boot_request(QP_M_SUBMIT, v, 1, &b, &part, 0, &rej) < 0);
    assert_non_null(strstr(rej.msg, "boot_part"));
    /* 1000 samples x 40000 resamples: rows of a sample fit, but too many work items */
    {
        static double many[20 * 1000];

        for (size_t i = 0; i < 20 * 1000; i++)
            many[i] = 10;
        b.resamples = 40000;
        b.shots = 0;
        assert_true(boot_request(QP_M_SUBMIT, many, 1000, &b, NULL, 0, &rej) < 0);
        assert_non_null(strstr(rej.msg, "split the batch"));
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bootstrap),
    cmocka_unit_test(test_every_method_valid),
    cmocka_unit_test(test_connection_state),
    cmocka_unit_test(test_unsupported_major_closes),
    cmocka_unit_test(test_target_must_match_the_resolved_d),
    cmocka_unit_test(test_design_relations),
    cmocka_unit_test(test_max_dim),
    cmocka_unit_test(test_sample_memory),
    cmocka_unit_test(test_cache_params),
    cmocka_unit_test(test_busy_id_and_unknown_method),
    cmocka_unit_test(test_duplicate_keys),
    cmocka_unit_test(test_mutation_sweep),
};

QT_TEST_MAIN(tests)

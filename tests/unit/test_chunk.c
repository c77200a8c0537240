/* The chunk estimator (qt_chunk_estimate): the same records as one qt_estimate call per sample
 * and method, every sample once and in order, a callback that can stop it, and its own errors
 * before any callback. */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_chunk.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qt_test.h"

#define N_SAMPLES 6

/* n samples of random states (rank 1 to d) as counts, with sample 3 holding a NaN. */
static double *make_samples(const struct qt_design *des, struct qt_ws *ws, uint64_t seed, size_t n)
{
    double *Y = malloc(des->m * n * sizeof(double));
    double complex *rho = malloc(des->d * des->d * sizeof(double complex));
    struct qt_rng rng;

    assert_non_null(Y);
    assert_non_null(rho);
    qt_rng_seed(&rng, seed);
    for (size_t s = 0; s < n; s++) {
        qt_rng_state(&rng, des->d, 1 + s % des->d, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, ws, rho, 400, Y + des->m * s), 0);
    }
    if (n > 3)
        Y[des->m * 3 + 1] = NAN;
    free(rho);
    return Y;
}

/* What the callbacks saw. */
struct seen {
    const struct qt_design *des;
    const double *Y;
    const struct qt_opts *opts;
    const enum qt_method *methods;
    size_t n_methods;
    size_t calls, next;
    int stop_at; /* return an error at this index; -1: never */
    double min_us;
    struct qt_ws ws; /* for the reference estimates */
    struct qt_result one;
};

static void check_one(struct seen *sn, size_t i, const struct qt_result *got, enum qt_method m)
{
    const double *y = sn->Y + sn->des->m * i;
    int r = qt_estimate(sn->des, &sn->ws, m, y, sn->des->m, sn->opts, &sn->one);

    assert_int_equal(got->method, m);
    assert_int_equal(got->d, sn->des->d);
    assert_int_equal(got->err, r);
    if (r < 0) {
        assert_string_equal(got->errmsg, sn->one.errmsg);
        return;
    }
    /* The iterative methods start from the batch's linear estimate instead of their own, which
     * may differ in the last bits (one GEMM against one GEMV): observed differences are ~1e-15. */
    double tol = m == QT_METHOD_LINEAR ? 1e-12 : 1e-9;

    assert_true(qt_frob_diff(sn->des->d, got->rho, sn->one.rho) < tol);
    qt_assert_close(got->mt.purity, sn->one.mt.purity, 0, tol);
    qt_assert_close(got->mt.trace, sn->one.mt.trace, 0, 1e-12);
    assert_int_equal(got->warnings & ~(unsigned)QT_WARN_NOT_CONVERGED,
                     sn->one.warnings & ~(unsigned)QT_WARN_NOT_CONVERGED);
}

static int on_sample(size_t i, const struct qt_result *const *res, size_t n_res, double us,
                     void *userdata)
{
    struct seen *sn = userdata;

    assert_int_equal(i, sn->next);
    sn->next++;
    sn->calls++;
    assert_int_equal(n_res, sn->n_methods);
    assert_true(isfinite(us));
    if (us < sn->min_us)
        sn->min_us = us;
    for (size_t k = 0; k < n_res; k++)
        check_one(sn, i, res[k], sn->methods[k]);
    return (int)i == sn->stop_at ? -EPIPE : 0;
}

static void seen_init(struct seen *sn, const struct qt_design *des, const double *Y,
                      const struct qt_opts *opts, const enum qt_method *methods, size_t nm)
{
    memset(sn, 0, sizeof(*sn));
    sn->des = des;
    sn->Y = Y;
    sn->opts = opts;
    sn->methods = methods;
    sn->n_methods = nm;
    sn->stop_at = -1;
    sn->min_us = INFINITY;
    assert_int_equal(qt_result_init(&sn->one, des->d), 0);
}

static void seen_done(struct seen *sn)
{
    qt_result_done(&sn->one);
    qt_ws_done(&sn->ws);
}

/* Runs a chunk of design (kind, d) with the given methods; checks every record. */
static void run_design(enum qt_design_kind kind, size_t d, const enum qt_method *methods, size_t nm,
                       uint64_t seed)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_opts opts;
    struct seen sn;

    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    double *Y = make_samples(des, &ws, seed, N_SAMPLES);

    seen_init(&sn, des, Y, &opts, methods, nm);
    assert_int_equal(
        qt_chunk_estimate(des, &ws, Y, des->m, N_SAMPLES, &opts, methods, nm, on_sample, &sn), 0);
    assert_int_equal(sn.calls, N_SAMPLES);
    assert_true(sn.min_us >= 0.0);
    seen_done(&sn);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Every method, in an order that is not the enum's, on four designs; sample 3 fails. */
static void test_matches_per_sample(void **state)
{
    static const enum qt_method all[] = {QT_METHOD_WLS, QT_METHOD_LINEAR, QT_METHOD_RHOR,
                                         QT_METHOD_MLE};

    static const enum qt_method iter[] = {QT_METHOD_MLE, QT_METHOD_RHOR};

    (void)state;
    run_design(QT_DESIGN_NOPOVM, 2, all, 4, 1);
    run_design(QT_DESIGN_SIC, 2, all, 4, 2);
    run_design(QT_DESIGN_MUB, 3, all, 4, 3);
    run_design(QT_DESIGN_PAULI, 4, all, 4, 4);
    /* Iterative methods alone still start from the batch's linear estimates. */
    run_design(QT_DESIGN_MUB, 4, iter, 2, 5);
}

/* Linear alone: the batch's records, indices 0..n-1 once each and in order, times >= 0. */
static void test_indices_in_order(void **state)
{
    static const enum qt_method lin[] = {QT_METHOD_LINEAR};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_opts opts;
    struct seen sn;
    size_t n = 64;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 5, &des, NULL), 0);
    double *Y = make_samples(des, &ws, 7, n);

    seen_init(&sn, des, Y, &opts, lin, 1);
    assert_int_equal(qt_chunk_estimate(des, &ws, Y, des->m, n, &opts, lin, 1, on_sample, &sn), 0);
    assert_int_equal(sn.calls, n);
    assert_int_equal(sn.next, n);
    assert_true(sn.min_us >= 0.0);
    seen_done(&sn);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* A callback's error stops the chunk at once and comes back unchanged. */
static void test_callback_error_stops(void **state)
{
    static const enum qt_method meth[] = {QT_METHOD_LINEAR, QT_METHOD_MLE};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_opts opts;
    struct seen sn;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 2, &des, NULL), 0);
    double *Y = make_samples(des, &ws, 11, N_SAMPLES);

    seen_init(&sn, des, Y, &opts, meth, 2);
    sn.stop_at = 2;
    assert_int_equal(
        qt_chunk_estimate(des, &ws, Y, des->m, N_SAMPLES, &opts, meth, 2, on_sample, &sn), -EPIPE);
    assert_int_equal(sn.calls, 3);
    seen_done(&sn);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* The function's own errors (a sample length that is not the design's) come before any
 * callback; an empty chunk calls nothing. */
static void test_own_errors_first(void **state)
{
    static const enum qt_method meth[] = {QT_METHOD_LINEAR, QT_METHOD_WLS};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_opts opts;
    struct seen sn;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 2, &des, NULL), 0);
    double *Y = make_samples(des, &ws, 13, 2);

    seen_init(&sn, des, Y, &opts, meth, 2);
    assert_int_equal(qt_chunk_estimate(des, &ws, Y, des->m - 1, 2, &opts, meth, 2, on_sample, &sn),
                     QT_ESAMPLELEN);
    assert_int_equal(qt_chunk_estimate(des, &ws, Y, des->m, 0, &opts, meth, 2, on_sample, &sn), 0);
    assert_int_equal(sn.calls, 0);
    seen_done(&sn);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* What a part saw: each sample's rho bits and iterations, by index. */
struct bits {
    size_t n, d, calls, first, last;
    double complex *rho; /* n x 2 methods of d x d */
    int64_t *iters;
};

static int keep_bits(size_t i, const struct qt_result *const *res, size_t n_res, double us,
                     void *userdata)
{
    struct bits *b = userdata;

    (void)us;
    assert_true(i < b->n);
    assert_int_equal(n_res, 2);
    if (b->calls++ == 0)
        b->first = i;
    b->last = i;
    for (size_t k = 0; k < n_res; k++) {
        assert_int_equal(res[k]->err, 0);
        memcpy(b->rho + (i * 2 + k) * b->d * b->d, res[k]->rho,
               b->d * b->d * sizeof(double complex));
        b->iters[i * 2 + k] = res[k]->mt.n_iterations;
    }
    return 0;
}

/* qt_chunk_estimate_part: samples [lo, hi) of a chunk get the very bits they get in the whole
 * chunk (the linear batch runs over every column: qtomo-mpi's split chunks depend on it), the
 * callback sees lo..hi-1 only, and bad ranges are refused before any callback. */
static void test_part_same_bits(void **state)
{
    static const enum qt_method meth[] = {QT_METHOD_LINEAR, QT_METHOD_MLE};

    static const size_t cuts[][2] = {{0, 5}, {5, 17}, {17, 63}, {63, 64}, {0, 64}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_opts opts;
    size_t n = 64;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 5, &des, NULL), 0);
    double *Y = make_samples(des, &ws, 17, n);
    Y[des->m * 3 + 1] = 7.0; /* make_samples put a NaN there: every sample succeeds here */
    size_t sz = n * 2 * des->d * des->d;
    struct bits whole = {
        n, des->d, 0, 0, 0, calloc(sz, sizeof(double complex)), calloc(n * 2, sizeof(int64_t))};
    struct bits part = {
        n, des->d, 0, 0, 0, calloc(sz, sizeof(double complex)), calloc(n * 2, sizeof(int64_t))};

    assert_non_null(whole.rho);
    assert_non_null(part.rho);
    assert_int_equal(qt_chunk_estimate(des, &ws, Y, des->m, n, &opts, meth, 2, keep_bits, &whole),
                     0);
    assert_int_equal(whole.calls, n);
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        size_t lo = cuts[c][0], hi = cuts[c][1], blk = 2 * des->d * des->d;

        part.calls = 0;
        assert_int_equal(qt_chunk_estimate_part(des, &ws, Y, des->m, n, lo, hi, &opts, meth, 2,
                                                keep_bits, &part),
                         0);
        assert_int_equal(part.calls, hi - lo);
        assert_int_equal(part.first, lo);
        assert_int_equal(part.last, hi - 1);
        /* identical bits are the requirement here, not closeness */
        assert_memory_equal(part.rho + lo * blk, whole.rho + lo * blk,
                            (hi - lo) * blk * sizeof(double complex));
        assert_memory_equal(part.iters + 2 * lo, whole.iters + 2 * lo,
                            (hi - lo) * 2 * sizeof(int64_t));
    }
    part.calls = 0;
    assert_int_equal(
        qt_chunk_estimate_part(des, &ws, Y, des->m, n, 9, 9, &opts, meth, 2, keep_bits, &part), 0);
    assert_int_equal(
        qt_chunk_estimate_part(des, &ws, Y, des->m, n, 10, 9, &opts, meth, 2, keep_bits, &part),
        -EINVAL);
    assert_int_equal(
        qt_chunk_estimate_part(des, &ws, Y, des->m, n, 0, n + 1, &opts, meth, 2, keep_bits, &part),
        -EINVAL);
    assert_int_equal(part.calls, 0);
    free(whole.rho);
    free(whole.iters);
    free(part.rho);
    free(part.iters);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_matches_per_sample),   cmocka_unit_test(test_indices_in_order),
    cmocka_unit_test(test_callback_error_stops), cmocka_unit_test(test_own_errors_first),
    cmocka_unit_test(test_part_same_bits),
};

QT_TEST_MAIN(tests)

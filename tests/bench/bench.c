/* qtomo-bench: performance measurements reported in the README and issue notes (not a test).
 * `qtomo-bench linear` times linear inversion with physicalisation per sample, single and
 * batched, for nopovm, mub and pauli at d = 2..32; `qtomo-bench mle` times certified maximum
 * likelihood at d = 2..64 and pauli 1..8 qubits; `qtomo-bench maps` times the kernels of one
 * Hessian-vector product at pauli 5..8 qubits. All print the OpenBLAS kernels in effect. */
#include <complex.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_lapack.h"
#include "num/qt_rng.h"
#include "num/qt_whiten.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct linear_case {
    enum qt_design_kind kind;
    size_t d;
};

/* Per-sample seconds: median over `reps` passes of (single loop, batched) over n samples. */
static void time_linear(const struct qt_design *des, size_t n, const double *Y,
                        const struct qt_opts *opts, int reps, double *ret_single, double *ret_batch)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result *res = calloc(n, sizeof(*res));
    double ts[16], tb[16];
    const size_t chunk = 256;

    for (size_t i = 0; i < n; i++)
        if (qt_result_init(&res[i], des->d) < 0)
            abort();
    for (int r = 0; r < reps; r++) {
        double t0 = qt_bench_now();
        size_t failed = 0;

        for (size_t i = 0; i < n; i++)
            failed +=
                qt_estimate(des, &ws, QT_METHOD_LINEAR, Y + des->m * i, des->m, opts, &res[i]) < 0;
        if (failed)
            fprintf(stderr, "bench: %zu samples failed\n", failed);
        double t1 = qt_bench_now();
        for (size_t i = 0; i < n; i += chunk)
            if (qt_estimate_linear_batch(des, &ws, n - i < chunk ? n - i : chunk, Y + des->m * i,
                                         des->m, opts, res + i) < 0)
                abort();
        double t2 = qt_bench_now();
        ts[r] = (t1 - t0) / (double)n;
        tb[r] = (t2 - t1) / (double)n;
    }
    qsort(ts, (size_t)reps, sizeof(double), cmp_double);
    qsort(tb, (size_t)reps, sizeof(double), cmp_double);
    *ret_single = ts[reps / 2];
    *ret_batch = tb[reps / 2];
    for (size_t i = 0; i < n; i++)
        qt_result_done(&res[i]);
    free(res);
    qt_ws_done(&ws);
}

static const char *fmt_time(double s, char *buf, size_t len)
{
    if (s < 1e-3)
        (void)snprintf(buf, len, "%.2f us", s * 1e6);
    else if (s < 1.0)
        (void)snprintf(buf, len, "%.3f ms", s * 1e3);
    else
        (void)snprintf(buf, len, "%.3f s", s);
    return buf;
}

static int bench_linear(void)
{
    static const enum qt_design_kind kinds[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_PAULI};

    static const size_t dims[] = {2, 4, 8, 16, 32};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    qt_rng_seed(&rng, 42);
    printf("linear inversion + physicalisation (clip), per sample; samples: random states of "
           "rank 1, 2 and d with 1000 counts per group\n");
    printf("%-7s %4s %7s | %-12s %-12s %6s | %-12s %-12s %6s\n", "design", "d", "samples", "single",
           "batched", "ratio", "single+all", "batched+all", "ratio");
    for (size_t k = 0; k < QT_ARRAY_SIZE(kinds); k++)
        for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
            size_t d = dims[t];
            struct qt_design *des = NULL;

            if (qt_design_new(kinds[k], d, &des, NULL) < 0)
                continue;
            size_t n = d <= 4 ? 4096 : d <= 8 ? 2048 : d <= 16 ? 512 : 64;
            int reps = 7;
            double *Y = malloc(des->m * n * sizeof(double));
            double complex *rho = malloc(d * d * sizeof(*rho));

            for (size_t i = 0; i < n; i++) {
                size_t rank = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : d;

                qt_rng_state(&rng, d, rank, rho);
                if (qt_rng_simulate(&rng, des, &ws, rho, 1000, Y + des->m * i) < 0)
                    abort();
            }
            struct qt_opts core, all;
            double s1, b1, s2, b2;
            char a[32], b[32], c[32], e[32];

            qt_opts_init(&core);
            core.metrics = 0;
            qt_opts_init(&all);
            time_linear(des, n, Y, &core, reps, &s1, &b1);
            time_linear(des, n, Y, &all, reps, &s2, &b2);
            printf("%-7s %4zu %7zu | %-12s %-12s %5.2fx | %-12s %-12s %5.2fx\n", des->name, d, n,
                   fmt_time(s1, a, sizeof(a)), fmt_time(b1, b, sizeof(b)), s1 / b1,
                   fmt_time(s2, c, sizeof(c)), fmt_time(b2, e, sizeof(e)), s2 / b2);
            fflush(stdout);
            free(Y);
            free(rho);
            qt_design_free(des);
        }
    qt_ws_done(&ws);
    return 0;
}

/* d = 64: design build time and memory, and one linear estimate, for the structured designs
 * (a dense m x d^2 map would be 4160 x 4096 complex = 273 MB for mub, and its GEMV ~17M MACs). */
static int bench_large(void)
{
    static const enum qt_design_kind kinds[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_PAULI};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    size_t d = 64;

    qt_rng_seed(&rng, 64);
    printf("d = 64: build, memory, one linear estimate (clip, all metrics)\n");
    printf("%-7s %8s | %-10s %-12s | %-12s\n", "design", "outcomes", "build", "design mem",
           "estimate");
    for (size_t k = 0; k < QT_ARRAY_SIZE(kinds); k++) {
        struct qt_design *des = NULL;
        double t0 = qt_bench_now();
        char a[32], b[32];

        if (qt_design_new(kinds[k], d, &des, NULL) < 0)
            return 1;
        double t1 = qt_bench_now();
        double *y = malloc(des->m * sizeof(double));
        double complex *rho = malloc(d * d * sizeof(*rho));
        struct qt_result res;
        struct qt_opts opts;

        qt_opts_init(&opts);
        qt_rng_state(&rng, d, 2, rho);
        if (!y || !rho || qt_rng_simulate(&rng, des, &ws, rho, 1000, y) < 0 ||
            qt_result_init(&res, d) < 0)
            return 1;
        double t2 = qt_bench_now();
        int r = qt_estimate(des, &ws, QT_METHOD_LINEAR, y, des->m, &opts, &res);
        double t3 = qt_bench_now();
        printf("%-7s %8zu | %-10s %7.2f MB   | %-12s%s\n", des->name, des->m,
               fmt_time(t1 - t0, a, sizeof(a)), (double)qt_design_bytes(des) / 1e6,
               fmt_time(t3 - t2, b, sizeof(b)), r < 0 ? " (failed)" : "");
        qt_result_done(&res);
        free(y);
        free(rho);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
    return 0;
}

/* One mle row: per-sample wall time (the linear start included) and Newton iterations over n
 * random states of the given rank, with simulated counts. */
struct mle_row {
    double t_med, t_p95, gap_max;
    long it_med, it_p95;
    size_t certified;
};

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

static size_t pct_index(size_t n, double p)
{
    size_t i = (size_t)ceil(p * (double)n);

    return i == 0 ? 0 : i - 1;
}

static int time_mle(struct qt_rng *rng, const struct qt_design *des, struct qt_ws *ws, size_t n,
                    size_t rank, uint64_t counts, bool verbose, struct mle_row *row)
{
    size_t d = des->d;
    double *y = malloc(des->m * sizeof(double));
    double complex *rho = malloc(d * d * sizeof(*rho));
    double *t = calloc(n, sizeof(double));
    long *it = calloc(n, sizeof(long));
    struct qt_result res;
    struct qt_opts opts;
    int ret = -1;

    qt_opts_init(&opts);
    if (!y || !rho || !t || !it || qt_result_init(&res, d) < 0)
        goto out_free;
    *row = (struct mle_row){0};
    for (size_t i = 0; i < n; i++) {
        qt_rng_state(rng, d, rank, rho);
        if (qt_rng_simulate(rng, des, ws, rho, counts, y) < 0)
            goto out;
        double t0 = qt_bench_now();
        int r = qt_estimate(des, ws, QT_METHOD_MLE, y, des->m, &opts, &res);
        t[i] = qt_bench_now() - t0;
        if (r < 0) {
            fprintf(stderr, "bench: %s d=%zu sample %zu failed: %s\n", des->name, d, i, res.errmsg);
            continue;
        }
        it[i] = (long)res.mt.iterations;
        if (verbose) {
            printf("  sample %zu: %.3f s, %ld iterations, %ld evaluations, gap per count %.2e%s\n",
                   i, t[i], it[i], (long)res.mt.n_evaluations, res.mt.gap_per_count,
                   res.mt.converged ? "" : " (not converged)");
            fflush(stdout);
        }
        if (res.mt.converged && res.mt.gap_per_count <= opts.mle.gap_tol)
            row->certified++;
        if (res.mt.gap_per_count > row->gap_max)
            row->gap_max = res.mt.gap_per_count;
    }
    qsort(t, n, sizeof(double), cmp_double);
    qsort(it, n, sizeof(long), cmp_long);
    row->t_med = t[pct_index(n, 0.5)];
    row->t_p95 = t[pct_index(n, 0.95)];
    row->it_med = it[pct_index(n, 0.5)];
    row->it_p95 = it[pct_index(n, 0.95)];
    ret = 0;
out:
    qt_result_done(&res);
out_free:
    free(it);
    free(t);
    free(rho);
    free(y);
    return ret;
}

/* Samples per row: enough for a p95 where a sample is cheap, a handful where it is not. */
static size_t mle_samples(size_t d)
{
    return d <= 4 ? 400 : d <= 8 ? 200 : d <= 16 ? 60 : d <= 32 ? 12 : d <= 256 ? 4 : 2;
}

/* `qtomo-bench mle [design [d [pure|mixed [n [seed]]]]]`: nopovm and mub at d = 2..64, pauli
 * 1..9 qubits. Counts: 1000 per group (mub basis, pauli setting); nopovm, one group, 1000 d in
 * all. Naming the state runs only that kind, n samples from the seed, each printed. */
static int bench_mle(const char *only_design, size_t only_d, const char *only_state,
                     size_t only_n, uint64_t seed)
{
    static const struct {
        enum qt_design_kind kind;
        size_t dims[9];
    } plan[] = {
        {QT_DESIGN_NOPOVM, {2, 4, 8, 16, 32, 64}},
        {QT_DESIGN_MUB, {2, 4, 8, 16, 32, 64}},
        {QT_DESIGN_PAULI, {2, 4, 8, 16, 32, 64, 128, 256, 512}},
    };
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    qt_rng_seed(&rng, seed);
    printf("mle (linear start + certified Newton), per sample, default gap_tol; counts: 1000 per "
           "group (nopovm: 1000 d)\n");
    printf("%-7s %4s %-5s %4s | %-10s %-10s | %5s %5s | %9s %9s\n", "design", "d", "state", "n",
           "median", "p95", "it50", "it95", "certified", "max gap");
    for (size_t k = 0; k < QT_ARRAY_SIZE(plan); k++) {
        for (size_t t = 0; t < QT_ARRAY_SIZE(plan[k].dims) && plan[k].dims[t]; t++) {
            size_t d = plan[k].dims[t];
            struct qt_design *des = NULL;

            if (only_design && strcmp(only_design, qt_design_kind_name(plan[k].kind)) != 0)
                break;
            if (only_d && d != only_d)
                continue;
            if (qt_design_new(plan[k].kind, d, &des, NULL) < 0)
                return 1;
            for (int mixed = 0; mixed <= 1; mixed++) {
                size_t n = only_n ? only_n : mle_samples(d);

                if (only_state && strcmp(only_state, mixed ? "mixed" : "pure") != 0)
                    continue;
                uint64_t counts = plan[k].kind == QT_DESIGN_NOPOVM ? 1000 * d : 1000;
                struct mle_row row;
                char a[32], b[32];

                if (time_mle(&rng, des, &ws, n, mixed ? d : 1, counts, only_state != NULL,
                             &row) < 0)
                    return 1;
                printf("%-7s %4zu %-5s %4zu | %-10s %-10s | %5ld %5ld | %4zu/%-4zu %9.1e\n",
                       des->name, d, mixed ? "mixed" : "pure", n, fmt_time(row.t_med, a, sizeof(a)),
                       fmt_time(row.t_p95, b, sizeof(b)), row.it_med, row.it_p95, row.certified, n,
                       row.gap_max);
                fflush(stdout);
            }
            qt_design_free(des);
        }
    }
    qt_ws_done(&ws);
    return 0;
}

/* `qtomo-bench maps [qubits]`: one Hessian-vector product's kernels for pauli 5..8 qubits (or
 * the given count): the forward and adjoint maps in native order (what the MLE calls) and one
 * d x d complex matrix product, each the median of `reps` calls. */
static int bench_maps(unsigned only)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    int ret = 0;

    qt_rng_seed(&rng, 5);
    printf("pauli maps in native order and one zgemm, median per call\n");
    printf("qubits     d        m | forward    adjoint    zgemm\n");
    for (unsigned n = only ? only : 5; n <= (only ? only : 8u); n++) {
        size_t d = (size_t)1 << n, reps = n >= 8 ? 21 : n == 7 ? 81 : 301;
        struct qt_design *des = NULL;

        if (qt_design_new(QT_DESIGN_PAULI, d, &des, NULL) < 0) {
            ret = 1;
            break;
        }
        double complex *X = malloc(d * d * sizeof(*X)), *Y = malloc(d * d * sizeof(*Y));
        double complex *Z = malloc(d * d * sizeof(*Z));
        double *q = malloc(des->m * sizeof(double)), *tf = malloc(3 * reps * sizeof(double));

        if (!X || !Y || !Z || !q || !tf) {
            ret = 1;
            goto next;
        }
        for (size_t i = 0; i < d * d; i++)
            X[i] = qt_rng_normal(&rng) + I * qt_rng_normal(&rng);
        for (size_t j = 0; j < d; j++) /* Hermitian */
            for (size_t i = 0; i < j; i++)
                X[j + d * i] = conj(X[i + d * j]);
        for (size_t i = 0; i < d; i++)
            X[i + d * i] = creal(X[i + d * i]);
        for (size_t r = 0; r < reps && ret == 0; r++) {
            double t0 = qt_bench_now();

            ret |= qt_whiten_forward_native(des->whiten, des, &ws, X, q) < 0;
            double t1 = qt_bench_now();

            ret |= qt_whiten_adjoint_native(des->whiten, des, &ws, q, Y) < 0;
            double t2 = qt_bench_now();

            qt_zgemm('N', 'N', d, d, d, 1.0, X, d, Y, d, 0.0, Z, d);
            tf[r] = t1 - t0;
            tf[reps + r] = t2 - t1;
            tf[2 * reps + r] = qt_bench_now() - t2;
        }
        if (ret == 0) {
            for (size_t k = 0; k < 3; k++)
                qsort(tf + k * reps, reps, sizeof(double), cmp_double);
            printf("%6u %5zu %8zu | %7.3f ms %7.3f ms %7.3f ms\n", n, d, des->m, 1e3 * tf[reps / 2],
                   1e3 * tf[reps + reps / 2], 1e3 * tf[2 * reps + reps / 2]);
        }
    next:
        free(X);
        free(Y);
        free(Z);
        free(q);
        free(tf);
        qt_design_free(des);
        if (ret)
            break;
    }
    qt_ws_done(&ws);
    return ret;
}

int main(int argc, char **argv)
{
    qt_bench_blas_env(argv);
    printf("qtomo-bench %s: OPENBLAS_CORETYPE=%s (OpenBLAS kernels: %s), "
           "OPENBLAS_NUM_THREADS=%s, %ld CPUs online\n",
           QTOMO_VERSION, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
           qt_blas_corename(), getenv("OPENBLAS_NUM_THREADS"), sysconf(_SC_NPROCESSORS_ONLN));
    if (argc >= 2 && strcmp(argv[1], "linear") == 0)
        return bench_linear() || bench_large();
    if (argc >= 2 && strcmp(argv[1], "mle") == 0)
        return bench_mle(argc >= 3 ? argv[2] : NULL,
                         argc >= 4 ? (size_t)strtoul(argv[3], NULL, 10) : 0,
                         argc >= 5 ? argv[4] : NULL,
                         argc >= 6 ? (size_t)strtoul(argv[5], NULL, 10) : 0,
                         argc >= 7 ? strtoull(argv[6], NULL, 10) : 2026);
    if (argc >= 2 && strcmp(argv[1], "maps") == 0)
        return bench_maps(argc >= 3 ? (unsigned)strtoul(argv[2], NULL, 10) : 0);
    fprintf(
        stderr,
        "usage: qtomo-bench linear | mle [design [d [pure|mixed [n [seed]]]]] | maps [qubits]\n");
    return 2;
}

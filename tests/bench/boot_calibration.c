/* boot_calibration: calibration of the bootstrap error bars (issue 16) on simulated experiments
 * (a benchmark, not a test). For each cell {state} x {nopovm, mub, pauli} x {1e3, 1e4 counts per
 * group} x {linear, mle} at d = 4 it simulates E independent experiments from the true state,
 * estimates each, runs qt_bootstrap on each, and compares the mean bootstrap std with the std of
 * the point estimates across the experiments, and the 95 % percentile intervals with the true
 * values. Results are reported in tests/bench/README.md.
 *
 * Simulation: POVM designs (mub, pauli) get per group a multinomial of n counts over
 * Tr(E_a rho) (qt_rng_simulate); nopovm, whose 16 projectors are measured separately, gets an
 * independent Poisson count of mean n Tr(E_a rho) per outcome (qt_rng_poisson). Fidelity is
 * qtomo's own metric (Uhlmann, squared) with the target passed in qt_opts.target, so the point
 * estimates and every resample compute it the same way. */
#include <complex.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "base/qt_err.h"
#include "base/qt_ws.h"
#include "num/qt_bootstrap.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_lapack.h"
#include "num/qt_resample.h"
#include "num/qt_rng.h"

#define D     4
#define NN    (D * D)
#define LEVEL 0.95

/* The true states: one spectrum each, all in the same random basis (seeded, fixed). */
struct state_def {
    const char *name;
    double spec[D];
};

static const struct state_def states[] = {
    {"full", {0.4, 0.3, 0.2, 0.1}},
    {"rank2", {0.7, 0.3, 0.0, 0.0}},
    {"pure", {1.0, 0.0, 0.0, 0.0}},
};

static const enum qt_design_kind designs[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_PAULI};

static const uint64_t counts[] = {1000, 10000};
static const char *const count_names[] = {"1e3", "1e4"};

static const enum qt_method methods[] = {QT_METHOD_LINEAR, QT_METHOD_MLE};

struct config {
    uint32_t resamples, experiments;
    unsigned threads;
    uint64_t seed;
    const char *cells; /* comma-separated fnmatch patterns of "state/design/n/method" */
    enum qt_resample_kind kind;
    bool bell_target; /* fidelity to |Phi+> instead of to the true state */
};

/* One experiment's numbers. ok: both the point estimate and the bootstrap succeeded. */
struct exp_out {
    bool ok;
    int err;
    uint32_t failed;
    double pur, fid;                 /* point estimates */
    struct qt_boot_stat bpur, bfid;  /* bootstrap std and percentile interval */
    double complex rho[NN];          /* point estimate */
    double bstd_re[NN], bstd_im[NN]; /* bootstrap per-element std */
};

/* A cell being run: read-only inputs, a counter handing out experiments, the outputs. */
struct cell_run {
    const struct config *cfg;
    const struct qt_design *des;
    const double complex *rho_true;
    const double complex *target;
    enum qt_method method;
    uint64_t n, sim_key, boot_key;
    atomic_uint next;
    struct exp_out *out;
};

/* A Haar-like random orthonormal basis (Gram-Schmidt of complex Gaussian columns). */
static void random_basis(struct qt_rng *rng, double complex *U)
{
    for (size_t j = 0; j < D; j++) {
        double complex *u = U + D * j;
        double nrm = 0.0;

        for (size_t i = 0; i < D; i++)
            u[i] = qt_rng_normal(rng) + I * qt_rng_normal(rng);
        for (size_t k = 0; k < j; k++) {
            double complex dot = 0.0;

            for (size_t i = 0; i < D; i++)
                dot += conj(U[i + D * k]) * u[i];
            for (size_t i = 0; i < D; i++)
                u[i] -= dot * U[i + D * k];
        }
        for (size_t i = 0; i < D; i++)
            nrm += creal(u[i] * conj(u[i]));
        for (size_t i = 0; i < D; i++)
            u[i] /= sqrt(nrm);
    }
}

static void make_state(const double complex *U, const double *spec, double complex *rho)
{
    for (size_t j = 0; j < D; j++)
        for (size_t i = 0; i < D; i++) {
            double complex s = 0.0;

            for (size_t k = 0; k < D; k++)
                s += spec[k] * U[i + D * k] * conj(U[j + D * k]);
            rho[i + D * j] = s;
        }
}

static double purity_of(const double complex *rho)
{
    double p = 0.0;

    for (size_t i = 0; i < NN; i++)
        p += creal(rho[i] * conj(rho[i]));
    return p;
}

/* One simulated experiment of n counts per group (see the file comment) into y (des->m). */
static int simulate(const struct qt_design *des, struct qt_ws *ws, const double complex *rho,
                    uint64_t n, struct qt_rng *rng, double *y)
{
    struct qt_ws_mark mark;
    double *q;
    int r;

    if (des->povm)
        return qt_rng_simulate(rng, des, ws, rho, n, y);
    mark = qt_ws_mark(ws);
    q = qt_ws_alloc_n(ws, des->m, sizeof(double));
    if (!q)
        return -ENOMEM;
    r = qt_design_forward(des, ws, rho, q);
    for (size_t a = 0; r == 0 && a < des->m; a++)
        y[a] = (double)qt_rng_poisson(rng, q[a] > 0.0 ? (double)n * q[a] : 0.0);
    qt_ws_release(ws, mark);
    return r;
}

/* Experiment e of a cell: simulate, estimate, bootstrap. Returns -ENOMEM only; other failures
 * are recorded in o. */
static int run_experiment(struct cell_run *c, struct qt_ws *ws, struct qt_result *point, double *y,
                          uint32_t e)
{
    const struct config *cfg = c->cfg;
    struct qt_boot_opts bo = {.resamples = cfg->resamples,
                              .kind = cfg->kind,
                              .seed = cfg->seed,
                              .sample = (c->boot_key << 32) | e,
                              .confidence = LEVEL};
    struct exp_out *o = &c->out[e];
    struct qt_uncertainty u;
    struct qt_opts opts;
    struct qt_rng rng;
    int r;

    qt_opts_init(&opts);
    opts.target = c->target;
    memset(o, 0, sizeof(*o));
    /* Distinct (sample, resample) keys from the bootstrap's: the sample key has bit 62 set. */
    qt_rng_stream(&rng, cfg->seed, ((uint64_t)1 << 62) | c->sim_key, e);
    r = simulate(c->des, ws, c->rho_true, c->n, &rng, y);
    if (r == 0)
        r = qt_estimate(c->des, ws, c->method, y, c->des->m, &opts, point);
    if (r == 0 && !qt_metrics_has(&point->mt, QT_MT_FIDELITY))
        r = QT_EOPTION;
    if (r == 0)
        r = qt_bootstrap(c->des, ws, c->method, y, &opts, point, &bo, &u);
    if (r == -ENOMEM)
        return r;
    o->err = r;
    if (r < 0)
        return 0;
    o->ok = true;
    o->failed = u.failed;
    o->pur = point->mt.purity;
    o->fid = point->mt.fidelity;
    o->bpur = u.stats[QT_MT_PURITY];
    o->bfid = u.stats[QT_MT_FIDELITY];
    memcpy(o->rho, point->rho, sizeof(o->rho));
    memcpy(o->bstd_re, u.rho_std_re, sizeof(o->bstd_re));
    memcpy(o->bstd_im, u.rho_std_im, sizeof(o->bstd_im));
    qt_uncertainty_done(&u);
    return 0;
}

/* Thread body: takes experiments from the shared counter until none are left. Each thread
 * has its own workspace and result; the design is shared read-only. */
static void *worker(void *arg)
{
    struct cell_run *c = arg;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result point;
    double *y = malloc(c->des->m * sizeof(double));
    intptr_t r = qt_result_init(&point, D);

    if (!y || r < 0)
        r = -ENOMEM;
    for (;;) {
        unsigned e = atomic_fetch_add(&c->next, 1u);

        if (r < 0 || e >= c->cfg->experiments)
            break;
        r = run_experiment(c, &ws, &point, y, e);
    }
    qt_result_done(&point);
    free(y);
    qt_ws_done(&ws);
    return (void *)r;
}

static int run_threads(struct cell_run *c, unsigned threads)
{
    pthread_t tid[64];
    unsigned started = 0;
    int ret = 0;

    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker, c) != 0)
            break;
    if (started == 0)
        return -EAGAIN;
    for (unsigned t = 0; t < started; t++) {
        void *r;

        (void)pthread_join(tid[t], &r);
        if ((intptr_t)r < 0)
            ret = (int)(intptr_t)r;
    }
    return ret;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Mean and sample std of v[0..n). */
static void mean_std(const double *v, size_t n, double *ret_mean, double *ret_std)
{
    double m = 0.0, ss = 0.0;

    for (size_t i = 0; i < n; i++)
        m += v[i] / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *ret_mean = m;
    *ret_std = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
}

/* The figures of one cell. Ratios are mean bootstrap std / std of the point estimates. */
struct cell_stats {
    uint32_t used, bad;         /* experiments used; failed point estimate or bootstrap */
    uint64_t failed;            /* failed resamples, over the used experiments */
    double r_pur, r_fid;        /* std ratios */
    double r_med, r_min, r_max; /* over the rho elements: Re of i >= j, Im of i > j */
    double cov_pur, cov_fid;    /* percentile interval covers the true value */
    double cov_pur_basic;       /* basic interval [2 p - hi, 2 p - lo] covers it */
    double cov_pur_norm;        /* p +- 1.96 bootstrap std covers it */
    double bias_pur;            /* (mean point purity - true) / std of the point purity */
    double bias_fid;            /* the same for fidelity */
};

/* Ratio of mean bootstrap std to the spread of the point estimates for scalar x. */
static double std_ratio(const double *pt, const double *bs, size_t n, double truth,
                        double *ret_bias)
{
    double m, s, bm, bsd;

    mean_std(pt, n, &m, &s);
    mean_std(bs, n, &bm, &bsd);
    *ret_bias = (m - truth) / s;
    return bm / s;
}

/* Per rho element (Re of the lower triangle with the diagonal, Im strictly below it), the std
 * ratio; their median, minimum and maximum. */
static void element_ratios(const struct exp_out *ok, size_t n, double *pt, double *bs,
                           struct cell_stats *st)
{
    double ratio[NN];
    size_t k = 0;

    for (size_t j = 0; j < D; j++)
        for (size_t i = j; i < D; i++)
            for (int part = 0; part < (i > j ? 2 : 1); part++) {
                double m, s, bm, bsd;

                for (size_t e = 0; e < n; e++) {
                    double complex z = ok[e].rho[i + D * j];

                    pt[e] = part ? cimag(z) : creal(z);
                    bs[e] = part ? ok[e].bstd_im[i + D * j] : ok[e].bstd_re[i + D * j];
                }
                mean_std(pt, n, &m, &s);
                mean_std(bs, n, &bm, &bsd);
                ratio[k++] = bm / s;
            }
    qsort(ratio, k, sizeof(double), cmp_double);
    st->r_min = ratio[0];
    st->r_max = ratio[k - 1];
    st->r_med = k % 2 ? ratio[k / 2] : 0.5 * (ratio[k / 2 - 1] + ratio[k / 2]);
}

static int cell_stats(const struct exp_out *out, size_t E, double pur_true, double fid_true,
                      struct cell_stats *st)
{
    struct exp_out *ok = malloc(E * sizeof(*ok));
    double *pt = malloc(E * sizeof(double)), *bs = malloc(E * sizeof(double));
    size_t n = 0, cp = 0, cf = 0, cb = 0, cn = 0;

    memset(st, 0, sizeof(*st));
    if (!ok || !pt || !bs) {
        free(ok);
        free(pt);
        free(bs);
        return -ENOMEM;
    }
    for (size_t e = 0; e < E; e++)
        if (out[e].ok)
            ok[n++] = out[e];
    st->used = (uint32_t)n;
    st->bad = (uint32_t)(E - n);
    for (size_t e = 0; e < n; e++) {
        const struct exp_out *o = &ok[e];

        st->failed += o->failed;
        cp += o->bpur.lo <= pur_true && pur_true <= o->bpur.hi;
        cf += o->bfid.lo <= fid_true && fid_true <= o->bfid.hi;
        cb += 2.0 * o->pur - o->bpur.hi <= pur_true && pur_true <= 2.0 * o->pur - o->bpur.lo;
        cn += fabs(o->pur - pur_true) <= 1.959964 * o->bpur.std;
    }
    if (n >= 2) {
        st->cov_pur = (double)cp / (double)n;
        st->cov_fid = (double)cf / (double)n;
        st->cov_pur_basic = (double)cb / (double)n;
        st->cov_pur_norm = (double)cn / (double)n;
        for (size_t e = 0; e < n; e++) {
            pt[e] = ok[e].pur;
            bs[e] = ok[e].bpur.std;
        }
        st->r_pur = std_ratio(pt, bs, n, pur_true, &st->bias_pur);
        for (size_t e = 0; e < n; e++) {
            pt[e] = ok[e].fid;
            bs[e] = ok[e].bfid.std;
        }
        st->r_fid = std_ratio(pt, bs, n, fid_true, &st->bias_fid);
        element_ratios(ok, n, pt, bs, st);
    }
    free(ok);
    free(pt);
    free(bs);
    return 0;
}

static bool cell_wanted(const char *patterns, const char *name)
{
    char buf[256], *save = NULL;

    if (!patterns)
        return true;
    (void)snprintf(buf, sizeof(buf), "%s", patterns);
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (fnmatch(p, name, 0) == 0)
            return true;
    return false;
}

static void print_header(const struct config *cfg)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");

    printf("boot_calibration %s: OpenBLAS kernels %s, OPENBLAS_CORETYPE=%s, "
           "OPENBLAS_NUM_THREADS=%s, %ld CPUs online, %u thread(s)\n",
           QTOMO_VERSION, qt_blas_corename(), ct ? ct : "(unset)", getenv("OPENBLAS_NUM_THREADS"),
           sysconf(_SC_NPROCESSORS_ONLN), cfg->threads);
    printf("d = %d; %u experiments per cell, %u %s resamples each, seed %llu; fidelity to %s; "
           "%.0f %% percentile intervals\n",
           D, cfg->experiments, cfg->resamples,
           cfg->kind == QT_RESAMPLE_DATA ? "data" : "parametric", (unsigned long long)cfg->seed,
           cfg->bell_target ? "|Phi+>" : "the true state", 100.0 * LEVEL);
    printf("ratio = mean bootstrap std / std of the point estimates over the experiments; "
           "cover = share of experiments whose interval holds the true value\n\n");
    printf("| cell                    | purity true | fid true | ratio pur | ratio fid | ratio rho "
           "med [min, "
           "max] | cover pur | cover fid | basic pur | normal pur | bias pur | bias fid | "
           "failed | bad | seconds |\n");
    printf("|-------------------------|-------------|----------|-----------|-----------|-----------"
           "---------"
           "------|-----------|-----------|-----------|------------|----------|----------|"
           "--------|-----|---------|\n");
    fflush(stdout);
}

static void print_row(const char *name, double pur_true, double fid_true,
                      const struct cell_stats *st, double seconds)
{
    printf("| %-23s | %11.4f | %8.4f | %9.3f | %9.3f | %5.3f [%5.3f, %5.3f]     | %9.3f | %9.3f | "
           "%9.3f | %10.3f | %+8.2f | %+8.2f | %6llu | %3u | %7.1f |\n",
           name, pur_true, fid_true, st->r_pur, st->r_fid, st->r_med, st->r_min, st->r_max,
           st->cov_pur, st->cov_fid, st->cov_pur_basic, st->cov_pur_norm, st->bias_pur,
           st->bias_fid, (unsigned long long)st->failed, st->bad, seconds);
    fflush(stdout);
}

/* Runs one cell and prints its row. */
static int run_cell(const struct config *cfg, struct cell_run *c, const char *name, double pur_true,
                    double fid_true)
{
    struct cell_stats st;
    double t0 = qt_bench_now();
    int r;

    c->out = calloc(cfg->experiments, sizeof(*c->out));
    if (!c->out)
        return -ENOMEM;
    atomic_init(&c->next, 0u);
    r = run_threads(c, cfg->threads);
    if (r == 0)
        r = cell_stats(c->out, cfg->experiments, pur_true, fid_true, &st);
    if (r == 0)
        print_row(name, pur_true, fid_true, &st, qt_bench_now() - t0);
    for (uint32_t e = 0; r == 0 && e < cfg->experiments; e++)
        if (c->out[e].err < 0 && (e == 0 || c->out[e].err != c->out[e - 1].err))
            fprintf(stderr, "%s: experiment %u: %s\n", name, e, qt_strerror(c->out[e].err));
    free(c->out);
    c->out = NULL;
    return r;
}

/* The linear estimate from the exact expected data must give back the true state: checks that
 * the simulation and the estimators agree on the design's conventions. */
static int check_exact(const struct qt_design *des, struct qt_ws *ws, const double complex *rho)
{
    struct qt_result res;
    struct qt_opts opts;
    struct qt_rng rng;
    double *y = malloc(des->m * sizeof(double)), dev = 0.0;
    int r = qt_result_init(&res, D);

    qt_opts_init(&opts);
    qt_rng_seed(&rng, 0);
    if (!y || r < 0)
        r = -ENOMEM;
    if (r == 0)
        r = qt_rng_simulate(&rng, des, ws, rho, 0, y);
    if (r == 0)
        r = qt_estimate(des, ws, QT_METHOD_LINEAR, y, des->m, &opts, &res);
    for (size_t i = 0; r == 0 && i < NN; i++)
        dev = fmax(dev, cabs(res.rho[i] - rho[i]));
    if (r == 0 && !(dev < 1e-9)) {
        fprintf(stderr, "boot_calibration: %s: exact data give an estimate %.3g away\n", des->name,
                dev);
        r = QT_EDESIGN;
    }
    qt_result_done(&res);
    free(y);
    return r;
}

/* All cells of one true state, in table order: design, counts, method. */
static int run_state(const struct config *cfg, struct qt_design *const *des, size_t si,
                     const double complex *rho)
{
    static const double complex bell[NN] = {0.5, 0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 0, 0.5};
    double pur_true = purity_of(rho), fid_true = 1.0;

    if (cfg->bell_target)
        fid_true = creal(rho[0] + rho[3] + rho[12] + rho[15]) / 2.0; /* <Phi+|rho|Phi+> */
    for (size_t di = 0; di < QT_ARRAY_SIZE(designs); di++)
        for (size_t ni = 0; ni < QT_ARRAY_SIZE(counts); ni++)
            for (size_t mi = 0; mi < QT_ARRAY_SIZE(methods); mi++) {
                /* The key leaves the method out: both methods see the same experiments and
                 * the same resampling streams. */
                uint64_t key = (si * 16 + di) * 16 + ni;
                struct cell_run c = {.cfg = cfg,
                                     .des = des[di],
                                     .rho_true = rho,
                                     .target = cfg->bell_target ? bell : rho,
                                     .method = methods[mi],
                                     .n = counts[ni],
                                     .sim_key = key,
                                     .boot_key = key};
                char name[64];
                int r;

                (void)snprintf(name, sizeof(name), "%s/%s/%s/%s", states[si].name, des[di]->name,
                               count_names[ni], qt_method_name(methods[mi]));
                if (!cell_wanted(cfg->cells, name))
                    continue;
                r = run_cell(cfg, &c, name, pur_true, fid_true);
                if (r < 0)
                    return r;
            }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: boot_calibration [--bootstrap N] [--experiments E] [--seed S] "
                    "[--cells PATTERNS] [--threads T] [--kind data|parametric] "
                    "[--target true|bell]\n"
                    "  PATTERNS: comma-separated globs of state/design/n/method, e.g. "
                    "'full/*/1e3/*,rank2/mub/*/mle'\n"
                    "  states full, rank2, pure; designs nopovm, mub, pauli; n 1e3, 1e4; "
                    "methods linear, mle\n");
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
    static const struct option lo[] = {
        {"bootstrap", required_argument, NULL, 'b'}, {"experiments", required_argument, NULL, 'e'},
        {"seed", required_argument, NULL, 's'},      {"cells", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},   {"kind", required_argument, NULL, 'k'},
        {"target", required_argument, NULL, 'g'},    {NULL, 0, NULL, 0}};
    int ch;

    *cfg = (struct config){.resamples = 200, .experiments = 200, .threads = 1, .seed = 16};
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'b':
            cfg->resamples = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'e':
            cfg->experiments = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 's':
            cfg->seed = strtoull(optarg, NULL, 0);
            break;
        case 'c':
            cfg->cells = optarg;
            break;
        case 't':
            cfg->threads = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            if (strcmp(optarg, "data") && strcmp(optarg, "parametric"))
                return -EINVAL;
            cfg->kind = strcmp(optarg, "data") ? QT_RESAMPLE_PARAMETRIC : QT_RESAMPLE_DATA;
            break;
        case 'g':
            if (strcmp(optarg, "true") && strcmp(optarg, "bell"))
                return -EINVAL;
            cfg->bell_target = strcmp(optarg, "bell") == 0;
            break;
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || cfg->resamples < 2 || cfg->experiments < 2 || cfg->threads < 1 ||
        cfg->threads > 64)
        return -EINVAL;
    return 0;
}

int main(int argc, char **argv)
{
    struct qt_design *des[QT_ARRAY_SIZE(designs)] = {NULL};
    struct qt_ws ws = QT_WS_INIT;
    struct config cfg;
    struct qt_rng rng;
    double complex U[NN], rho[QT_ARRAY_SIZE(states)][NN];
    int r = 0;

    qt_bench_blas_env(argv);
    if (parse_args(argc, argv, &cfg) < 0) {
        usage();
        return 2;
    }
    qt_rng_seed(&rng, 4); /* the basis of the true states: fixed, whatever --seed says */
    random_basis(&rng, U);
    for (size_t si = 0; si < QT_ARRAY_SIZE(states); si++)
        make_state(U, states[si].spec, rho[si]);
    for (size_t di = 0; r == 0 && di < QT_ARRAY_SIZE(designs); di++) {
        r = qt_design_new(designs[di], D, &des[di], NULL);
        for (size_t si = 0; r == 0 && si < QT_ARRAY_SIZE(states); si++)
            r = check_exact(des[di], &ws, rho[si]);
    }
    if (r == 0)
        print_header(&cfg);
    for (size_t si = 0; r == 0 && si < QT_ARRAY_SIZE(states); si++)
        r = run_state(&cfg, des, si, rho[si]);
    for (size_t di = 0; di < QT_ARRAY_SIZE(designs); di++)
        qt_design_free(des[di]);
    qt_ws_done(&ws);
    if (r < 0) {
        fprintf(stderr, "boot_calibration: %s\n", qt_strerror(r));
        return 1;
    }
    return 0;
}

/* Bootstrap error bars (qt_bootstrap.h). */
#include "qt_bootstrap.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_estimate.h"

#define BIT(id) ((uint64_t)1 << (id))

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Percentile of sorted v[0..n) at q in [0, 1], linear between order statistics. */
static double percentile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;

    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static double metric_f64(const struct qt_metrics *mt, unsigned id)
{
    return *(const double *)((const char *)mt + qt_metric_descs[id].offset);
}

static bool metric_vec(const struct qt_metrics *mt, unsigned id, size_t d, const double **v)
{
    const struct qt_metric_desc *md = &qt_metric_descs[id];

    *v = *(const double *const *)((const char *)mt + md->offset);
    return *v && *(const size_t *)((const char *)mt + md->count_offset) == d;
}

uint64_t qt_boot_have(const struct qt_result *point)
{
    /* Functions of the state only: the solver's own numbers (gap, objective, likelihoods,
     * residuals, iteration diagnostics) have no sampling distribution worth reporting. */
    static const unsigned state[] = {
        QT_MT_PURITY,           QT_MT_TRACE,          QT_MT_MIN_EIGENVALUE,
        QT_MT_MAX_EIGENVALUE,   QT_MT_CONDITION_NUMBER, QT_MT_EIGENVALUE_ENTROPY,
        QT_MT_BELL_MAX_FIDELITY, QT_MT_BELL_MIN_FIDELITY, QT_MT_BELL_AVG_FIDELITY,
        QT_MT_ENTROPY_BITS,     QT_MT_LINEAR_ENTROPY, QT_MT_FIDELITY,
        QT_MT_TRACE_DISTANCE,   QT_MT_CONCURRENCE,    QT_MT_NEGATIVITY,
        QT_MT_LOG_NEGATIVITY,   QT_MT_EIGENVALUES,    QT_MT_BELL_FIDELITIES};
    const struct qt_metrics *mt = &point->mt;
    uint64_t have = 0;
    const double *v;

    for (size_t i = 0; i < sizeof(state) / sizeof(state[0]); i++) {
        unsigned id = state[i];

        if (!qt_metrics_has(mt, (enum qt_metric_id)id))
            continue;
        if (qt_metric_descs[id].type == QT_MTYPE_F64)
            have |= BIT(id);
        else if (qt_metric_descs[id].type == QT_MTYPE_F64V && metric_vec(mt, id, point->d, &v))
            have |= BIT(id);
    }
    return have;
}

/* Doubles of the metric part of a row (after the ok flag). */
static size_t metric_len(uint64_t have, size_t d)
{
    size_t k = 0;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        if ((have >> id) & 1u)
            k += qt_metric_descs[id].type == QT_MTYPE_F64V ? d : 1;
    return k;
}

size_t qt_boot_stride(uint64_t have, size_t d)
{
    return 1 + metric_len(have, d) + 2 * d * d;
}

bool qt_boot_boundary(const struct qt_result *point, size_t d, double tol)
{
    if (point->err || d == 0)
        return false;
    if (qt_metrics_has(&point->mt, QT_MT_RANK) && point->mt.rank < (int64_t)d)
        return true;
    return point->eigenvalues && point->eigenvalues[d - 1] <= tol;
}

int qt_boot_check(const struct qt_boot_opts *bo)
{
    if (bo->resamples < 2 || bo->resamples > QT_BOOT_MAX_RESAMPLES || bo->seed > QT_BOOT_MAX_SEED ||
        !(bo->confidence > 0.0 && bo->confidence < 1.0))
        return QT_EOPTION;
    return 0;
}

/* One row from an estimate: false when it lacks a metric of have. */
static bool fill_row(const struct qt_result *res, uint64_t have, size_t d, double *row)
{
    size_t j = 1, nn = d * d;
    const double *v;

    if ((res->mt.have & have) != have)
        return false;
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        if (!((have >> id) & 1u))
            continue;
        if (qt_metric_descs[id].type != QT_MTYPE_F64V) {
            row[j++] = metric_f64(&res->mt, id);
            continue;
        }
        if (!metric_vec(&res->mt, id, d, &v))
            return false;
        memcpy(row + j, v, d * sizeof(double));
        j += d;
    }
    for (size_t i = 0; i < nn; i++) {
        row[j + i] = creal(res->rho[i]);
        row[j + nn + i] = cimag(res->rho[i]);
    }
    row[0] = 1.0;
    return true;
}

int qt_boot_run(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                const double *y, const struct qt_opts *opts, const struct qt_result *point,
                const struct qt_boot_opts *bo, uint64_t have, uint32_t k0, uint32_t n, double *raw)
{
    size_t m = des->m, d = des->d, stride = qt_boot_stride(have, d);
    struct qt_result res = {0};
    struct qt_opts ro = *opts;
    double *z = malloc(m * sizeof(double));
    int r = qt_result_init(&res, d);

    ro.spectral = false; /* no error bars on the spectral decomposition: not worth its cost */

    if (!z || r < 0) {
        r = -ENOMEM;
        goto out;
    }
    if (!qt_resample_is_counts(y, m)) {
        r = QT_ENOTCOUNTS;
        goto out;
    }
    memset(raw, 0, (size_t)n * stride * sizeof(double));
    for (uint32_t i = 0; i < n; i++) {
        struct qt_rng rng;

        qt_rng_stream(&rng, bo->seed, bo->sample, (uint64_t)k0 + i);
        r = qt_resample(des, ws, bo->kind, y, point->rho, &rng, z);
        if (r == 0)
            r = qt_estimate_from(des, ws, method, z, m, &ro, point->rho, &res);
        if (r == -ENOMEM)
            goto out;
        /* An iterative estimate that stopped at its limit is not the estimator's answer:
         * counted as failed (said in failed_resamples), never averaged in silently. */
        if (r < 0 || (res.warnings & QT_WARN_NOT_CONVERGED) ||
            !fill_row(&res, have, d, raw + (size_t)i * stride))
            memset(raw + (size_t)i * stride, 0, stride * sizeof(double));
    }
    r = 0;
out:
    qt_result_done(&res);
    free(z);
    return r;
}

/* std and (with confidence > 0) percentile interval of column j of the ok rows; v: scratch of
 * N. */
static struct qt_boot_stat column_stat(const double *raw, uint32_t N, size_t stride, size_t j,
                                       double confidence, double *v)
{
    struct qt_boot_stat st;
    double mean = 0.0, ss = 0.0;
    size_t k = 0;

    for (uint32_t i = 0; i < N; i++)
        if (raw[(size_t)i * stride] != 0.0)
            v[k++] = raw[(size_t)i * stride + j];
    for (size_t i = 0; i < k; i++)
        mean += v[i];
    mean /= (double)k;
    for (size_t i = 0; i < k; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    st.std = sqrt(ss / (double)(k - 1));
    st.lo = st.hi = 0.0;
    if (confidence > 0.0) { /* rho's elements get only their std: no sort */
        qsort(v, k, sizeof(double), cmp_double);
        st.lo = percentile(v, k, (1.0 - confidence) / 2.0);
        st.hi = percentile(v, k, (1.0 + confidence) / 2.0);
    }
    return st;
}

int qt_boot_reduce(const double *raw, uint32_t N, uint64_t have, size_t d, double confidence,
                   struct qt_uncertainty *out)
{
    size_t stride = qt_boot_stride(have, d), nn = d * d, j = 1;
    uint32_t ok = 0;
    double *v = malloc((N ? N : 1) * sizeof(double));

    memset(out, 0, sizeof(*out));
    out->resamples = N;
    out->confidence = confidence;
    out->d = d;
    out->have = have;
    for (uint32_t i = 0; i < N; i++)
        ok += raw[(size_t)i * stride] != 0.0;
    out->failed = N - ok;
    if (out->failed)
        out->warn |= QT_BOOT_WARN_FAILED;
    if (!v) {
        qt_uncertainty_done(out);
        return -ENOMEM;
    }
    if (ok < 2) {
        free(v);
        return QT_ENOCONV;
    }
    out->rho_std_re = malloc(nn * sizeof(double));
    out->rho_std_im = malloc(nn * sizeof(double));
    if ((have & BIT(QT_MT_EIGENVALUES)))
        out->veig = malloc(d * sizeof(*out->veig));
    if ((have & BIT(QT_MT_BELL_FIDELITIES)))
        out->vbell = malloc(d * sizeof(*out->vbell));
    if (!out->rho_std_re || !out->rho_std_im || ((have & BIT(QT_MT_EIGENVALUES)) && !out->veig) ||
        ((have & BIT(QT_MT_BELL_FIDELITIES)) && !out->vbell)) {
        free(v);
        qt_uncertainty_done(out);
        return -ENOMEM;
    }
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        struct qt_boot_stat *vs;

        if (!((have >> id) & 1u))
            continue;
        if (qt_metric_descs[id].type != QT_MTYPE_F64V) {
            out->stats[id] = column_stat(raw, N, stride, j++, confidence, v);
            continue;
        }
        vs = id == QT_MT_EIGENVALUES ? out->veig : out->vbell;
        for (size_t e = 0; e < d; e++)
            vs[e] = column_stat(raw, N, stride, j++, confidence, v);
    }
    for (size_t i = 0; i < nn; i++) {
        out->rho_std_re[i] = column_stat(raw, N, stride, j + i, 0.0, v).std;
        out->rho_std_im[i] = column_stat(raw, N, stride, j + nn + i, 0.0, v).std;
    }
    free(v);
    return 0;
}

int qt_bootstrap(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                 const double *y, const struct qt_opts *opts, const struct qt_result *point,
                 const struct qt_boot_opts *bo, struct qt_uncertainty *out)
{
    uint64_t have = qt_boot_have(point);
    size_t stride = qt_boot_stride(have, des->d);
    double *raw;
    int r;

    memset(out, 0, sizeof(*out));
    r = qt_boot_check(bo);
    if (r < 0)
        return r;
    if (!qt_resample_is_counts(y, des->m))
        return QT_ENOTCOUNTS;
    raw = malloc((size_t)bo->resamples * stride * sizeof(double));
    if (!raw)
        return -ENOMEM;
    r = qt_boot_run(des, ws, method, y, opts, point, bo, have, 0, bo->resamples, raw);
    if (r == 0)
        r = qt_boot_reduce(raw, bo->resamples, have, des->d, bo->confidence, out);
    free(raw);
    out->kind = bo->kind;
    out->seed = bo->seed;
    if (r == 0 && qt_boot_boundary(point, des->d, opts->tolerance))
        out->warn |= QT_BOOT_WARN_BOUNDARY;
    return r;
}

int qt_boot_counts(const struct qt_design *des, struct qt_ws *ws, const double *y, uint64_t shots,
                   double *out, char *msg, size_t msglen)
{
    if (shots) {
        int r = qt_resample_counts_from_shots(des, ws, y, shots, out);

        if (r != QT_ENOTCOUNTS)
            return r;
        for (size_t a = 0; a < des->m; a++)
            if (!(y[a] >= 0.0) || !isfinite(y[a])) {
                snprintf(msg, msglen,
                         "value %zu (%.17g) is negative or not finite: shots turn finite, "
                         "non-negative values into counts",
                         a + 1, y[a]);
                return r;
            }
        snprintf(msg, msglen, "shots %llu is out of range", (unsigned long long)shots);
        return r;
    }
    for (size_t a = 0; a < des->m; a++)
        if (!qt_resample_is_counts(y + a, 1)) {
            snprintf(msg, msglen,
                     "value %zu (%.17g) is not a count: data given as probabilities or powers "
                     "need shots (counts per group) to be resampled",
                     a + 1, y[a]);
            return QT_ENOTCOUNTS;
        }
    memcpy(out, y, des->m * sizeof(double));
    return 0;
}

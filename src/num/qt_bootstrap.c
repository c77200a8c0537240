/* Bootstrap error bars (qt_bootstrap.h). */
#include "qt_bootstrap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_estimate.h"

void qt_uncertainty_done(struct qt_uncertainty *u)
{
    if (!u)
        return;
    free(u->rho_std_re);
    free(u->rho_std_im);
    u->rho_std_re = u->rho_std_im = NULL;
}

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

static double metric_f64(const struct qt_metrics *mt, enum qt_metric_id id)
{
    return *(const double *)((const char *)mt + qt_metric_descs[id].offset);
}

/* Scalar f64 metrics of the point estimate that describe the state (not the solver's own). */
static uint64_t state_metrics(const struct qt_metrics *mt)
{
    static const enum qt_metric_id solver[] = {QT_MT_GAP,       QT_MT_GAP_PER_COUNT,
                                               QT_MT_OBJECTIVE, QT_MT_RESIDUAL_NORM,
                                               QT_MT_FINAL_DN,  QT_MT_FINAL_DLL};

    uint64_t have = 0;

    for (unsigned id = 0; id < _QT_MT_MAX; id++)
        if (qt_metric_descs[id].type == QT_MTYPE_F64 && qt_metrics_has(mt, (enum qt_metric_id)id))
            have |= (uint64_t)1 << id;
    for (size_t i = 0; i < sizeof(solver) / sizeof(solver[0]); i++)
        have &= ~((uint64_t)1 << solver[i]);
    return have;
}

int qt_bootstrap(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                 const double *y, const struct qt_opts *opts, const struct qt_result *point,
                 const struct qt_boot_opts *bo, struct qt_uncertainty *out)
{
    size_t m = des->m, d = des->d, nn = d * d, N = bo->resamples, ok = 0;
    uint64_t have = state_metrics(&point->mt);
    double *vals = NULL, *z = NULL, *sre = NULL, *sim = NULL, *s2re = NULL, *s2im = NULL;
    struct qt_result res = {0};
    int r;

    memset(out, 0, sizeof(*out));
    if (N < 2 || !(bo->confidence > 0.0 && bo->confidence < 1.0))
        return QT_EOPTION;
    if (!qt_resample_is_counts(y, m))
        return -EDOM;
    vals = malloc((size_t)_QT_MT_MAX * N * sizeof(double));
    z = malloc(m * sizeof(double));
    sre = calloc(nn, sizeof(double));
    sim = calloc(nn, sizeof(double));
    s2re = calloc(nn, sizeof(double));
    s2im = calloc(nn, sizeof(double));
    r = qt_result_init(&res, d);
    if (!vals || !z || !sre || !sim || !s2re || !s2im || r < 0) {
        r = -ENOMEM;
        goto out;
    }
    for (uint32_t k = 0; k < N; k++) {
        struct qt_rng rng;

        qt_rng_stream(&rng, bo->seed, bo->sample, k);
        r = qt_resample(des, ws, bo->kind, y, point->rho, &rng, z);
        if (r == -ENOMEM)
            goto out;
        if (r == 0)
            r = qt_estimate_from(des, ws, method, z, m, opts, point->rho, &res);
        if (r == -ENOMEM)
            goto out;
        if (r < 0 || (res.mt.have & have) != have) {
            out->failed++;
            continue;
        }
        for (unsigned id = 0; id < _QT_MT_MAX; id++)
            if ((have >> id) & 1u)
                vals[(size_t)id * N + ok] = metric_f64(&res.mt, (enum qt_metric_id)id);
        for (size_t i = 0; i < nn; i++) {
            double re = creal(res.rho[i]), im = cimag(res.rho[i]);

            sre[i] += re;
            sim[i] += im;
            s2re[i] += re * re;
            s2im[i] += im * im;
        }
        ok++;
    }
    if (ok < 2) {
        r = QT_ENOCONV;
        goto out;
    }
    for (unsigned id = 0; id < _QT_MT_MAX; id++) {
        double *v = vals + (size_t)id * N, mean = 0.0, ss = 0.0;

        if (!((have >> id) & 1u))
            continue;
        for (size_t i = 0; i < ok; i++)
            mean += v[i];
        mean /= (double)ok;
        for (size_t i = 0; i < ok; i++)
            ss += (v[i] - mean) * (v[i] - mean);
        qsort(v, ok, sizeof(double), cmp_double);
        out->stats[id].std = sqrt(ss / (double)(ok - 1));
        out->stats[id].lo = percentile(v, ok, (1.0 - bo->confidence) / 2.0);
        out->stats[id].hi = percentile(v, ok, (1.0 + bo->confidence) / 2.0);
    }
    out->have = have;
    for (size_t i = 0; i < nn; i++) { /* sample std from the sums (rho elements are O(1)) */
        double k = (double)ok, vr = (s2re[i] - sre[i] * sre[i] / k) / (k - 1.0),
               vi = (s2im[i] - sim[i] * sim[i] / k) / (k - 1.0);

        s2re[i] = sqrt(vr > 0.0 ? vr : 0.0);
        s2im[i] = sqrt(vi > 0.0 ? vi : 0.0);
    }
    out->rho_std_re = s2re;
    out->rho_std_im = s2im;
    s2re = s2im = NULL;
    out->resamples = bo->resamples;
    r = 0;
out:
    qt_result_done(&res);
    free(vals);
    free(z);
    free(sre);
    free(sim);
    free(s2re);
    free(s2im);
    return r;
}

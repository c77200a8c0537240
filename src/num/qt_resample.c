/* Bootstrap resampling (qt_resample.h). */
#include "qt_resample.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "base/qt_err.h"

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void qt_rng_stream(struct qt_rng *r, uint64_t seed, uint64_t sample, uint64_t resample)
{
    uint64_t k = mix64(seed);

    k = mix64(k ^ mix64(sample ^ 0x5851f42d4c957f2dull));
    k = mix64(k ^ mix64(resample ^ 0x14057b7ef767814full));
    qt_rng_seed(r, k);
}

uint64_t qt_rng_poisson(struct qt_rng *r, double mean)
{
    uint64_t k = 0;
    double lim, p = 1.0;

    if (!(mean > 0.0) || !isfinite(mean))
        return 0;
    /* Knuth, TAOCP 3.4.1 F: the m-th arrival of a unit-rate process comes at Gamma(m); if it is
     * before `mean`, m arrivals happened and the rest of the interval is another Poisson; else
     * the first m - 1 arrivals are uniform on [0, Gamma(m)] and those before `mean` count. */
    while (mean > 16.0) {
        uint64_t m = (uint64_t)(mean * 0.875);
        double x = qt_rng_gamma(r, (double)m);

        if (x >= mean)
            return k + qt_rng_binomial(r, m - 1, mean / x);
        k += m;
        mean -= x;
    }
    lim = exp(-mean);
    for (;;) {
        p *= qt_rng_uniform(r);
        if (p <= lim)
            return k;
        k++;
    }
}

bool qt_resample_is_counts(const double *y, size_t m)
{
    for (size_t a = 0; a < m; a++)
        if (!(y[a] >= 0.0 && y[a] < 9007199254740992.0 && y[a] == floor(y[a])))
            return false;
    return true;
}

/* A design with known backgrounds: the parametric means are mu_a = s q_a + beta_a, with the
 * signal scale s that gives the signal the observed total less the total background. */
static void background_means(const struct qt_design *des, const double *y, double *q)
{
    double ysum = 0.0, bsum = 0.0, qsum = 0.0, s;

    for (size_t a = 0; a < des->m; a++) {
        ysum += y[a];
        bsum += des->background[a];
        qsum += q[a];
    }
    s = qsum > 0.0 ? fmax(ysum - bsum, 0.0) / qsum : 0.0;
    for (size_t a = 0; a < des->m; a++)
        q[a] = s * q[a] + des->background[a];
}

int qt_resample(const struct qt_design *des, struct qt_ws *ws, enum qt_resample_kind kind,
                const double *y, const double complex *rho, struct qt_rng *r, double *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t m = des->m, ng = des->n_groups;
    double *q = qt_ws_alloc_n(ws, m, sizeof(double)), *pg = qt_ws_alloc_n(ws, m, sizeof(double));
    double *cg = qt_ws_alloc_n(ws, m, sizeof(double)),
           *ntot = qt_ws_alloc_n(ws, ng, sizeof(double));
    double *qtot = qt_ws_alloc_n(ws, ng, sizeof(double));
    size_t *idx = qt_ws_alloc_n(ws, m, sizeof(size_t)),
           *start = qt_ws_alloc_n(ws, ng + 1, sizeof(size_t));
    double ysum = 0.0, qsum = 0.0;
    int ret = 0;

    if (!q || !pg || !cg || !ntot || !qtot || !idx || !start) {
        ret = -ENOMEM;
        goto out;
    }
    if (!qt_resample_is_counts(y, m)) {
        ret = QT_ENOTCOUNTS;
        goto out;
    }
    if (kind == QT_RESAMPLE_PARAMETRIC) {
        ret = qt_design_forward(des, ws, rho, q);
        if (ret < 0)
            goto out;
        for (size_t a = 0; a < m; a++)
            q[a] = q[a] > 0.0 && isfinite(q[a]) ? q[a] : 0.0;
        if (des->background)
            background_means(des, y, q);
    } else {
        memcpy(q, y, m * sizeof(double));
    }
    for (size_t a = 0; a < m; a++) {
        ysum += y[a];
        qsum += q[a];
    }
    if (!des->povm) { /* independent Poisson counts */
        double scale = kind == QT_RESAMPLE_PARAMETRIC ? (qsum > 0.0 ? ysum / qsum : 0.0) : 1.0;

        if (kind == QT_RESAMPLE_PARAMETRIC && ysum > 0.0 && !(qsum > 0.0)) {
            ret = QT_EZEROGROUP;
            goto out;
        }
        for (size_t a = 0; a < m; a++)
            out[a] = (double)qt_rng_poisson(r, q[a] * scale);
        goto out;
    }
    /* Per group: a multinomial of the group's observed total. Outcomes are sorted by group
     * (counting sort, keeping their order within a group) so that the draws are in a fixed
     * order. */
    memset(ntot, 0, ng * sizeof(double));
    memset(qtot, 0, ng * sizeof(double));
    memset(start, 0, (ng + 1) * sizeof(size_t));
    for (size_t a = 0; a < m; a++) {
        ntot[des->groups[a]] += y[a];
        qtot[des->groups[a]] += q[a];
        start[des->groups[a] + 1]++;
    }
    for (size_t g = 0; g < ng; g++)
        start[g + 1] += start[g];
    for (size_t a = 0; a < m; a++) {
        size_t t = start[des->groups[a]]++;

        idx[t] = a;
        pg[t] = q[a];
    }
    for (size_t g = ng; g > 0; g--)
        start[g] = start[g - 1];
    start[0] = 0;
    for (size_t g = 0; g < ng; g++) {
        size_t t0 = start[g], k = start[g + 1] - t0;

        if (ntot[g] > 0.0 && !(qtot[g] > 0.0)) {
            ret = QT_EZEROGROUP;
            goto out;
        }
        if (ntot[g] > 0.0)
            qt_rng_multinomial(r, (uint64_t)ntot[g], k, pg + t0, cg + t0);
        else
            memset(cg + t0, 0, k * sizeof(double));
        for (size_t t = t0; t < t0 + k; t++)
            out[idx[t]] = cg[t];
    }
out:
    qt_ws_release(ws, mark);
    return ret;
}

int qt_resample_counts_from_shots(const struct qt_design *des, struct qt_ws *ws, const double *y,
                                  uint64_t shots, double *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *tot = qt_ws_alloc_n(ws, des->n_groups, sizeof(double));
    int ret = 0;

    if (!tot)
        return -ENOMEM;
    if (shots == 0 || shots > QT_BOOT_MAX_SEED) {
        ret = QT_ENOTCOUNTS;
        goto out;
    }
    memset(tot, 0, des->n_groups * sizeof(double));
    for (size_t a = 0; a < des->m; a++) {
        if (!(y[a] >= 0.0) || !isfinite(y[a])) {
            ret = QT_ENOTCOUNTS;
            goto out;
        }
        tot[des->groups[a]] += y[a];
    }
    for (size_t a = 0; a < des->m; a++) {
        double t = tot[des->groups[a]];

        out[a] = t > 0.0 ? round((double)shots * (y[a] / t)) : 0.0;
    }
out:
    qt_ws_release(ws, mark);
    return ret;
}

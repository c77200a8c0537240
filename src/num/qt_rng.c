/* xoshiro256** (Blackman & Vigna), Marsaglia-Tsang gamma, and exact binomial sampling by
 * Devroye's beta splitting, for reproducible simulations. */
#include "qt_rng.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void qt_rng_seed(struct qt_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t qt_rng_u64(struct qt_rng *r)
{
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double qt_rng_uniform(struct qt_rng *r)
{
    return (double)(qt_rng_u64(r) >> 11) * 0x1.0p-53;
}

double qt_rng_normal(struct qt_rng *r)
{
    /* Marsaglia's polar method; the spare value is discarded to keep the state simple. */
    double u, v, s;

    do {
        u = 2.0 * qt_rng_uniform(r) - 1.0;
        v = 2.0 * qt_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

double qt_rng_gamma(struct qt_rng *r, double shape)
{
    if (shape < 1.0) {
        double u = qt_rng_uniform(r);

        return qt_rng_gamma(r, shape + 1.0) * pow(u > 0.0 ? u : 0x1.0p-53, 1.0 / shape);
    }
    double dd = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * dd);

    for (;;) {
        double x = qt_rng_normal(r), v = 1.0 + c * x, u;

        if (v <= 0.0)
            continue;
        v = v * v * v;
        u = qt_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return dd * v;
        if (u > 0.0 && log(u) < 0.5 * x * x + dd * (1.0 - v + log(v)))
            return dd * v;
    }
}

uint64_t qt_rng_binomial(struct qt_rng *r, uint64_t n, double p)
{
    uint64_t acc = 0;

    if (!(p > 0.0) || n == 0)
        return 0;
    if (p >= 1.0)
        return n;
    /* Beta splitting: the k-th smallest of n uniforms is Beta(k, n + 1 - k); count the uniforms
     * below p on whichever side of it p falls. Exact, with O(log n) gamma draws. */
    while (n > 64) {
        uint64_t k = (n + 1) / 2;
        double ga = qt_rng_gamma(r, (double)k), gb = qt_rng_gamma(r, (double)(n + 1 - k));
        double x = ga / (ga + gb);

        if (p < x) {
            n = k - 1;
            p = p / x;
        } else {
            acc += k;
            n -= k;
            p = (p - x) / (1.0 - x);
        }
        if (!(p > 0.0) || n == 0)
            return acc;
        if (p >= 1.0)
            return acc + n;
    }
    for (uint64_t i = 0; i < n; i++)
        acc += qt_rng_uniform(r) < p;
    return acc;
}

void qt_rng_multinomial(struct qt_rng *r, uint64_t n, size_t k, const double *p, double *out)
{
    double rest = 0.0;

    for (size_t i = 0; i < k; i++)
        rest += p[i] > 0.0 ? p[i] : 0.0;
    for (size_t i = 0; i < k; i++) {
        double pi = p[i] > 0.0 ? p[i] : 0.0;
        uint64_t x = 0;

        if (i + 1 == k)
            x = pi > 0.0 ? n : 0;
        else if (rest > 0.0)
            x = qt_rng_binomial(r, n, pi / rest);
        out[i] = (double)x;
        n -= x;
        rest -= pi;
    }
}

void qt_rng_state(struct qt_rng *r, size_t d, size_t rank, double complex *rho)
{
    double tr = 0.0;

    memset(rho, 0, d * d * sizeof(*rho));
    for (size_t k = 0; k < rank; k++) {
        double complex g[QT_DESIGN_MAX_D];

        for (size_t i = 0; i < d; i++) {
            /* Two draws in a fixed order (the imaginary part first, as gcc happened to
             * evaluate the former single expression): the order of evaluation of `a() + I * b()`
             * is unspecified, and clang's differed, so the same seed gave another state. */
            double im = qt_rng_normal(r), re = qt_rng_normal(r);

            g[i] = re + I * im;
        }
        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++)
                rho[i + d * j] += g[i] * conj(g[j]);
    }
    for (size_t i = 0; i < d; i++)
        tr += creal(rho[i + d * i]);
    for (size_t i = 0; i < d * d; i++)
        rho[i] /= tr;
}

int qt_rng_simulate(struct qt_rng *r, const struct qt_design *des, struct qt_ws *ws,
                    const double complex *rho, uint64_t n_per_group, double *y)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t m = des->m;
    double *q = qt_ws_alloc_n(ws, m, sizeof(double)), *sum = NULL;
    size_t *idx = NULL, *start = NULL;
    double *pg = NULL, *cg = NULL;
    int ret = 0;

    if (!q) {
        ret = -ENOMEM;
        goto out;
    }
    ret = qt_design_forward(des, ws, rho, q);
    if (ret < 0)
        goto out;
    sum = qt_ws_alloc_n(ws, des->n_groups, sizeof(double));
    start = qt_ws_alloc_n(ws, des->n_groups + 1, sizeof(size_t));
    idx = qt_ws_alloc_n(ws, m, sizeof(size_t));
    pg = qt_ws_alloc_n(ws, m, sizeof(double));
    cg = qt_ws_alloc_n(ws, m, sizeof(double));
    if (!sum || !start || !idx || !pg || !cg) {
        ret = -ENOMEM;
        goto out;
    }
    memset(sum, 0, des->n_groups * sizeof(double));
    memset(start, 0, (des->n_groups + 1) * sizeof(size_t));
    for (size_t a = 0; a < m; a++) {
        q[a] = q[a] > 0.0 ? q[a] : 0.0;
        sum[des->groups[a]] += q[a];
        start[des->groups[a] + 1]++;
    }
    for (size_t g = 0; g < des->n_groups; g++)
        start[g + 1] += start[g];
    /* Counting sort of the outcomes by group, keeping outcome order within a group. */
    for (size_t a = 0; a < m; a++) {
        size_t g = des->groups[a], t = start[g]++;

        idx[t] = a;
        pg[t] = sum[g] > 0.0 ? q[a] / sum[g] : 0.0;
    }
    for (size_t g = des->n_groups; g > 0; g--)
        start[g] = start[g - 1];
    start[0] = 0;
    for (size_t g = 0; g < des->n_groups; g++) {
        size_t t0 = start[g], k = start[g + 1] - t0;

        if (n_per_group)
            qt_rng_multinomial(r, n_per_group, k, pg + t0, cg + t0);
        for (size_t t = t0; t < t0 + k; t++)
            y[idx[t]] = n_per_group ? cg[t] : pg[t];
    }
out:
    qt_ws_release(ws, mark);
    return ret;
}

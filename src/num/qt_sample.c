/* Per-group normalisation of raw samples with error reporting by row and group. */
#include "qt_sample.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Describes group g as "group g (rows a-b)" when its rows are contiguous, else "group g". */
static void group_text(const struct qt_design *des, size_t g, char *buf, size_t len)
{
    size_t first = SIZE_MAX, last = 0, count = 0;

    for (size_t a = 0; a < des->m; a++)
        if (des->groups[a] == g) {
            first = QT_MIN(first, a);
            last = a;
            count++;
        }
    if (count && last - first + 1 == count)
        (void)snprintf(buf, len, "group %zu (rows %zu-%zu)", g, first + 1, last + 1);
    else
        (void)snprintf(buf, len, "group %zu", g);
}

/* Per-group sums. Designs whose groups are contiguous runs of equal length (every built-in one)
 * use plain loops, which vectorise; others accumulate through the group index. */
QT_CLONES static void group_sums(const struct qt_design *des, const double *y, double *sum)
{
    size_t L = des->group_len;

    if (L) {
        for (size_t g = 0; g < des->n_groups; g++) {
            double s = 0.0;

            for (size_t k = 0; k < L; k++)
                s += y[g * L + k];
            sum[g] = s;
        }
        return;
    }
    memset(sum, 0, des->n_groups * sizeof(double));
    for (size_t a = 0; a < des->m; a++)
        sum[des->groups[a]] += y[a];
}

/* f_a = y_a / s_g(a), a true division as the origin does (multiplying by 1/s would change last
 * bits); multi-versioned so that wide CPUs divide 8 values at a time. */
QT_CLONES static void divide(const struct qt_design *des, const double *y, const double *sum,
                             double *f)
{
    size_t L = des->group_len;

    if (L) {
        for (size_t g = 0; g < des->n_groups; g++)
            for (size_t k = 0; k < L; k++)
                f[g * L + k] = y[g * L + k] / sum[g];
        return;
    }
    for (size_t a = 0; a < des->m; a++)
        f[a] = y[a] / sum[des->groups[a]];
}

int qt_sample_normalise(const struct qt_design *des, const double *y, size_t n, double tolerance,
                        double *f, struct qt_sample_info *info, struct qt_diag *reterr)
{
    size_t m = des->m, G = des->n_groups;
    struct qt_sample_info inf = {false, 0.0};
    double stack_sum[256], *sum = stack_sum;

    if (n != m)
        return qt_diag_set(reterr, QT_ESAMPLELEN, 0, 0,
                           "sample has %zu values, design '%s' at d = %zu has %zu outcomes", n,
                           des->name, des->d, m);
    /* One branch-free pass that vectorises; the offending row is located only on failure. */
    bool finite = true;
    for (size_t a = 0; a < m; a++) {
        finite &= isfinite(y[a]);
        inf.negative |= y[a] < 0.0;
        inf.total += y[a];
    }
    if (!finite)
        for (size_t a = 0; a < m; a++)
            if (!isfinite(y[a]))
                return qt_diag_set(reterr, QT_ENONFINITE, (unsigned)(a + 1), 0,
                                   "value in row %zu is %s", a + 1,
                                   isnan(y[a]) ? "missing or NaN" : "infinite");
    if (G > QT_ARRAY_SIZE(stack_sum)) {
        sum = malloc(G * sizeof(double));
        if (!sum)
            return -ENOMEM;
    }
    group_sums(des, y, sum);
    for (size_t g = 0; g < G; g++) {
        /* Finite values can sum past DBL_MAX: every frequency would then be 0 and the state
         * the maximally mixed one, reported as a result. The estimators also sum whole samples
         * (the MLE's weights), so the total must be finite too. */
        bool gover = !isfinite(sum[g]), over = gover || !isfinite(inf.total);
        char text[64];

        if (!over && !(fabs(sum[g]) <= tolerance)) /* numpy.isclose(s, 0, atol=tolerance) */
            continue;
        group_text(des, g, text, sizeof(text));
        if (sum != stack_sum)
            free(sum);
        if (gover)
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                               "%s sums past the largest double (overflow); scale the sample "
                               "down",
                               text);
        if (over)
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                               "the sample's values sum past the largest double (overflow); "
                               "scale the sample down");
        return qt_diag_set(reterr, QT_EZEROGROUP, 0, 0, "%s sums to zero; cannot normalise", text);
    }
    if (f)
        divide(des, y, sum, f);
    if (sum != stack_sum)
        free(sum);
    *info = inf;
    return 0;
}

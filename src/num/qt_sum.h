/* Compensated (Neumaier) summation, for sums over millions of outcomes whose rounding would
 * otherwise hide the changes an optimiser must see. Needs strict IEEE evaluation (no
 * -ffast-math). */
#pragma once

#include <math.h>

struct qt_sum {
    double s, c; /* running sum and its lost low-order part */
};

static inline void qt_sum_add(struct qt_sum *a, double x)
{
    double t = a->s + x;

    a->c += fabs(a->s) >= fabs(x) ? (a->s - t) + x : (x - t) + a->s;
    a->s = t;
}

static inline double qt_sum_value(const struct qt_sum *a)
{
    return a->s + a->c;
}

/* bench-fmt: ns per double of qt_fmt_double (Dragonbox shortest digits, issue 19)
 * against the formatter it replaced (tests/support/qt_fmt_ref.c: snprintf at increasing
 * precision, read back with strtod_l) and, for scale, plain snprintf("%.17g"), on a fixed
 * sample of record-like numbers (not a test). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "io/qt_json.h"
#include "qt_fmt_ref.h"

#define COUNT 4096
#define REPS  7

/* What a linear/mle record holds: density-matrix entries and metrics with all 53 bits
 * (60%), imaginary parts and eigenvalues that are zero up to rounding (15%), counts (15%) and
 * short decimals from the input (10%), each sign. Fixed LCG, so every run times the same. */
static void record_like(double *x, size_t n)
{
    uint64_t s = 19;

    for (size_t i = 0; i < n; i++) {
        uint64_t r, q;

        s = s * 6364136223846793005u + 1442695040888963407u;
        r = s;
        s = s * 6364136223846793005u + 1442695040888963407u;
        q = s >> 33;
        double u = (double)(r >> 11) * 0x1p-53, v;

        switch (q % 20) {
        case 0: case 1: case 2:
            v = u * 1e-16; /* rounding noise */
            break;
        case 3: case 4: case 5:
            v = (double)(q % 100000); /* counts */
            break;
        case 6: case 7:
            v = (double)(q % 1000) / 1000.0;
            break;
        default:
            v = u;
        }
        x[i] = (r & 1) ? -v : v;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static size_t fmt_new(double x, char *out)
{
    return qt_fmt_double(x, out, 48);
}

static size_t fmt_old(double x, char *out)
{
    return qt_fmt_double_ref(x, out, 48);
}

static size_t fmt_printf(double x, char *out)
{
    return (size_t)snprintf(out, 48, "%.17g", x);
}

/* Median over REPS passes of the ns per double; sink keeps the calls alive. */
static double time_fmt(size_t (*fmt)(double, char *), const double *x, size_t *sink)
{
    double t[REPS];

    for (int r = 0; r < REPS; r++) {
        double t0 = qt_bench_now();
        char out[48];

        for (size_t i = 0; i < COUNT; i++)
            *sink += fmt(x[i], out);
        t[r] = (qt_bench_now() - t0) / COUNT * 1e9;
    }
    qsort(t, REPS, sizeof(double), cmp_double);
    return t[REPS / 2];
}

int main(void)
{
    static double x[COUNT];
    size_t sink = 0, diff = 0;
    double t_old, t_new, t_pf;

    record_like(x, COUNT);
    for (size_t i = 0; i < COUNT; i++) {
        char a[48], b[48];

        (void)fmt_new(x[i], a);
        (void)fmt_old(x[i], b);
        diff += strcmp(a, b) != 0;
    }
    t_old = time_fmt(fmt_old, x, &sink);
    t_new = time_fmt(fmt_new, x, &sink);
    t_pf = time_fmt(fmt_printf, x, &sink);
    printf("# %d record-like doubles, median of %d passes (%zu differ between old and new)\n",
           COUNT, REPS, diff);
    printf("%-34s %10s\n", "formatter", "ns/double");
    printf("%-34s %10.1f\n", "old: snprintf+strtod_l search", t_old);
    printf("%-34s %10.1f\n", "new: Dragonbox + layout", t_new);
    printf("%-34s %10.1f\n", "snprintf(\"%.17g\") (not shortest)", t_pf);
    printf("# speedup %.1fx (sink %zu)\n", t_old / t_new, sink % 10);
    return diff != 0;
}

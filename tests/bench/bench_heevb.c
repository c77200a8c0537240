/* bench-heevb: time per matrix of qt_heev_batch against a loop of qt_zheev (with vectors) on
 * random Hermitian and density matrices, n = 2..64, 1024 matrices each (not a test). */
#include <complex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "num/qt_heevb.h"
#include "num/qt_lapack.h"
#include "num/qt_rng.h"

#define COUNT 1024
#define REPS  7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *t)
{
    qsort(t, REPS, sizeof(double), cmp_double);
    return t[REPS / 2];
}

/* Median over REPS passes of the seconds per matrix for (LAPACK loop, batch). */
static int time_n(struct qt_ws *ws, size_t n, const double complex *A, double complex *V, double *w,
                  double *ret_loop, double *ret_batch)
{
    double tl[REPS], tb[REPS];

    for (int r = 0; r < REPS; r++) {
        double t0 = qt_bench_now();

        for (size_t k = 0; k < COUNT; k++) {
            memcpy(V + k * n * n, A + k * n * n, n * n * sizeof(*V));
            if (qt_zheev(ws, true, n, V + k * n * n, n, w + k * n) < 0)
                return -1;
        }
        double t1 = qt_bench_now();
        if (qt_heev_batch(ws, n, COUNT, A, V, w) < 0)
            return -1;
        double t2 = qt_bench_now();
        tl[r] = (t1 - t0) / COUNT;
        tb[r] = (t2 - t1) / COUNT;
    }
    *ret_loop = median(tl);
    *ret_batch = median(tb);
    return 0;
}

/* COUNT matrices of one kind: random Hermitian with standard normal entries, or random
 * density matrices of rank 1, 2 and n in turn (what linear inversion estimates look like). */
static void fill(struct qt_rng *rng, bool states, size_t n, double complex *A)
{
    for (size_t k = 0; k < COUNT; k++) {
        double complex *a = A + k * n * n;

        if (states) {
            qt_rng_state(rng, n, k % 3 == 0 ? 1 : k % 3 == 1 ? QT_MIN(n, (size_t)2) : n, a);
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            a[j + j * n] = qt_rng_normal(rng);
            for (size_t i = j + 1; i < n; i++) {
                a[i + j * n] = qt_rng_normal(rng) + I * qt_rng_normal(rng);
                a[j + i * n] = conj(a[i + j * n]);
            }
        }
    }
}

int main(int argc, char **argv)
{
    static const size_t dims[] = {2, 4, 8, 16, 32, 64};
    const size_t nmax = 64;
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    double complex *A = malloc(COUNT * nmax * nmax * sizeof(*A));
    double complex *V = malloc(COUNT * nmax * nmax * sizeof(*V));
    double *w = malloc(COUNT * nmax * sizeof(*w));
    const char *ct, *simd = "portable";

    (void)argc;
    qt_bench_blas_env(argv);
    ct = getenv("OPENBLAS_CORETYPE");
    if (!A || !V || !w)
        return 1;
#if defined(__x86_64__)
    simd = __builtin_cpu_supports("avx512f") ? "AVX-512" : "SSE2";
#endif
    printf("OpenBLAS core %s, OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s; batch kernel %s\n",
           qt_blas_corename(), ct ? ct : "(unset)", getenv("OPENBLAS_NUM_THREADS"), simd);
    printf("per matrix, median of %d passes; qt_zheev with vectors vs qt_heev_batch\n", REPS);
    printf("%-9s %4s %8s | %12s %12s %8s\n", "matrices", "n", "count", "zheev loop", "heev_batch",
           "speedup");
    qt_rng_seed(&rng, 1);
    for (int states = 0; states < 2; states++)
        for (size_t t = 0; t < sizeof(dims) / sizeof(dims[0]); t++) {
            size_t n = dims[t];
            double tl, tb;

            fill(&rng, states, n, A);
            if (time_n(&ws, n, A, V, w, &tl, &tb) < 0) {
                fprintf(stderr, "bench-heevb: n = %zu failed\n", n);
                return 1;
            }
            printf("%-9s %4zu %8d | %9.2f us %9.2f us %7.1fx\n", states ? "states" : "hermitian", n,
                   COUNT, tl * 1e6, tb * 1e6, tl / tb);
            fflush(stdout);
        }
    free(A);
    free(V);
    free(w);
    qt_ws_done(&ws);
    return 0;
}

/* Shared by the benchmark programs (bench_common.h). */
#include "bench_common.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "num/qt_lapack.h"

double qt_bench_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void qt_bench_blas_env(char **argv)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");
    bool again = false;

    if (!getenv("OPENBLAS_NUM_THREADS")) {
        (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
        again = true;
    }
    if (!ct && (ct = qt_blas_coretype_advice())) {
        (void)setenv("OPENBLAS_CORETYPE", ct, 1);
        again = true;
    }
    if (again)
        execv("/proc/self/exe", argv);
}

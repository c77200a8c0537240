/* What the benchmark programs share: a monotonic clock, and the product's BLAS policy. */
#pragma once

/* Seconds on CLOCK_MONOTONIC. */
double qt_bench_now(void);

/* Same policy as the product: one BLAS thread per caller thread and the kernels this CPU
 * supports (qt_blas_coretype_advice). Both must be in the environment before OpenBLAS
 * initialises, so the program re-executes itself (argv) when it had to set either. */
void qt_bench_blas_env(char **argv);

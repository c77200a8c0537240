/* The only gateway to BLAS and LAPACK (OpenBLAS + LAPACKE). Matrices are column-major
 * double complex (or double); sizes are size_t and are range-checked here, once.
 * Workspaces come from a caller-owned struct qt_ws, so the wrappers never allocate in a
 * steady state. Thread-compatible: one workspace per thread. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

/* op(A) selector for the GEMM wrappers: 'N' (none), 'T' (transpose), 'C' (conjugate transpose). */

/* C = alpha*op(A)*op(B) + beta*C, where op(A) is m x k and op(B) is k x n.
 * Dimensions must fit in an int (callers size their data from validated designs). */
void qt_zgemm(char ta, char tb, size_t m, size_t n, size_t k, double complex alpha,
              const double complex *A, size_t lda, const double complex *B, size_t ldb,
              double complex beta, double complex *C, size_t ldc);
void qt_dgemm(char ta, char tb, size_t m, size_t n, size_t k, double alpha, const double *A,
              size_t lda, const double *B, size_t ldb, double beta, double *C, size_t ldc);
/* y = alpha*op(A)*x + beta*y with A m x n. */
void qt_zgemv(char ta, size_t m, size_t n, double complex alpha, const double complex *A,
              size_t lda, const double complex *x, double complex beta, double complex *y);

/* Eigen-decomposition of the Hermitian n x n matrix A (lower triangle read). Eigenvalues go to
 * w in ascending order; with vectors, A is overwritten by the orthonormal eigenvectors
 * (column i belongs to w[i]), otherwise A is destroyed.
 * Returns 0, -ENOMEM, QT_ETOOBIG or QT_ELAPACK. */
QT_NODISCARD int qt_zheev(struct qt_ws *ws, bool vectors, size_t n, double complex *A, size_t lda,
                          double *w);

/* Singular values (descending) of the m x n matrix A, which is destroyed. s holds min(m, n). */
QT_NODISCARD int qt_zsvd_values(struct qt_ws *ws, size_t m, size_t n, double complex *A, size_t lda,
                                double *s);

/* Thin SVD A = U diag(s) VH with U m x r, VH r x n, r = min(m, n). A is destroyed. */
QT_NODISCARD int qt_zsvd(struct qt_ws *ws, size_t m, size_t n, double complex *A, size_t lda,
                         double *s, double complex *U, size_t ldu, double complex *VH, size_t ldvh);

/* Cholesky factorisation of the Hermitian matrix A (lower). Returns 0 when A is positive
 * definite, 1 when it is not (A is then garbage), QT_ETOOBIG for oversized input. */
QT_NODISCARD int qt_zpotrf(size_t n, double complex *A, size_t lda);

/* Solves the real symmetric positive definite system A X = B (A n x n, B n x nrhs).
 * Returns 0, 1 when A is not positive definite, or QT_ETOOBIG. */
QT_NODISCARD int qt_dposv(size_t n, size_t nrhs, double *A, size_t lda, double *B, size_t ldb);

/* Name of the kernel set OpenBLAS chose at load time ("Haswell", "Prescott", ...). */
const char *qt_blas_corename(void);

/* The OPENBLAS_CORETYPE this CPU should run with when OpenBLAS picked a slower kernel set than
 * the CPU supports (OpenBLAS 0.3.21 falls back to generic kernels on CPUs newer than it), or
 * NULL when the current choice is already right. Pure query: it reads CPUID and OpenBLAS
 * state and never touches the environment; programs apply it before OpenBLAS loads
 * (see qt_blas_env_fix in the program sources). */
const char *qt_blas_coretype_advice(void);

/* Runs BLAS on one thread from now on (a program's choice, never made by the library): the
 * reduction order, and so the last bits of results, then match qtomod's workers, which run
 * with OPENBLAS_NUM_THREADS=1. */
void qt_blas_single_thread(void);

/* Batched eigen-decomposition of many small Hermitian matrices, vectorised across matrices
 * (one SIMD lane per matrix); the per-sample physicalisation step of batched tomography. */
#pragma once

#include <complex.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

/* Largest n the SIMD path handles; larger matrices go through qt_zheev one at a time. The
 * SIMD path is 3.5x faster than zheevd at n = 64 and still 2x at 128, but its scratch grows as
 * 512 n^2 bytes (2 MiB at n = 64), so the cap keeps the workspace modest. */
#define QT_HEEVB_NMAX 64

/* Eigen-decomposes `count` Hermitian n x n matrices. A holds them back to back, each
 * column-major with leading dimension n (matrix k at A + k*n*n; only the lower triangle is
 * read, and the imaginary parts of the diagonal are ignored, as LAPACK does). On success V
 * (same layout) holds orthonormal eigenvectors (column i for w[k*n + i]) and w the eigenvalues,
 * ascending per matrix. A is not modified; V must not overlap A.
 *
 * Returns 0, -ENOMEM, or QT_ELAPACK when some matrix did not converge (non-finite input). On
 * QT_ELAPACK every other matrix is still decomposed correctly; the failed ones have NaN in all
 * of their w and V entries, so callers can find them and fall back to qt_zheev per matrix.
 * After -ENOMEM, V and w are unspecified.
 *
 * The algorithm and its accuracy are LAPACK's (Householder tridiagonalisation and implicit QL
 * with vectors, as in zhetrd + zsteqr): eigenvalues agree with zheevd to ~1e-15 ||A||, and
 * orthogonality and residuals are within a small factor of zheevd's own (1-3x on random
 * matrices, up to 5x on strongly graded ones at n = 64). Each matrix's result does not
 * depend on the rest of the batch (bit for bit on a given CPU). Scratch comes from ws, which is
 * released before returning; nothing else is allocated. n <= QT_HEEVB_NMAX runs the SIMD path,
 * 16 matrices at a time (AVX-512 where the CPU has it, SSE2 otherwise); count need not be a
 * multiple of 16. */
QT_NODISCARD int qt_heev_batch(struct qt_ws *ws, size_t n, size_t count, const double complex *A,
                               double complex *V, double *w);

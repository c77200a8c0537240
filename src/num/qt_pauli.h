/* Pauli-design kernels, applied qubit by qubit (private to src/num).
 *
 * Layouts: an outcome vector is indexed a = s * 2^n + o with the setting
 * s = sum_k s_k 3^(n-1-k) over {X=0, Y=1, Z=2} and the outcome bits o = sum_k o_k 2^(n-1-k)
 * (qubit 0 is the leftmost Kronecker factor and the most significant digit; o_k = 0 is the +1
 * eigenstate). Density matrices are column-major d x d, d = 2^n.
 *
 * Each map is a product of n per-qubit 6x4 or 4x6 transfer matrices (mode products on the
 * interleaved tensor), so a map costs O(n 6^n) instead of O(24^n) for dense d x d unitaries
 * or O(36^n) for a dense m x d^2 matrix. */
#pragma once

#include <complex.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

/* q_a = Re Tr(Pi_a rho) for Hermitian rho. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_pauli_forward(unsigned n, struct qt_ws *ws, const double complex *rho,
                                  double *q);

/* out = sum_a w_a Pi_a. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_pauli_adjoint(unsigned n, struct qt_ws *ws, const double *w,
                                  double complex *out);

/* The forward and adjoint maps times `scale`, with the outcome vector in the kernels' native
 * order (the interleaved tensor's: outcome o of setting s at sum_k (2 s_k + o_k) 6^(n-1-k)),
 * which saves the permutation and a pass over m entries on each call; solvers that only sum
 * over outcomes permute their data once with qt_pauli_to_native. Return 0 or -ENOMEM. */
QT_NODISCARD int qt_pauli_forward_native(unsigned n, struct qt_ws *ws, const double complex *rho,
                                         double scale, double *q);
QT_NODISCARD int qt_pauli_adjoint_native(unsigned n, struct qt_ws *ws, const double *w,
                                         double scale, double complex *out);
QT_NODISCARD int qt_pauli_to_native(unsigned n, struct qt_ws *ws, const double *v, double *out);

/* rho = sum_a f_a D_a with the dual frame D_{s,o} = (x)_k (I/6 + (-1)^o_k sigma_{s_k} / 2):
 * the minimum-norm least-squares inverse of the Pauli measurement map. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_pauli_dual(unsigned n, struct qt_ws *ws, const double *f, double complex *rho);

/* qt_pauli_dual for S samples at once: F is 6^n x S (leading dimension ldf), rho is d^2 x S.
 * The sample index is innermost in the work tensors, so each qubit's update is a long
 * vectorisable loop. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_pauli_dual_batch(unsigned n, struct qt_ws *ws, size_t S, const double *F,
                                     size_t ldf, double complex *rho);

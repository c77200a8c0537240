/* The estimators: one method on one sample, and linear inversion of a batch. The methods, their
 * options, the metric table and the result record are in num/qt_result.h (included here).
 *
 * Thread-compatible: every call takes its own workspace; designs are shared read-only. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_result.h"

/* An upper bound of the workspace (bytes of the arena's peak) qt_estimate takes on one sample
 * of a design with m outcomes in dimension d, over the methods marked in methods[] (run one
 * after another in the same arena, as a worker does): per method a * 8m + b * 16d^2 + 1 MiB,
 * with (a, b) = (8, 20) linear, (20, 50) mle and wls, (10, 40) rhor. The coefficients are 1.2-3x
 * the peaks measured on every built-in kind, pure and mixed states, d = 2..64 and pauli up to 8
 * qubits (test_memory holds them to that). Designs with backgrounds (detector models) are not
 * covered. Saturates at UINT64_MAX. */
uint64_t qt_estimate_ws_bound(size_t d, size_t m, const bool methods[_QT_METHOD_MAX]);

/* Runs one method on one sample y (des->m raw values: counts, powers or probabilities). The
 * iterative methods (mle, wls, and rhor with warm_start) start from the linear estimate: pass
 * its physical rho as start when it is at hand (for instance from a linear result of the same
 * sample), or NULL to have it computed.
 * Sample problems (wrong length, non-finite or negative values, a group summing to zero) are
 * reported in res->err / res->errmsg and returned; the function never aborts on bad data.
 * Designs with known backgrounds (des->background, from a detector model): linear inverts
 * y - beta (negative corrected values warn negative_input); mle maximises the Poisson
 * likelihood of mu_a = I Tr(E_a rho) + beta_a (num/qt_est_mlebg.h) and reports its certificate
 * as gap (log-likelihood units), that model's log_likelihood sum [y ln mu - mu] and chi2, and
 * ignores start; wls and rhor refuse them (QT_EMETHOD).
 * Returns 0 on success or the negative error also stored in res->err. */
QT_NODISCARD int qt_estimate(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                             const double *y, size_t n, const struct qt_opts *opts,
                             struct qt_result *res);
QT_NODISCARD int qt_estimate_from(const struct qt_design *des, struct qt_ws *ws,
                                  enum qt_method method, const double *y, size_t n,
                                  const struct qt_opts *opts, const double complex *start,
                                  struct qt_result *res);

/* Linear inversion of n samples at once (one GEMM for the inversion). Y is des->m x n
 * column-major with leading dimension ldy; res[0..n) must be initialised for des->d. Per-sample
 * errors go to res[i]. Backgrounds are subtracted as in qt_estimate. Returns 0, or -ENOMEM when the batch itself could not run. */
QT_NODISCARD int qt_estimate_linear_batch(const struct qt_design *des, struct qt_ws *ws, size_t n,
                                          const double *Y, size_t ldy, const struct qt_opts *opts,
                                          struct qt_result *res);

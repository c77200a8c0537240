/* Deterministic pseudo-random numbers and random quantum states for tests, simulated example
 * data and benchmarks (xoshiro256** seeded by splitmix64; exact binomial/multinomial sampling).
 * Not for cryptography. One generator per thread. */
#pragma once

#include <complex.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"

struct qt_rng {
    uint64_t s[4];
};

void qt_rng_seed(struct qt_rng *r, uint64_t seed);
uint64_t qt_rng_u64(struct qt_rng *r);
double qt_rng_uniform(struct qt_rng *r);             /* in [0, 1), 53 random bits */
double qt_rng_normal(struct qt_rng *r);              /* standard normal */
double qt_rng_gamma(struct qt_rng *r, double shape); /* shape > 0, scale 1 */

/* Exact binomial(n, p) sample, O(log n) work. */
uint64_t qt_rng_binomial(struct qt_rng *r, uint64_t n, double p);

/* Multinomial sample of n draws over k probabilities (non-negative, any sum > 0) into out. */
void qt_rng_multinomial(struct qt_rng *r, uint64_t n, size_t k, const double *p, double *out);

/* A random density matrix of rank `rank` (1 = Haar-random pure state; d = full rank, the
 * Hilbert-Schmidt/Ginibre ensemble): rho = G G^H / Tr, G a d x rank complex Gaussian. rho is
 * d x d column-major. */
void qt_rng_state(struct qt_rng *r, size_t d, size_t rank, double complex *rho);

/* Simulated data for a design: per group g, n_per_group multinomial counts drawn from the
 * group-normalised probabilities Tr(E_a rho) / sum_{b in g} Tr(E_b rho). With n_per_group = 0
 * the exact probabilities are written instead. y has des->m entries. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_rng_simulate(struct qt_rng *r, const struct qt_design *des, struct qt_ws *ws,
                                 const double complex *rho, uint64_t n_per_group, double *y);

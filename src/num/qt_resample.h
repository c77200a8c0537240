/* Bootstrap resampling (issue 16): one resample of a sample's counts, drawn from a random stream
 * that depends only on (seed, sample index, resample index), so that the same seed gives the
 * same resamples whatever the worker count, chunking, retries, daemon or --local.
 *
 *  - data: designs whose groups are POVMs (des->povm) get, per group g, a multinomial draw of
 *    the group's observed total n_g = sum_{a in g} y_a over the observed frequencies y_a / n_g;
 *    the others get an independent Poisson draw of mean y_a per outcome.
 *  - parametric: the same, from the estimate's predicted probabilities q_a = Tr(E_a rho): per
 *    POVM group a multinomial of n_g over q_a / sum_{b in g} q_b; otherwise Poisson of mean
 *    q_a * (sum y) / (sum q) (the Poisson likelihood's fitted intensity). A design with known
 *    backgrounds (des->background) first takes q_a -> s q_a + beta_a, s = max(sum y - sum beta,
 *    0) / sum q: the signal gets the observed total less the background's.
 *
 * Counts must be whole numbers: data given as probabilities or powers cannot be resampled
 * without a count (the caller converts them with its --shots first). */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_rng.h"
#include "num/qt_uncert.h"


/* Seeds r with the stream of resample `resample` of sample `sample` under `seed`: the three are
 * mixed by splitmix64 (a counter-based construction), so that streams are independent of the
 * order in which they are made. */
void qt_rng_stream(struct qt_rng *r, uint64_t seed, uint64_t sample, uint64_t resample);

/* Exact Poisson(mean) sample (mean >= 0, finite): inversion below 16, above it the
 * gamma/binomial recursion (Ahrens & Dieter), O(log mean) work. */
uint64_t qt_rng_poisson(struct qt_rng *r, double mean);

/* Whether y holds whole non-negative numbers below 2^53 (counts that can be resampled). */
bool qt_resample_is_counts(const double *y, size_t m);

/* One resample of y (des->m counts) into out (des->m). rho (d x d) is needed for parametric
 * only. Returns 0, QT_ENOTCOUNTS when y is not counts (see above), QT_EZEROGROUP when a group with
 * counts has no probability to draw them from, or -ENOMEM. */
QT_NODISCARD int qt_resample(const struct qt_design *des, struct qt_ws *ws,
                             enum qt_resample_kind kind, const double *y, const double complex *rho,
                             struct qt_rng *r, double *out);

/* Data given as probabilities or powers, turned into counts for resampling: each outcome gets
 * round(shots * y_a / sum_{b in its group} y_b), i.e. `shots` counts per group in the observed
 * proportions (a group that sums to 0 gets 0). Returns 0, QT_ENOTCOUNTS when y has a negative or
 * non-finite value or shots is 0 or above 2^52. */
QT_NODISCARD int qt_resample_counts_from_shots(const struct qt_design *des, struct qt_ws *ws,
                                               const double *y, uint64_t shots, double *out);

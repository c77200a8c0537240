/* Maximum likelihood with known backgrounds and an unknown intensity, with a certificate
 * (issue 18).
 *
 * Model. Counts y_a (a = 1..m) are independent Poisson with mean
 *   mu_a(sigma) = Tr(F_a sigma) + beta_a,
 * F_a >= 0 the known effective elements (efficiencies, crosstalk and setting intensities already
 * folded in), beta_a >= 0 the known backgrounds, sigma = I rho >= 0 with no trace constraint
 * (rho the state, I the unknown overall intensity). The log-likelihood, without the constant
 * -sum_a ln y_a!, is
 *   L(sigma) = sum_a [y_a ln mu_a(sigma) - mu_a(sigma)],
 * concave in sigma. qt_mlebg finds sigma^ = argmax over sigma >= 0 and reports rho^ =
 * sigma^ / Tr sigma^, I^ = Tr sigma^ and gap >= max L - L(sigma^).
 *
 * Certificate. Let H = sum_a F_a = U diag(h) U^H, S its support (h > 1e-10 h_max), B =
 * U_S diag(h_S)^(-1/2), and for a sigma >= 0 let G = sum_a (y_a / mu_a - 1) F_a (the gradient
 * of L) and G~ = B^H G B. Every F_a vanishes off S (F_a <= H), so only the part of sigma on S
 * matters and the optimum sigma* may be taken there, sigma* = B s* B^H with s* >= 0 and
 * Tr s* = Tr(H sigma*).
 *  1. Concavity: L(sigma*) - L(sigma) <= <G, sigma* - sigma> = <G~, s*> - <G, sigma>.
 *  2. <G~, s*> <= max(lambda_max(G~), 0) Tr s*, because s* >= 0.
 *  3. Tr s* = Tr(H sigma*) = sum_a Tr(F_a sigma*) <= Y = sum_a y_a: at the optimum the
 *     derivative along the ray s -> s sigma* vanishes at s = 1, so
 *     sum_a Tr(F_a sigma*) = sum_a y_a Tr(F_a sigma*) / mu_a* <= sum_a y_a (as beta_a >= 0).
 * Hence
 *   gap(sigma) = Y max(lambda_max(B^H G B), 0) - <G, sigma>   >=   max L - L(sigma),
 * with <G, sigma> = sum_a (y_a - mu_a) Tr(F_a sigma) / mu_a. This is the whitened form of the
 * cruder Y max(lambda_max(G), 0) / h_min - <G, sigma>, and never larger than it. At the optimum
 * G~ <= 0 and <G, sigma> = 0, so the gap goes to zero as sigma -> sigma*; it is valid for any
 * sigma >= 0, optimal or not. Assumption: H has no eigenvalues in (0, 1e-10 h_max] (true for
 * any informationally complete design with efficiencies of similar size, and for elements that
 * all live on a subspace); directions that weak are treated as outside the support.
 * Floating point: the bound is first order in the distance to the optimum, so a sigma stored
 * in double (relative error eps) cannot be certified below ~eps Y (2e-9 at 10^7 counts). The
 * data terms (Tr(F_a sigma), mu_a, <G, sigma>, L) are summed in long double; lambda_max comes
 * from LAPACK in double. A result slightly below zero is rounding, not a contradiction.
 * The floor grows when some mu_a is far smaller than the counts elsewhere (|sigma| / mu_a
 * large: Tr(F_a sigma) cancels): with beta = 0 and a nearly pure estimate, gaps of a few 1e-9
 * at 10^6-10^7 counts are the best a double sigma admits. Backgrounds keep mu_a >= beta_a and
 * the floor near 1e-10 (measured: 288 data sets, each fitted with and without beta; mub and
 * pauli, d = 2 and 4; pure, 90 % pure and random mixed states; 10^6-10^7 counts;
 * 2 % backgrounds: max 6e-9 with beta, 1e-8 with beta ignored on pure states).
 *
 * Algorithm. In the whitened coordinates s (sigma = B s B^H, mu_a = Tr(F~_a s) + beta_a with
 * F~_a = B^H F_a B, sum_a F~_a = I) the problem is posed over density matrices omega of
 * dimension ds + 1 (ds = |S|): the upper ds x ds block of omega is s / (2Y) and the last
 * diagonal entry a slack, so the domain is {s >= 0, Tr s <= 2Y}, whose trace bound the optimum
 * never reaches (3.). The objective per count, sum_a [p_a - w_a - w_a ln(p_a / w_a)]
 * with w_a = y_a / Y and p_a = mu_a / Y (half the Poisson deviance over Y: zero for a perfect
 * fit, so its rounding is relative to the remaining misfit, not to L), is then a sum of
 * functions of linear maps of omega, and the trust-region Newton solver of qt_newton.h
 * minimises it unchanged. Iterations stop when gap / Y <= gap_tol, and continue ("polish")
 * while the gap still halves, down to 1e-3 gap_tol, as qt_est_mle does. Then, in the original
 * coordinates: sigma is rescaled to the exact maximum of L along its ray (1-D Newton in long
 * double), and, for d <= 16, up to three full Newton steps of L over Hermitian matrices
 * (gradient in long double, Hessian sum_a y_a / mu_a^2 |F_a><F_a| on d^2 real coordinates) are
 * taken while the step stays PSD and lowers the certificate. The solver optimises the whitened
 * elements as rounded once, a model a few eps away; without these steps that shows as gaps of
 * ~1e-8 at 10^7 counts, with them ~1e-10 (measured on mub and pauli, d = 2 and 4).
 *
 * With beta = 0 the profile over I of L is sum_a y_a ln(q_a / sum_b q_b) + const, q_a =
 * Tr(F_a rho): rho^ is the estimate qt_estimate(QT_METHOD_MLE) gives on the (non-POVM) custom
 * design of the elements F_a, and I^ = Y / Tr(H rho^).
 *
 * All matrices are column-major double complex; F is d^2 x m, column a = vec(F_a) (Hermitian
 * PSD, not checked beyond what the certificate needs). Not thread-safe per workspace. */
#pragma once

#include <complex.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

struct qt_design;

struct qt_mlebg_opts {
    double gap_tol;    /* stop when gap / Y <= gap_tol (per count); 1e-10 */
    unsigned max_iter; /* Newton iterations; 500 */
    /* Optional (NULL): a design whose elements are F (d and m must match; the caller vouches for
     * the rest). The solver then applies the whitened maps through qt_design_forward/adjoint
     * (B^H and B around them) instead of forming B^H F_a B: the fast maps of structured
     * designs (qt_design.mix_base). The certificate and polishing still use F. */
    const struct qt_design *map;
};

/* Defaults above. */
void qt_mlebg_opts_init(struct qt_mlebg_opts *o);

/* The estimate described above. o may be NULL (defaults). On 0 and on QT_ENOCONV, rho (d x d,
 * unit trace, Hermitian PSD), *intensity (Tr sigma^), *gap (the certificate of sigma^, in
 * log-likelihood units, recomputed at the reported point), *loglik (L(sigma^)) and *iters
 * (Newton iterations) are set; any of the scalar outputs may be NULL. With Y = 0 the optimum
 * is sigma = 0: rho = I/d, intensity 0, gap 0.
 * Returns 0; QT_ENOCONV when gap / Y > gap_tol after max_iter iterations or when the solver
 * stalls; QT_EZEROGROUP when some y_a > 0 has F_a = 0 and beta_a = 0 (mu_a = 0 for every
 * sigma: the data are impossible); -EDOM for negative or non-finite y or beta, a non-finite F,
 * or H = 0; -ENOMEM; QT_ELAPACK. */
QT_NODISCARD int qt_mlebg(size_t d, size_t m, const double complex *F, const double *beta,
                          const double *y, const struct qt_mlebg_opts *o, struct qt_ws *ws,
                          double complex *rho, double *intensity, double *gap, double *loglik,
                          unsigned *iters);

/* The certificate of any sigma >= 0 (d x d, Hermitian; unnormalised: sigma = I rho), with the
 * same data: *gap >= max L - L(sigma) (+infinity when some y_a > 0 has mu_a(sigma) <= 0), and
 * *loglik = L(sigma) (may be NULL). Returns 0, -EDOM (as qt_mlebg), -ENOMEM or QT_ELAPACK. */
QT_NODISCARD int qt_mlebg_gap(size_t d, size_t m, const double complex *F, const double *beta,
                              const double *y, const double complex *sigma, struct qt_ws *ws,
                              double *gap, double *loglik);

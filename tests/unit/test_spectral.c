/* The origin's spectral decomposition (num/qt_spectral.h) against states built from a known
 * spectrum: random unitaries (Gram-Schmidt of seeded random vectors, no LAPACK) and distinct
 * eigenvalues, so the expected amplitudes and relative phases come from the construction, not
 * from a second eigensolver. Plus the origin's own test case and the phase conventions. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_spectral.h"
#include "qt_test.h"

typedef double complex cplx;

#define MAXD 16

static uint64_t lcg_state;

/* Uniform in (-1, 1) from a 64-bit LCG (Knuth's MMIX constants): independent of qt_rng. */
static double urand(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 4503599627370496.0 - 1.0;
}

/* U: d x d unitary, column-major, by modified Gram-Schmidt of random complex columns. */
static void random_unitary(size_t d, cplx *U)
{
    for (size_t i = 0; i < d * d; i++)
        U[i] = urand() + I * urand();
    for (size_t k = 0; k < d; k++) {
        cplx *u = U + d * k;
        double n = 0.0;

        for (size_t j = 0; j < k; j++) {
            const cplx *v = U + d * j;
            cplx p = 0.0;

            for (size_t i = 0; i < d; i++)
                p += conj(v[i]) * u[i];
            for (size_t i = 0; i < d; i++)
                u[i] -= p * v[i];
        }
        for (size_t i = 0; i < d; i++)
            n += creal(u[i] * conj(u[i]));
        for (size_t i = 0; i < d; i++)
            u[i] /= sqrt(n);
    }
}

/* rho = sum_k lam[k] u_k u_k^H. */
static void from_spectrum(size_t d, const cplx *U, const double *lam, cplx *rho)
{
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            cplx s = 0.0;

            for (size_t k = 0; k < d; k++)
                s += U[i + d * k] * lam[k] * conj(U[j + d * k]);
            rho[i + d * j] = s;
        }
}

/* a - b in units of pi, reduced to [-1, 1): phases are compared modulo 2 pi. */
static double phase_diff(double a, double b)
{
    double x = fmod(a - b + 1.0, 2.0);

    return (x < 0.0 ? x + 2.0 : x) - 1.0;
}

static int decompose(size_t d, const cplx *rho, double *dom, double *amp, double *ph, double *eig)
{
    struct qt_ws ws = QT_WS_INIT;
    int r = qt_spectral_decompose(&ws, d, rho, dom, amp, ph, eig);

    qt_ws_done(&ws);
    return r;
}

/* Random mixed states of d = 2..16: eigenvalues, amplitudes and phases of the dominant
 * eigenvector (largest eigenvalue well separated) to 1e-12. */
static void test_random_states(void **state)
{
    (void)state;
    lcg_state = 20261202;
    for (size_t d = 2; d <= MAXD; d++) {
        for (int rep = 0; rep < 8; rep++) {
            cplx U[MAXD * MAXD], rho[MAXD * MAXD];
            double lam[MAXD], want[MAXD], dom, amp[MAXD], ph[MAXD], eig[MAXD], sum = 0.0;
            size_t top = (size_t)rep % d, ref = 0;

            random_unitary(d, U);
            /* distinct eigenvalues; u_top gets the largest, separated by at least 0.2 */
            for (size_t k = 0; k < d; k++) {
                lam[k] = k == top
                             ? 1.0
                             : 0.05 + 0.7 * (double)k / (double)d * (0.5 + 0.5 * fabs(urand()));
                sum += lam[k];
            }
            for (size_t k = 0; k < d; k++)
                lam[k] /= sum;
            from_spectrum(d, U, lam, rho);
            assert_int_equal(decompose(d, rho, &dom, amp, ph, eig), 0);

            memcpy(want, lam, d * sizeof(double));
            for (size_t i = 0; i < d; i++) /* descending, by insertion */
                for (size_t j = i; j > 0 && want[j] > want[j - 1]; j--) {
                    double t = want[j];

                    want[j] = want[j - 1];
                    want[j - 1] = t;
                }
            qt_assert_close(dom, want[0], 0.0, 1e-12);
            for (size_t i = 0; i < d; i++)
                qt_assert_close(eig[i], want[i], 0.0, 1e-12);
            const cplx *u = U + d * top;

            while (ref < d && !(cabs(u[ref]) > QT_SPECTRAL_PHASE_TOL))
                ref++;
            for (size_t i = 0; i < d; i++) {
                double p = carg(u[i] * conj(u[ref])) / M_PI;

                qt_assert_close(amp[i], cabs(u[i]), 0.0, 1e-12);
                qt_assert_close(phase_diff(ph[i], p), 0.0, 0.0, 1e-12);
                assert_true(ph[i] > -1.0 && ph[i] <= 1.0);
            }
            qt_assert_close(ph[ref], 0.0, 0.0, 0.0);
        }
    }
}

/* The origin's test (test_spectral_domain.py): psi = (.5, .5, .5, -.5) gives amplitudes .5 and
 * a phase of pi (1.0 in units of pi) on the last entry, whatever global phase the state and
 * the eigensolver's eigenvector carry. */
static void test_origin_case(void **state)
{
    static const cplx globals[] = {1.0, -1.0, I, -I, 0.6 + 0.8 * I};

    (void)state;
    for (size_t g = 0; g < sizeof(globals) / sizeof(globals[0]); g++) {
        cplx psi[4] = {0.5, 0.5, 0.5, -0.5}, rho[16];
        double dom, amp[4], ph[4], eig[4];

        for (size_t i = 0; i < 4; i++)
            psi[i] *= globals[g];
        for (size_t j = 0; j < 4; j++)
            for (size_t i = 0; i < 4; i++)
                rho[i + 4 * j] = psi[i] * conj(psi[j]);
        assert_int_equal(decompose(4, rho, &dom, amp, ph, eig), 0);
        qt_assert_close(dom, 1.0, 0.0, 1e-12);
        for (size_t i = 0; i < 4; i++)
            qt_assert_close(amp[i], 0.5, 0.0, 1e-12);
        qt_assert_close(ph[0], 0.0, 0.0, 1e-12);
        qt_assert_close(ph[1], 0.0, 0.0, 1e-12);
        qt_assert_close(ph[2], 0.0, 0.0, 1e-12);
        qt_assert_close(ph[3], 1.0, 0.0, 1e-12);
        qt_assert_close(eig[0], 1.0, 0.0, 1e-12);
        for (size_t i = 1; i < 4; i++)
            qt_assert_close(eig[i], 0.0, 0.0, 1e-12);
    }
}

/* The phase reference is the first component with |c| > 1e-9, not component 0; the input is
 * Hermitised first (an anti-Hermitian part changes nothing). */
static void test_reference_and_hermitise(void **state)
{
    cplx psi[3] = {0.0, 1.0 / sqrt(2.0), I / sqrt(2.0)}, rho[9], X[9];
    double dom, amp[3], ph[3], eig[3], dom2, amp2[3], ph2[3], eig2[3];

    (void)state;
    for (size_t j = 0; j < 3; j++)
        for (size_t i = 0; i < 3; i++) {
            rho[i + 3 * j] = 0.8 * psi[i] * conj(psi[j]) + (i == j ? 0.2 / 3.0 : 0.0);
            X[i + 3 * j] = rho[i + 3 * j] + 0.3 * (double)(i + 2 * j) - 0.3 * (double)(j + 2 * i) +
                           0.1 * I * (double)(i == j);
        }
    assert_int_equal(decompose(3, rho, &dom, amp, ph, eig), 0);
    qt_assert_close(dom, 0.8 + 0.2 / 3.0, 0.0, 1e-12);
    qt_assert_close(amp[0], 0.0, 0.0, 1e-12);
    qt_assert_close(amp[1], 1.0 / sqrt(2.0), 0.0, 1e-12);
    qt_assert_close(ph[1], 0.0, 0.0, 0.0);
    qt_assert_close(ph[2], 0.5, 0.0, 1e-12);
    qt_assert_close(eig[1], 0.2 / 3.0, 0.0, 1e-12);
    qt_assert_close(eig[2], 0.2 / 3.0, 0.0, 1e-12);
    /* X = rho + a real antisymmetric part + i I/10: its Hermitian part is rho + 0 */
    assert_int_equal(decompose(3, X, &dom2, amp2, ph2, eig2), 0);
    qt_assert_close(dom2, dom, 0.0, 1e-12);
    for (size_t i = 1; i < 3; i++) {
        qt_assert_close(amp2[i], amp[i], 0.0, 1e-12);
        qt_assert_close(ph2[i], ph[i], 0.0, 1e-12);
    }
}

/* A real state's sign flips are +1, never -1 (the -0.0 imaginary part LAPACK may leave), and
 * zero phases are +0.0. */
static void test_phase_range(void **state)
{
    cplx rho[4] = {0.5, -0.5, -0.5, 0.5}; /* |-><-| */
    double dom, amp[2], ph[2], eig[2];

    (void)state;
    assert_int_equal(decompose(2, rho, &dom, amp, ph, eig), 0);
    assert_true(ph[0] == 0.0 && !signbit(ph[0]));
    qt_assert_close(ph[1], 1.0, 0.0, 1e-15);
}

static void test_errors(void **state)
{
    cplx rho[4] = {NAN, 0.0, 0.0, 1.0}, one = 1.0;
    double dom = -7.0, amp[2] = {-7.0, -7.0}, ph[2], eig[2];

    (void)state;
    assert_int_equal(decompose(0, rho, &dom, amp, ph, eig), -EINVAL);
    assert_int_equal(decompose(2, rho, &dom, amp, ph, eig), QT_ENONFINITE);
    assert_true(dom == -7.0 && amp[0] == -7.0); /* outputs untouched on failure */
    assert_int_equal(decompose(1, &one, &dom, amp, ph, eig), 0);
    qt_assert_close(dom, 1.0, 0.0, 1e-15);
    qt_assert_close(amp[0], 1.0, 0.0, 1e-15);
    qt_assert_close(ph[0], 0.0, 0.0, 0.0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_states),
    cmocka_unit_test(test_origin_case),
    cmocka_unit_test(test_reference_and_hermitise),
    cmocka_unit_test(test_phase_range),
    cmocka_unit_test(test_errors),
};

QT_TEST_MAIN(tests)

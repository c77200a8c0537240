/* The origin's spectral decomposition (origin-digest §3.5), with phases in units of pi. */
#include "qt_spectral.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>

#include "base/qt_err.h"
#include "qt_lapack.h"

/* The phase of z in units of pi, in (-1, 1]: atan2 gives -pi for a negative real with a -0.0
 * imaginary part, which is the same phase as +pi; -0.0 becomes +0.0. */
static double phase_pi_of(double complex z)
{
    double p = atan2(cimag(z), creal(z)) / M_PI;

    if (p <= -1.0)
        p = 1.0;
    return p + 0.0;
}

int qt_spectral_decompose(struct qt_ws *ws, size_t d, const double complex *rho,
                          double *ret_dominant, double *amp, double *phase_pi, double *eig)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *H, *c, ref;
    double *w, nrm = 0.0;
    size_t r0 = 0;
    int r;

    if (d == 0)
        return -EINVAL;
    H = qt_ws_alloc_n(ws, d * d, sizeof(double complex));
    w = qt_ws_alloc_n(ws, d, sizeof(double));
    if (!H || !w) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            H[i + d * j] = 0.5 * (rho[i + d * j] + conj(rho[j + d * i]));
            if (!isfinite(creal(H[i + d * j])) || !isfinite(cimag(H[i + d * j]))) {
                r = QT_ENONFINITE;
                goto out;
            }
        }
    r = qt_zheev(ws, true, d, H, d, w);
    if (r < 0)
        goto out;
    c = H + d * (d - 1); /* ascending: the last column belongs to the largest eigenvalue */
    for (size_t i = 0; i < d; i++)
        nrm += creal(c[i]) * creal(c[i]) + cimag(c[i]) * cimag(c[i]);
    nrm = sqrt(nrm);
    if (!(nrm > 0.0) || !isfinite(nrm)) {
        r = QT_ELAPACK;
        goto out;
    }
    for (size_t i = 0; i < d; i++)
        c[i] /= nrm;
    while (r0 < d - 1 && !(cabs(c[r0]) > QT_SPECTRAL_PHASE_TOL))
        r0++;
    ref = conj(c[r0]);
    for (size_t i = 0; i < d; i++) {
        amp[i] = cabs(c[i]);
        phase_pi[i] = i == r0 ? 0.0 : phase_pi_of(c[i] * ref);
        eig[i] = w[d - 1 - i];
    }
    *ret_dominant = w[d - 1];
out:
    qt_ws_release(ws, mark);
    return r;
}

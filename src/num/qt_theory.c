/* The origin's theory states: psi_k = c_k exp(i pi phi_k), normalised, and its profiles. */
#include "qt_theory.h"

#include <math.h>
#include <string.h>

#include "base/qt_err.h"

/* theoretical_state.py: "4D_custom" and "16D_custom" (origin-digest §3.5). */
static const double c4[4] = {0.5, 0.5, 0.5, 0.5};
static const double phi4[4] = {0, 0, 0, 1};
static const double c16[16] = {0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25,
                               0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25};
static const double phi16[16] = {0, 0, 0, 0, 0, 0.5, 1, 1.5, 0, 1, 0, 1, 0, 1.5, 1, 0.5};

const struct qt_theory_profile qt_theory_profiles[] = {
    {"4D_custom", 4, c4, phi4},
    {"16D_custom", 16, c16, phi16},
    {NULL, 0, NULL, NULL},
};

const struct qt_theory_profile *qt_theory_profile_find(const char *name)
{
    for (const struct qt_theory_profile *p = qt_theory_profiles; name && p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

double complex qt_theory_coef(double c, double phi)
{
    double x = M_PI * (fabs(phi) < 1e15 ? phi : fmod(phi, 2.0));
    double complex z;
    double *zp = (double *)&z;

    zp[0] = c * cos(x);
    zp[1] = c * sin(x);
    return z;
}

int qt_theory_ket(size_t d, const double *c, const double *phi, double complex *psi)
{
    for (size_t k = 0; k < d; k++)
        psi[k] = qt_theory_coef(c[k], phi[k]);
    return qt_ket_normalise(d, psi);
}

int qt_ket_normalise(size_t d, double complex *psi)
{
    double amax = 0.0, nrm = 0.0;

    for (size_t k = 0; k < d; k++)
        amax = fmax(amax, fmax(fabs(creal(psi[k])), fabs(cimag(psi[k]))));
    if (!(amax > 0.0) || !isfinite(amax))
        return QT_ENOTPHYS;
    for (size_t k = 0; k < d; k++) {
        psi[k] /= amax;
        nrm += creal(psi[k] * conj(psi[k]));
    }
    nrm = sqrt(nrm);
    for (size_t k = 0; k < d; k++)
        psi[k] /= nrm;
    return 0;
}

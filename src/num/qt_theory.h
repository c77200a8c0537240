/* Theory states as the origin builds them (origin-digest §3.5, generate_theoretical_state):
 * psi_k = c_k exp(i pi phi_k), normalised, phases in units of pi, and its named profiles. */
#pragma once

#include <complex.h>
#include <stddef.h>

#include "base/compiler.h"

/* A named profile: dimension d and the d coefficients c and phases phi (units of pi). */
struct qt_theory_profile {
    const char *name;
    size_t d;
    const double *c, *phi;
};

/* The origin's built-in profiles, "4D_custom" and "16D_custom"; NULL-terminated by name. */
extern const struct qt_theory_profile qt_theory_profiles[];

/* The profile called name (exact, case-sensitive as the origin's), or NULL. */
const struct qt_theory_profile *qt_theory_profile_find(const char *name);

/* psi_k = c * exp(i pi phi), unnormalised. For |phi| >= 1e15 phi is reduced modulo 2 first so
 * that pi phi cannot overflow; otherwise the rounding is numpy's c * exp(1j * pi * phi). */
double complex qt_theory_coef(double c, double phi);

/* Normalises psi[0..d) to unit norm, scaled first so that no square overflows. Returns 0, or
 * QT_ENOTPHYS when psi is zero or not finite. */
QT_NODISCARD int qt_ket_normalise(size_t d, double complex *psi);

/* psi[k] = qt_theory_coef(c[k], phi[k]) for k < d, then normalised (scaled first so that no
 * square overflows). Returns 0, or QT_ENOTPHYS when psi is zero or not finite. */
QT_NODISCARD int qt_theory_ket(size_t d, const double *c, const double *phi, double complex *psi);

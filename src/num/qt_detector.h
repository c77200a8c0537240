/* Detector models: relative efficiencies eta, crosstalk C within each group, background
 * counts beta and per-setting intensities t, for the expected count of outcome a in group g
 *   mu_a = I t_g sum_b C_ab eta_b Tr(rho E_b) + beta_a      (I: the unknown overall intensity)
 * and the effective design they define: elements E~_a = t_g sum_b C_ab eta_b E_b, one
 * normalisation group. With beta = 0 the Poisson likelihood of the counts with I unknown is the
 * multinomial over all outcomes with p_a = Tr(rho E~_a) / Tr(rho sum_b E~_b): exactly the model
 * every estimator fits to a custom design whose outcomes form one group (qt_sample normalises
 * per group; one group makes that the total). With beta > 0 the effective design carries beta
 * (qt_design.background) and mle maximises the Poisson likelihood itself (num/qt_est_mlebg.h).
 * Outcome and group order are the base design's. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"
#include "num/qt_result.h"

/* Largest dimension of an effective design (that of custom designs). */
#define QT_DETECTOR_MAX_DIM 64

/* Largest sum over groups of k_g^2 (the crosstalk matrices' entries, 128 MiB). */
#define QT_DETECTOR_MAX_CROSS ((size_t)1 << 24)

/* Efficiencies and setting intensities must lie in [this, 1 / this]. */
#define QT_DETECTOR_MIN_FACTOR 1e-9

/* Crosstalk columns must sum to 1 within this, relative. */
#define QT_DETECTOR_STOCH_TOL 1e-9

/* A detector model as read from a file, not yet checked against a design. Every array is
 * optional (NULL: the default). Matrices are row-major, entry (a, b) = C_ab. */
struct qt_detector_spec {
    const double *efficiencies; /* n_eff values (eta, default 1; in [1e-9, 1e9]) */
    size_t n_eff;
    const double *background; /* n_bg values (beta, default 0) */
    size_t n_bg;
    const double *intensity; /* n_int values (t_g, default 1; in [1e-9, 1e9]) */
    size_t n_int;
    const double *crosstalk; /* n_cross square matrices, sizes cross_k, concatenated */
    const size_t *cross_k;
    size_t n_cross;
    const double *qubit_crosstalk; /* n_qcross 2 x 2 matrices, concatenated (pauli only) */
    size_t n_qcross;
};

/* A model validated against a design (m outcomes, n_groups groups). Every array is filled,
 * defaults included. Immutable after construction. */
struct qt_detector {
    size_t m, n_groups;
    double *eff;       /* m */
    double *bg;        /* m */
    double *intensity; /* n_groups */
    size_t *goff;      /* n_groups + 1: group g's matrix starts at cross + goff[g] */
    size_t *gk;        /* n_groups: outcomes in group g */
    size_t *gidx;      /* m: the outcomes of each group in design order, group after group */
    size_t *gpos;      /* n_groups + 1: group g's outcomes are gidx[gpos[g] .. gpos[g+1]) */
    double *cross;     /* per group, k_g x k_g column-major: C_ab, a and b local to the group */
    bool identity;     /* eta = 1, C = I, t = 1 and beta = 0: the model changes nothing */
    bool has_background;
    char id[40]; /* "det-" + xxh128 hex of the model with its defaults (equal models, equal ids) */
};

/* Checks spec against des and builds the model. Errors (QT_ESHAPE, QT_EOPTION, QT_ENONFINITE,
 * QT_EDIM for d > QT_DETECTOR_MAX_DIM, QT_ETOOBIG for groups beyond QT_DETECTOR_MAX_CROSS,
 * -ENOMEM) name the field and the index: "efficiencies[3] must be > 0, got 0", "crosstalk[1]
 * column 2 sums to 0.97, not 1", ... *ret_det is set only on success. */
QT_NODISCARD int qt_detector_new(const struct qt_detector_spec *spec, const struct qt_design *des,
                                 struct qt_detector **ret_det, struct qt_diag *reterr);

/* NULL-safe. */
void qt_detector_free(struct qt_detector *det);

/* The effective elements E~_a = t_g sum_b C_ab eta_b E_b / lambda of des under det, with lambda
 * such that Tr sum_a E~_a = d (a constant no estimator but WLS sees), element a row-major
 * at elems[a d^2 ...] (the layout of struct qt_custom_spec), into a caller-allocated array of
 * m d^2 values. Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_detector_elements(const struct qt_design *des, const struct qt_detector *det,
                                      double complex *elems);

/* The effective design: a custom design of the elements above, all outcomes in one group (see
 * the top of this file), with det's backgrounds plus base's own (qt_design.background), if any.
 * Its id is the content id of custom designs, so it changes with the model. Returns 0, QT_EDIM
 * (d > QT_DETECTOR_MAX_DIM), QT_ETOOBIG (qt_design_custom_fits refuses d and m: checked before
 * anything is built) or a qt_design_new_custom error (an effective element that is zero:
 * QT_ENOTPSD naming it). */
QT_NODISCARD int qt_detector_design(const struct qt_design *base, const struct qt_detector *det,
                                    struct qt_design **ret, struct qt_diag *reterr);

/* Most detectors in one coincidence outcome for accidentals from singles (a coincidence of n
 * photons needs d >= 2^n, and d <= QT_DETECTOR_MAX_DIM). */
#define QT_DETECTOR_MAX_FOLD 16

/* Accidental coincidences computed from singles, as optical labs do, one n-fold coincidence
 * outcome per design outcome a (in group g):
 *   A_a = S_a1 S_a2 ... S_an tau^(n-1) / T_g^(n-1)          (n = 2: A = S_1 S_2 tau / T)
 * S_ai: the singles counts of the n detectors of outcome a during its setting; T_g: that
 * setting's counting time; tau: the full width of the coincidence window (both in seconds).
 * This is the accidental correction of the Kwiat group's tomography package
 * (KwiatLab/Quantum-Tomography: TomoClass.filter_data, prod(singles) (window / t)^(n-1);
 * "Supplementary Information/Accidentals.rmd", A = S_0 S_1 W / T), i.e. uncorrelated Poisson
 * singles rates R_i = S_i / T in windows of width tau: rate tau^(n-1) prod R_i, times T. */
struct qt_accidentals_spec {
    double window;      /* tau > 0, seconds, shorter than every T_g */
    const double *time; /* T_g > 0, seconds: n_time = 1 (every group) or one per group */
    size_t n_time;
    const double *singles; /* outcome after outcome, fold[a] values each, all >= 0 */
    const size_t *fold;    /* n_outcomes values: n of each outcome, 2..QT_DETECTOR_MAX_FOLD */
    size_t n_outcomes;
};

/* A for one outcome: n singles counts, window tau and counting time T; no checks. */
double qt_detector_accidental(const double *singles, size_t n, double window, double time);

/* The accidentals A_a of every outcome of des into acc (m values). Checks spec against des;
 * errors (QT_ESHAPE, QT_EOPTION, QT_ENONFINITE) name the field and index, as
 * "accidentals.singles[5][1] must be >= 0, got -3". */
QT_NODISCARD int qt_detector_accidentals(const struct qt_accidentals_spec *spec,
                                         const struct qt_design *des, double *acc,
                                         struct qt_diag *reterr);

/* Whether method can honour det on its effective design eff: a background is taken by linear
 * (subtracted) and mle (the Poisson likelihood with it), not by wls and rhor; and WLS fits
 * frequencies to Tr(rho E~_a), which is right only when sum_a E~_a = I (eff->povm: equal
 * efficiencies, any crosstalk and drift). Returns 0 or QT_EMETHOD with the reason. */
QT_NODISCARD int qt_detector_check_method(const struct qt_detector *det,
                                          const struct qt_design *eff, enum qt_method method,
                                          struct qt_diag *reterr);

/* Detector models checked against a design, and the effective design they define. */
#include "qt_detector.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/qt_ws.h"

void qt_detector_free(struct qt_detector *det)
{
    if (!det)
        return;
    free(det->eff);
    free(det->bg);
    free(det->intensity);
    free(det->goff);
    free(det->gk);
    free(det->gidx);
    free(det->gpos);
    free(det->cross);
    free(det);
}

/* Fills v (n values) from src (n_src values, NULL: all def), each finite and (strictly, when
 * strict) above lo. */
static int fill_vec(const char *field, const double *src, size_t n_src, size_t n, const char *what,
                    double def, bool strict, double *v, struct qt_diag *reterr)
{
    if (!src) {
        for (size_t i = 0; i < n; i++)
            v[i] = def;
        return 0;
    }
    if (n_src != n)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "%s has %zu values, the design has %zu %s",
                           field, n_src, n, what);
    for (size_t i = 0; i < n; i++) {
        double x = src[i];

        if (!isfinite(x))
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0, "%s[%zu] is not a finite number", field,
                               i);
        if (strict ? !(x > 0.0) : !(x >= 0.0))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0, "%s[%zu] must be %s 0, got %g", field, i,
                               strict ? ">" : ">=", x);
        /* Relative factors this far from 1 are typos, and their products would underflow or
         * overflow in the effective elements. */
        if (strict && !(x >= QT_DETECTOR_MIN_FACTOR && x <= 1.0 / QT_DETECTOR_MIN_FACTOR))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0, "%s[%zu] is %g, outside [%g, %g]", field,
                               i, x, QT_DETECTOR_MIN_FACTOR, 1.0 / QT_DETECTOR_MIN_FACTOR);
        v[i] = x;
    }
    return 0;
}

/* Checks a k x k row-major matrix: finite, entries >= 0, columns summing to 1. */
static int check_stochastic(const char *field, size_t idx, size_t k, const double *M,
                            struct qt_diag *reterr)
{
    for (size_t b = 0; b < k; b++) {
        double s = 0.0;

        for (size_t a = 0; a < k; a++) {
            double x = M[a * k + b];

            if (!isfinite(x))
                return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                                   "%s[%zu] entry (%zu, %zu) is not a finite number", field, idx, a,
                                   b);
            if (x < 0.0)
                return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                                   "%s[%zu] entry (%zu, %zu) is negative (%g); entries are "
                                   "probabilities",
                                   field, idx, a, b, x);
            s += x;
        }
        if (!(fabs(s - 1.0) <= QT_DETECTOR_STOCH_TOL))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "%s[%zu] column %zu sums to %.12g, not 1 (C_ab is the probability "
                               "that a count of outcome b is registered at a)",
                               field, idx, b, s);
    }
    return 0;
}

/* The groups' outcome lists and the offsets of their matrices. */
static int layout(struct qt_detector *det, const struct qt_design *des, struct qt_diag *reterr)
{
    size_t G = des->n_groups, m = des->m, off = 0;

    det->gk = calloc(G, sizeof(size_t));
    det->goff = calloc(G + 1, sizeof(size_t));
    det->gpos = calloc(G + 1, sizeof(size_t));
    det->gidx = malloc(m * sizeof(size_t));
    if (!det->gk || !det->goff || !det->gpos || !det->gidx)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++)
        det->gk[des->groups[a]]++;
    for (size_t g = 0; g < G; g++) {
        det->gpos[g + 1] = det->gpos[g] + det->gk[g];
        det->goff[g] = off;
        off += det->gk[g] * det->gk[g];
    }
    det->goff[G] = off;
    if (off > QT_DETECTOR_MAX_CROSS)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                           "the design's groups are too large for a crosstalk model (%zu matrix "
                           "entries, the limit is %zu)",
                           off, (size_t)QT_DETECTOR_MAX_CROSS);
    size_t *next = calloc(G, sizeof(size_t));
    if (!next)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++) {
        size_t g = des->groups[a];

        det->gidx[det->gpos[g] + next[g]++] = a;
    }
    free(next);
    det->cross = calloc(off ? off : 1, sizeof(double));
    return det->cross ? 0 : -ENOMEM;
}

/* Per-group crosstalk matrices from "crosstalk" (row-major in, column-major out). */
static int fill_crosstalk(struct qt_detector *det, const struct qt_detector_spec *spec,
                          struct qt_diag *reterr)
{
    size_t G = det->n_groups, src = 0;

    if (spec->n_cross != G)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "crosstalk has %zu matrices, the design has %zu groups", spec->n_cross,
                           G);
    for (size_t g = 0; g < G; g++) {
        size_t k = det->gk[g];
        const double *M = spec->crosstalk + src;
        double *C = det->cross + det->goff[g];

        if (spec->cross_k[g] != k)
            return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                               "crosstalk[%zu] is %zu x %zu, group %zu has %zu outcomes", g,
                               spec->cross_k[g], spec->cross_k[g], g, k);
        int r = check_stochastic("crosstalk", g, k, M, reterr);
        if (r < 0)
            return r;
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                C[a + k * b] = M[a * k + b];
        src += k * k;
    }
    return 0;
}

/* Per-setting matrices of a pauli design as Kronecker products of the per-qubit ones, qubit 0
 * the leftmost factor (the most significant outcome bit, num/qt_pauli.h). */
static int fill_qubit_crosstalk(struct qt_detector *det, const struct qt_design *des,
                                const struct qt_detector_spec *spec, struct qt_diag *reterr)
{
    unsigned n = des->n_qubits;
    size_t k = des->d;

    if (des->kind != QT_DESIGN_PAULI)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "qubit_crosstalk needs a pauli design (this one is '%s'); give "
                           "\"crosstalk\" per group instead",
                           des->name);
    if (spec->n_qcross != n)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "qubit_crosstalk has %zu matrices, the design has %u qubits",
                           spec->n_qcross, n);
    for (size_t q = 0; q < n; q++) {
        int r = check_stochastic("qubit_crosstalk", q, 2, spec->qubit_crosstalk + 4 * q, reterr);
        if (r < 0)
            return r;
    }
    for (size_t g = 0; g < det->n_groups; g++) {
        double *C = det->cross + det->goff[g];

        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++) {
                double x = 1.0;

                for (unsigned q = 0; q < n; q++) {
                    unsigned sh = n - 1 - q;

                    x *= spec->qubit_crosstalk[4 * q + 2 * ((a >> sh) & 1) + ((b >> sh) & 1)];
                }
                C[a + k * b] = x;
            }
    }
    return 0;
}

static void set_identity(struct qt_detector *det)
{
    for (size_t g = 0; g < det->n_groups; g++) {
        size_t k = det->gk[g];

        for (size_t a = 0; a < k; a++)
            det->cross[det->goff[g] + a + k * a] = 1.0;
    }
}

static void model_id(struct qt_detector *det)
{
    XXH3_state_t *st = XXH3_createState();
    uint64_t hdr[2] = {det->m, det->n_groups};

    if (!st) {
        (void)snprintf(det->id, sizeof(det->id), "det");
        return;
    }
    (void)XXH3_128bits_reset(st);
    (void)XXH3_128bits_update(st, hdr, sizeof(hdr));
    (void)XXH3_128bits_update(st, det->eff, det->m * sizeof(double));
    (void)XXH3_128bits_update(st, det->bg, det->m * sizeof(double));
    (void)XXH3_128bits_update(st, det->intensity, det->n_groups * sizeof(double));
    (void)XXH3_128bits_update(st, det->cross, det->goff[det->n_groups] * sizeof(double));
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    (void)snprintf(det->id, sizeof(det->id), "det-%016llx%016llx", (unsigned long long)h.high64,
                   (unsigned long long)h.low64);
}

static bool is_identity(const struct qt_detector *det)
{
    for (size_t a = 0; a < det->m; a++)
        if (det->eff[a] != 1.0 || det->bg[a] != 0.0)
            return false;
    for (size_t g = 0; g < det->n_groups; g++) {
        size_t k = det->gk[g];

        if (det->intensity[g] != 1.0)
            return false;
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                if (det->cross[det->goff[g] + a + k * b] != (a == b ? 1.0 : 0.0))
                    return false;
    }
    return true;
}

int qt_detector_new(const struct qt_detector_spec *spec, const struct qt_design *des,
                    struct qt_detector **ret_det, struct qt_diag *reterr)
{
    struct qt_detector *det = calloc(1, sizeof(*det));
    size_t m = des->m, G = des->n_groups;
    int r = -ENOMEM;

    if (!det)
        return -ENOMEM;
    if (des->d > QT_DETECTOR_MAX_DIM) {
        free(det);
        return qt_diag_set(reterr, QT_EDIM, 0, 0,
                           "a detector model makes a custom design, and custom designs need "
                           "d <= %d (got d = %zu)",
                           QT_DETECTOR_MAX_DIM, des->d);
    }
    det->m = m;
    det->n_groups = G;
    det->eff = malloc(m * sizeof(double));
    det->bg = malloc(m * sizeof(double));
    det->intensity = malloc(G * sizeof(double));
    if (!det->eff || !det->bg || !det->intensity)
        goto out;
    r = layout(det, des, reterr);
    if (r >= 0)
        r = fill_vec("efficiencies", spec->efficiencies, spec->n_eff, m, "outcomes", 1.0, true,
                     det->eff, reterr);
    if (r >= 0)
        r = fill_vec("background", spec->background, spec->n_bg, m, "outcomes", 0.0, false, det->bg,
                     reterr);
    if (r >= 0)
        r = fill_vec("setting_intensity", spec->intensity, spec->n_int, G, "groups (settings)", 1.0,
                     true, det->intensity, reterr);
    if (r >= 0 && spec->crosstalk && spec->qubit_crosstalk)
        r = qt_diag_set(reterr, QT_EOPTION, 0, 0,
                        "give one of crosstalk and qubit_crosstalk, not both");
    if (r >= 0 && spec->crosstalk)
        r = fill_crosstalk(det, spec, reterr);
    else if (r >= 0 && spec->qubit_crosstalk)
        r = fill_qubit_crosstalk(det, des, spec, reterr);
    else if (r >= 0)
        set_identity(det);
    if (r < 0)
        goto out;
    for (size_t a = 0; a < m; a++)
        det->has_background |= det->bg[a] > 0.0;
    det->identity = is_identity(det);
    model_id(det);
    *ret_det = det;
    det = NULL;
out:
    qt_detector_free(det);
    return r;
}

/* E_b (d x d column-major): from the ket or the stored element when the design has them, else
 * as the adjoint of the unit vector (pauli, nopovm: structured maps). w is m zeros. */
static int base_element(const struct qt_design *des, struct qt_ws *ws, size_t b, double *w,
                        double complex *E)
{
    size_t d = des->d;
    int r = 0;

    if (des->kets) {
        const double complex *k = des->kets + d * b;

        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++)
                E[i + d * j] = k[i] * conj(k[j]);
    } else if (des->elems) {
        memcpy(E, des->elems + d * d * b, d * d * sizeof(*E));
    } else {
        w[b] = 1.0;
        r = qt_design_adjoint(des, ws, w, E);
        w[b] = 0.0;
    }
    return r;
}

/* The elements, and the constant they were scaled by (for the mixing blocks). */
static int build_elements(const struct qt_design *des, const struct qt_detector *det,
                          double complex *elems, double *ret_scale);

int qt_detector_elements(const struct qt_design *des, const struct qt_detector *det,
                         double complex *elems)
{
    return build_elements(des, det, elems, NULL);
}

static int build_elements(const struct qt_design *des, const struct qt_detector *det,
                          double complex *elems, double *ret_scale)
{
    struct qt_ws ws = QT_WS_INIT;
    size_t d = des->d, dd = d * d, m = des->m;
    double *w = calloc(m, sizeof(double));
    double complex *E = malloc(dd * sizeof(*E));
    int r = (w && E) ? 0 : -ENOMEM;

    if (r == 0)
        memset(elems, 0, m * dd * sizeof(*elems));
    /* E~_a = t_g sum_b C_ab eta_b E_b: each base element E_b (the adjoint of the unit vector,
     * made exactly Hermitian) is added to every outcome a of its group it leaks into. */
    for (size_t g = 0; g < det->n_groups && r == 0; g++) {
        size_t k = det->gk[g];
        const size_t *idx = det->gidx + det->gpos[g];
        const double *C = det->cross + det->goff[g];

        for (size_t lb = 0; lb < k && r == 0; lb++) {
            size_t b = idx[lb];

            r = base_element(des, &ws, b, w, E);
            for (size_t la = 0; la < k && r == 0; la++) {
                double c = det->intensity[g] * C[la + k * lb] * det->eff[b];
                double complex *out = elems + dd * idx[la];

                if (c == 0.0)
                    continue;
                for (size_t i = 0; i < d; i++)
                    for (size_t j = 0; j < d; j++) { /* out row-major, E column-major */
                        double complex e = 0.5 * (E[i + d * j] + conj(E[j + d * i]));

                        out[i * d + j] += c * e;
                    }
            }
        }
    }
    /* Scaled so that Tr sum_a E~_a = d: the likelihood estimators and linear inversion do not
     * see a constant factor, and WLS (which fits frequencies to Tr(rho E~_a)) is then exact
     * whenever sum_a E~_a = I. No negative zeros: the design file of these elements
     * (qt_detectorfile) prints them as 0, and the content id hashes the bits. */
    double tr = 0.0;
    for (size_t a = 0; r == 0 && a < m; a++)
        for (size_t i = 0; i < d; i++)
            tr += creal(elems[dd * a + i * d + i]);
    for (size_t i = 0; r == 0 && i < m * dd; i++) {
        double *z = (double *)&elems[i]; /* double complex is double[2] (C17 6.2.5p13) */

        z[0] = z[0] * ((double)d / tr) + 0.0;
        z[1] = z[1] * ((double)d / tr) + 0.0;
    }
    if (ret_scale)
        *ret_scale = (double)d / tr;
    qt_ws_done(&ws);
    free(w);
    free(E);
    return r;
}

int qt_detector_design(const struct qt_design *base, const struct qt_detector *det,
                       struct qt_design **ret, struct qt_diag *reterr)
{
    size_t d = base->d, m = base->m;
    double complex *elems;
    double *mix = NULL, *bg = NULL, scale = 1.0;
    int r;

    if (det->m != m || det->n_groups != base->n_groups)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "the detector model was checked against another design");
    if (d > QT_DETECTOR_MAX_DIM)
        return qt_diag_set(reterr, QT_EDIM, 0, 0,
                           "a detector model makes a custom design, and custom designs need "
                           "d <= %d (got d = %zu)",
                           QT_DETECTOR_MAX_DIM, d);
    if (!qt_design_custom_fits(d, m))
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                           "a detector model makes a custom design of its %zu elements at d = %zu, "
                           "which is too large (custom designs keep m d^2 <= %zu)",
                           m, d, QT_DESIGN_CUSTOM_MAX_MD2);
    elems = malloc(m * d * d * sizeof(*elems));
    if (!elems)
        return -ENOMEM;
    r = build_elements(base, det, elems, &scale);
    if (r >= 0 && (base->kind == QT_DESIGN_PAULI || base->kind == QT_DESIGN_MUB) &&
        base->group_len) {
        /* The structure: per base group, M = scale t_g C diag(eta), column-major (pauli and
         * mub, whose groups are small; sic is one group of d^2, where M would cost as much as
         * the elements). */
        size_t k = base->group_len;

        mix = malloc(m * k * sizeof(double));
        if (!mix)
            r = -ENOMEM;
        for (size_t g = 0; r >= 0 && g < m / k; g++) {
            const double *C = det->cross + det->goff[g];

            for (size_t lb = 0; lb < k; lb++)
                for (size_t la = 0; la < k; la++)
                    mix[g * k * k + la + k * lb] =
                        det->intensity[g] * C[la + k * lb] * det->eff[g * k + lb] * scale;
        }
    }
    /* The backgrounds: the model's, plus those the base design already had (a custom design
     * file's "background"). */
    if (r >= 0 && base->background) {
        bg = malloc(m * sizeof(double));
        if (!bg)
            r = -ENOMEM;
        for (size_t a = 0; r >= 0 && a < m; a++)
            bg[a] = det->bg[a] + base->background[a];
    }
    if (r >= 0) {
        struct qt_custom_spec spec = {.d = d,
                                      .m = m,
                                      .elems = elems,
                                      .background = bg            ? bg
                                                    : det->has_background ? det->bg
                                                                          : NULL,
                                      .mix_base = mix ? base : NULL,
                                      .mix = mix};

        r = qt_design_new_custom(&spec, ret, reterr);
    }
    free(bg);
    free(mix);
    free(elems);
    return r;
}

double qt_detector_accidental(const double *singles, size_t n, double window, double time)
{
    double r = window / time, A = n ? singles[0] : 0.0;

    /* S_1 (S_2 tau / T) ... (S_n tau / T): no intermediate tau^(n-1) to underflow. */
    for (size_t i = 1; i < n; i++)
        A *= singles[i] * r;
    return A;
}

/* The window and the counting times: finite, > 0, window < T_g, one time or one per group. */
static int check_accidental_times(const struct qt_accidentals_spec *spec, size_t G,
                                  struct qt_diag *reterr)
{
    double tau = spec->window;

    if (!isfinite(tau))
        return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                           "accidentals.window is not a finite number");
    if (!(tau > 0.0))
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "accidentals.window must be > 0 (seconds), got %g", tau);
    if (spec->n_time != 1 && spec->n_time != G)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "accidentals.time has %zu values, the design has %zu groups "
                           "(settings); give one number, or one per group",
                           spec->n_time, G);
    for (size_t g = 0; g < spec->n_time; g++) {
        double T = spec->time[g];

        if (!isfinite(T))
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                               "accidentals.time[%zu] is not a finite number", g);
        if (!(T > 0.0))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "accidentals.time[%zu] must be > 0 (seconds), got %g", g, T);
        /* A window as long as the counting time is a unit slip (ns given as s). */
        if (!(tau < T))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "accidentals.window (%g s) is not shorter than "
                               "accidentals.time[%zu] (%g s); both are in seconds",
                               tau, g, T);
    }
    return 0;
}

/* Outcome a's singles: 2..QT_DETECTOR_MAX_FOLD counts, each finite and >= 0. */
static int check_singles(size_t a, const double *S, size_t n, struct qt_diag *reterr)
{
    if (n < 2 || n > QT_DETECTOR_MAX_FOLD)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "accidentals.singles[%zu] has %zu values; a coincidence of n "
                           "detectors needs their n singles counts, n = 2 to %d",
                           a, n, QT_DETECTOR_MAX_FOLD);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(S[i]))
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                               "accidentals.singles[%zu][%zu] is not a finite number", a, i);
        if (!(S[i] >= 0.0))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "accidentals.singles[%zu][%zu] must be >= 0, got %g", a, i, S[i]);
    }
    return 0;
}

int qt_detector_accidentals(const struct qt_accidentals_spec *spec, const struct qt_design *des,
                            double *acc, struct qt_diag *reterr)
{
    size_t m = des->m, off = 0;
    int r = check_accidental_times(spec, des->n_groups, reterr);

    if (r < 0)
        return r;
    if (spec->n_outcomes != m)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "accidentals.singles has %zu arrays, the design has %zu outcomes",
                           spec->n_outcomes, m);
    for (size_t a = 0; a < m; a++) {
        size_t n = spec->fold[a];
        const double *S = spec->singles + off;
        double T = spec->time[spec->n_time == 1 ? 0 : des->groups[a]];

        r = check_singles(a, S, n, reterr);
        if (r < 0)
            return r;
        acc[a] = qt_detector_accidental(S, n, spec->window, T);
        if (!isfinite(acc[a]))
            return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                               "accidentals.singles[%zu] give accidentals that are not a finite "
                               "number (overflow)",
                               a);
        off += n;
    }
    return 0;
}

int qt_detector_check_method(const struct qt_detector *det, const struct qt_design *eff,
                             enum qt_method method, struct qt_diag *reterr)
{
    if ((det->has_background || eff->background) && method != QT_METHOD_LINEAR &&
        method != QT_METHOD_MLE)
        return qt_diag_set(reterr, QT_EMETHOD, 0, 0,
                           "%s fits the multinomial without background counts and cannot honour "
                           "\"background\"; use mle (the Poisson likelihood with the background) "
                           "or linear (background subtracted)",
                           qt_method_name(method));
    if (method == QT_METHOD_WLS && !det->identity && !eff->povm)
        return qt_diag_set(reterr, QT_EMETHOD, 0, 0,
                           "wls fits frequencies to Tr(rho E_a) and needs the effective elements "
                           "to sum to the identity; with unequal efficiencies they do not (use "
                           "mle, rhor or linear)");
    return 0;
}

/* Measurement designs: the m POVM elements or projectors E_a of a tomography experiment in
 * dimension d, their normalisation groups, and the precomputed operators that make one sample
 * cheap (what the projector cache persists).
 *
 * Conventions
 *  - Matrices are column-major double complex; vec(X) stacks columns.
 *  - The measurement map is A(rho)_a = Tr(E_a rho). Linear inversion is the minimum-norm least
 *    squares solution rho = A^+ f, identical to the origin's lstsq on its row-major matrix
 *    followed by conj (origin-digest §2.2).
 *  - Outcome order is the origin's for nopovm, mub and sic (origin-digest §1) and the
 *    documented Qiskit-style order for pauli (qt_design_new).
 *
 * A struct qt_design is immutable after construction and safe to share between threads. Its
 * arrays are either owned by it or point into a read-only mapping (the projector cache). */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "base/qt_ws.h"
#include "num/qt_design_kind.h"

struct qt_whiten;

/* How rho_raw = A^+ f is computed for a design. */
enum qt_pinv_kind {
    QT_PINV_NOPOVM = 0, /* closed form, O(d^2) */
    QT_PINV_FRAME = 1,  /* sum_a f_a E_a - (sum_a f_a) / (d+1) I: complete MUBs, O(m d^2) */
    QT_PINV_PAULI = 2,  /* dual frame applied qubit by qubit, O(n 6^n) */
    QT_PINV_DENSE = 3,  /* precomputed pseudo-inverse, d^2 x m */
};

struct qt_design {
    /* read-only */
    enum qt_design_kind kind;
    enum qt_pinv_kind pinv_kind;
    size_t d;          /* Hilbert-space dimension */
    size_t m;          /* number of outcomes */
    size_t n_groups;   /* normalisation groups */
    size_t group_len;  /* when group g is exactly outcomes [g*len, (g+1)*len): len; else 0 */
    unsigned n_qubits; /* pauli: log2(d); else 0 */
    bool rank1;        /* E_a = k_a k_a^H, kets stored (or implicit for pauli) */
    bool povm;         /* every group sums to c_g * I (within 1e-10 relative) */
    size_t rank;       /* numerical rank of the measurement map (numpy lstsq rule) */
    double cond;   /* condition number of the map: sigma_max / smallest sigma > 1e-10 sigma_max */
    char name[16]; /* "nopovm", "mub", "sic", "pauli", "custom" */
    char id[64];   /* cache key: "<name>" for built-ins, "custom-<xxh128 hex>" for custom */

    const uint32_t *groups;         /* m: group id of each outcome, 0..n_groups-1 */
    const double *group_scale;      /* n_groups: c_g with sum_{a in g} E_a = c_g I (povm only) */
    const double complex *kets;     /* d x m: column a is k_a (rank1 designs except pauli) */
    const double complex *elems;    /* d^2 x m: column a is vec(E_a) (non-rank1 custom only) */
    const double complex *H;        /* d x d: sum of all elements */
    const double *sv;               /* min(m, d^2) singular values of the map, descending */
    const double *pinv;             /* QT_PINV_DENSE: d^2 x m complex A^+, viewed as a 2d^2 x m
                                     * real matrix; QT_PINV_FRAME: the same operator written out
                                     * densely when it fits in 32 MiB, used only to batch many
                                     * samples into one GEMM (else NULL) */
    size_t pinv_cols;               /* columns in pinv (m, or 0 when absent) */
    const struct qt_whiten *whiten; /* whitening by H with the origin's default thresholds
                                     * (qt_whiten.h), used by the likelihood estimators */
    bool pinv_lower;                /* pinv has only the d(d+1)/2 lower-triangle rows of vec(rho),
                                     * packed column by column (QT_PINV_FRAME) */
    const double *background;       /* m known background counts beta_a >= 0, some > 0, in the
                                     * units of the data (custom designs built from a detector
                                     * model, num/qt_detector.h), or NULL: none. The estimators
                                     * then fit mu_a = I Tr(E_a rho) + beta_a (qt_estimate.h) */
    const struct qt_design *mix_base; /* custom designs made by a detector model from a pauli
                                       * or mub design (num/qt_detector.h): the measurement
                                       * map and its adjoint are applied as the base design's own
                                       * fast map followed by a mixing within each of its
                                       * groups, q = M q_base, instead of through the elements
                                       * (the same numbers up to rounding). NULL otherwise. The
                                       * base is a map-only view: kind, d, m, n_groups,
                                       * group_len, n_qubits and kets */
    const double *mix; /* with mix_base: its n_groups blocks of k x k (k = its group_len),
                        * column-major, block g mapping the base's outcomes g k .. g k + k - 1 */

    /* private */
    void *own;
};

/* Validated contents of a custom design file, in memory (see qt_designfile for parsing).
 * Exactly one of kets (m x d, row a = k_a, row-major as in the file) and elems (m x d x d,
 * element a row-major) is non-NULL. groups, weights and background are optional (NULL); a
 * background of zeros is no background (the design and its id are those without it). */
struct qt_custom_spec {
    size_t d, m;
    const double complex *kets;
    const double complex *elems;
    const int64_t *groups;
    const double *weights;
    const double *background; /* m values >= 0, finite; needs a single group (see below) */
    const struct qt_design *mix_base; /* optional: the structure of qt_design.mix_base; the
                                       * elements must equal it (not checked: detector models
                                       * build both); it enters the id */
    const double *mix;
};

/* Builds a built-in design. For pauli, d = 2^n with 1 <= n <= 8.
 * Returns 0, QT_EDESIGN, QT_EDIM or -ENOMEM; *ret_des is set only on success and must be freed
 * with qt_design_free. */
QT_NODISCARD int qt_design_new(enum qt_design_kind kind, size_t d, struct qt_design **ret_des,
                               struct qt_diag *reterr);

/* Validates and builds a custom design: shapes, finite values, Hermitian PSD elements, positive
 * weights, non-negative backgrounds (only with all outcomes in one group: the Poisson model
 * with one unknown intensity), and informational completeness (rank of the measurement map =
 * d^2). Errors name the offending element. */
QT_NODISCARD int qt_design_new_custom(const struct qt_custom_spec *spec, struct qt_design **ret_des,
                                      struct qt_diag *reterr);

/* Largest m d^2 of a custom design (its elements, whitened elements and dense inverse then
 * take at most 512 MiB). */
#define QT_DESIGN_CUSTOM_MAX_MD2 (((size_t)512 << 20) / 16 / 3)

/* Whether a custom design of m elements in dimension d is within the size limits of
 * qt_design_new_custom (which also needs 2 <= d <= 64 and m >= d^2): callers that are about to
 * build the elements check it first. */
bool qt_design_custom_fits(size_t d, size_t m);

/* NULL-safe. */
void qt_design_free(struct qt_design *des);

/* Bytes held by the design's arrays (kets or elements, groups, sums, singular values, dense
 * operators). */
size_t qt_design_bytes(const struct qt_design *des);

/* The measurement map and its adjoint, for a Hermitian rho:
 *   q_a = Re Tr(E_a rho)                         (qt_design_forward)
 *   out = sum_a w_a E_a                          (qt_design_adjoint; out is d x d, Hermitian)
 * Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_design_forward(const struct qt_design *des, struct qt_ws *ws,
                                   const double complex *rho, double *q);
QT_NODISCARD int qt_design_adjoint(const struct qt_design *des, struct qt_ws *ws, const double *w,
                                   double complex *out);

/* Minimum-norm least-squares inverse rho = A^+ f (rho is d x d, not necessarily physical).
 * Returns 0 or -ENOMEM. */
QT_NODISCARD int qt_design_pinv_apply(const struct qt_design *des, struct qt_ws *ws,
                                      const double *f, double complex *rho);

/* Batched inverse of n samples: F is m x n (column-major, leading dimension ldf), rho is
 * d^2 x n. Uses one GEMM when the design has a dense inverse, else a loop of the single path. */
QT_NODISCARD int qt_design_pinv_apply_batch(const struct qt_design *des, struct qt_ws *ws, size_t n,
                                            const double *F, size_t ldf, double complex *rho);

/* Low-level map kernels on explicit operators (used by the designs and by whitened designs):
 * kets is d x m (column a = k_a, E_a = k_a k_a^H), elems is d^2 x m (column a = vec E_a).
 * forward: q_a = Re Tr(E_a rho); adjoint: out = sum_a w_a E_a (exactly Hermitian for kets).
 * Return 0 or -ENOMEM. */
QT_NODISCARD int qt_kets_forward(size_t d, size_t m, const double complex *kets, struct qt_ws *ws,
                                 const double complex *rho, double *q);
QT_NODISCARD int qt_kets_adjoint(size_t d, size_t m, const double complex *kets, struct qt_ws *ws,
                                 const double *w, double complex *out);
QT_NODISCARD int qt_elems_forward(size_t d, size_t m, const double complex *elems, struct qt_ws *ws,
                                  const double complex *rho, double *q);
void qt_elems_adjoint(size_t d, size_t m, const double complex *elems, const double *w,
                      double complex *out);

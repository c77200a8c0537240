/* Custom design files and target-state files: JSON through jansson, checked for structure here
 * (every message names the key and index), physics checked by qt_design_new_custom. */
#include "qt_designfile.h"

#include <errno.h>
#include <jansson.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_ws.h"
#include "num/qt_lapack.h"
#include "num/qt_theory.h"
#include "qt_jsonfile.h"

/* Largest dimension of a custom design (qt_design_new_custom enforces the same bound). */
#define CUSTOM_MAX_DIM 64
/* Largest dimension of a target state: the largest of any design. */
#define TARGET_MAX_DIM QT_DESIGN_MAX_D

/* Tolerances of the target checks (see qt_designfile.h). */
#define HERM_RTOL  1e-9
#define TRACE_ATOL 1e-6
#define EIG_ATOL   1e-9
/* A matrix within this of a density matrix (relative Hermitian defect, |trace - 1|, smallest
 * eigenvalue of the Hermitian part over its trace) but outside the three above is projected
 * onto the density matrices: a published matrix printed to 4 decimals is off by up to
 * d * 5e-5 (8e-4 at d = 16) in trace and in its eigenvalues. */
#define NEAR_TOL 1e-3

/* Where numbers read from JSON go: entry (r, c) of a matrix read at offset off lands in
 * dst[off + r * rs + c * cs], as its real or its imaginary part. */
struct dest {
    double complex *dst; /* NULL: check only */
    size_t rs, cs;
    bool imag;
};

/* ---- shared helpers ---- */

int qt_jsonfile_load_object(const char *buf, size_t len, size_t max, json_t **ret_root,
                            struct qt_diag *reterr)
{
    json_error_t jerr;
    json_t *root;

    if (len > max)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "input has %zu bytes, the limit is %zu", len,
                           max);
    root = json_loadb(buf && len ? buf : "", buf ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory while parsing JSON");
        return qt_diag_set(reterr, QT_EPARSE, jerr.line > 0 ? (unsigned)jerr.line : 0,
                           jerr.column > 0 ? (unsigned)jerr.column : 0, "invalid JSON: %s",
                           jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "the top level must be a JSON object");
    }
    *ret_root = root;
    return 0;
}

static int load(const char *buf, size_t len, json_t **ret_root, struct qt_diag *reterr)
{
    return qt_jsonfile_load_object(buf, len, QT_DESIGNFILE_MAX_BYTES, ret_root, reterr);
}

/* Rejects any key of obj not in the NULL-terminated list allowed. where names the object
 * (NULL at the top level). */
static int check_keys(json_t *obj, const char *const *allowed, const char *where,
                      struct qt_diag *reterr)
{
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        char expect[96] = "";
        size_t k, used = 0;

        for (k = 0; allowed[k] && strcmp(key, allowed[k]) != 0; k++)
            ;
        if (allowed[k])
            continue;
        for (k = 0; allowed[k] && used < sizeof(expect); k++)
            used += (size_t)snprintf(expect + used, sizeof(expect) - used, "%s%s", k ? ", " : "",
                                     allowed[k]);
        if (where)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "unknown key '%s' in '%s' (expected %s)",
                               key, where, expect);
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "unknown key '%s' (expected %s)", key, expect);
    }
    return 0;
}

/* Reads a JSON array of exactly n numbers into to->dst + off with stride to->cs (nothing is
 * stored when to->dst is NULL). The caller has checked the length; label names the array in
 * messages. */
static int read_vec(json_t *arr, size_t n, const char *label, const struct dest *to, size_t off,
                    struct qt_diag *reterr)
{
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(arr, k);

        if (!json_is_number(v))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s[%zu]' must be a number", label, k);
        if (to->dst) {
            /* A double complex is laid out as double[2] (C17 6.2.5p13). */
            double *z = (double *)(to->dst + off + k * to->cs);

            z[to->imag] = json_number_value(v);
        }
    }
    return 0;
}

/* Reads the rows x cols matrix arr (an array of rows) whose row count the caller has checked.
 * expect is printed before the expected row length ("dim = ", "d = " or ""). */
static int read_mat(json_t *arr, size_t rows, size_t cols, const char *label, const char *expect,
                    const struct dest *to, size_t off, struct qt_diag *reterr)
{
    for (size_t r = 0; r < rows; r++) {
        json_t *row = json_array_get(arr, r);
        char rl[80];
        int ret;

        if (!json_is_array(row))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' row %zu must be an array", label, r);
        if (json_array_size(row) != cols)
            return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                               "'%s' row %zu has %zu entries, expected %s%zu", label, r,
                               json_array_size(row), expect, cols);
        (void)snprintf(rl, sizeof(rl), "%s[%zu]", label, r);
        ret = read_vec(row, cols, rl, to, off + r * to->rs, reterr);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Splits {"re": ..., "im": ...} (or another pair of names) into its parts; im may be absent. */
static int get_parts(json_t *obj, const char *name, const char *const *keys, json_t **ret_re,
                     json_t **ret_im, struct qt_diag *reterr)
{
    json_t *re, *im;
    int r;

    if (!json_is_object(obj))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'%s' must be an object with '%s' and optional '%s'", name, keys[0],
                           keys[1]);
    r = check_keys(obj, keys, name, reterr);
    if (r < 0)
        return r;
    re = json_object_get(obj, keys[0]);
    im = json_object_get(obj, keys[1]);
    if (!re)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' needs '%s'", name, keys[0]);
    if (!json_is_array(re))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s.%s' must be an array", name, keys[0]);
    if (im && !json_is_array(im))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s.%s' must be an array", name, keys[1]);
    *ret_re = re;
    *ret_im = im;
    return 0;
}

static double complex *alloc_cplx(size_t n)
{
    if (n == 0 || n > SIZE_MAX / sizeof(double complex))
        return NULL;
    return calloc(n, sizeof(double complex));
}

/* ---- design files ---- */

/* The validated spec and the arrays it points to. */
struct design_in {
    struct qt_custom_spec spec;
    double complex *kets, *elems;
    int64_t *groups;
    double *weights, *background;
};

static int read_dim(json_t *root, size_t *ret_d, struct qt_diag *reterr)
{
    json_t *v = json_object_get(root, "dim");
    json_int_t d;

    if (!v)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "missing key 'dim'");
    if (!json_is_integer(v))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'dim' must be an integer >= 2");
    d = json_integer_value(v);
    if (d < 2)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "'dim' must be an integer >= 2, got %lld",
                           (long long)d);
    if (d > CUSTOM_MAX_DIM)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "'dim' is %lld, custom designs support dim <= %d",
                           (long long)d, CUSTOM_MAX_DIM);
    *ret_d = (size_t)d;
    return 0;
}

/* Checks the outcome count m taken from the length of 'name.re'. */
static int check_m(size_t m, const char *name, struct qt_diag *reterr)
{
    if (m == 0)
        return qt_diag_set(reterr, QT_ENOTIC, 0, 0,
                           "'%s.re' is empty: a design needs at least dim^2 elements", name);
    if (m > QT_DESIGN_MAX_OUTCOMES)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                           "'%s.re' has %zu entries, the limit is %u outcomes", name, m,
                           QT_DESIGN_MAX_OUTCOMES);
    return 0;
}

/* "vectors": m kets of length d, rows of the file; stored row-major (row a = ket a). */
static int parse_vectors(json_t *obj, size_t d, struct design_in *in, struct qt_diag *reterr)
{
    static const char *const keys[] = {"re", "im", NULL};
    json_t *re = NULL, *im = NULL;
    struct dest to = {NULL, d, 1, false};
    size_t m;
    int r;

    r = get_parts(obj, "vectors", keys, &re, &im, reterr);
    if (r < 0)
        return r;
    m = json_array_size(re);
    r = check_m(m, "vectors", reterr);
    if (r < 0)
        return r;
    if (im && json_array_size(im) != m)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'vectors.im' has %zu rows, 'vectors.re' has %zu", json_array_size(im),
                           m);
    /* Check everything before allocating, then copy. */
    for (int pass = 0; pass < 2; pass++) {
        r = read_mat(re, m, d, "vectors.re", "dim = ", &to, 0, reterr);
        if (r >= 0 && im) {
            to.imag = true;
            r = read_mat(im, m, d, "vectors.im", "dim = ", &to, 0, reterr);
            to.imag = false;
        }
        if (r < 0 || pass == 1)
            break;
        if (m > SIZE_MAX / d || !(in->kets = to.dst = alloc_cplx(m * d)))
            return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for %zu vectors", m);
    }
    in->spec.m = m;
    in->spec.kets = in->kets;
    return r;
}

/* Checks (to.dst == NULL) or copies one part of "elements": m row-major d x d matrices. */
static int read_elements(json_t *arr, size_t m, size_t d, const char *part, const struct dest *to,
                         struct qt_diag *reterr)
{
    for (size_t a = 0; a < m; a++) {
        json_t *E = json_array_get(arr, a);
        char label[64];
        int r;

        (void)snprintf(label, sizeof(label), "elements.%s[%zu]", part, a);
        if (!json_is_array(E))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' must be an array of %zu rows", label,
                               d);
        if (json_array_size(E) != d)
            return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "'%s' has %zu rows, expected dim = %zu",
                               label, json_array_size(E), d);
        r = read_mat(E, d, d, label, "", to, a * d * d, reterr);
        if (r < 0)
            return r;
    }
    return 0;
}

/* "elements": m Hermitian d x d matrices, each row-major. */
static int parse_elements(json_t *obj, size_t d, struct design_in *in, struct qt_diag *reterr)
{
    static const char *const keys[] = {"re", "im", NULL};
    json_t *re = NULL, *im = NULL;
    struct dest to = {NULL, d, 1, false};
    size_t m;
    int r;

    r = get_parts(obj, "elements", keys, &re, &im, reterr);
    if (r < 0)
        return r;
    m = json_array_size(re);
    r = check_m(m, "elements", reterr);
    if (r < 0)
        return r;
    if (im && json_array_size(im) != m)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'elements.im' has %zu elements, 'elements.re' has %zu",
                           json_array_size(im), m);
    for (int pass = 0; pass < 2; pass++) {
        r = read_elements(re, m, d, "re", &to, reterr);
        if (r >= 0 && im) {
            to.imag = true;
            r = read_elements(im, m, d, "im", &to, reterr);
            to.imag = false;
        }
        if (r < 0 || pass == 1)
            break;
        if (m > SIZE_MAX / (d * d) || !(in->elems = to.dst = alloc_cplx(m * d * d)))
            return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for %zu elements", m);
    }
    in->spec.m = m;
    in->spec.elems = in->elems;
    return r;
}

/* Checks that the optional array 'name' has one entry per element. */
static int per_element(json_t *v, const char *name, size_t m, struct qt_diag *reterr)
{
    if (!json_is_array(v))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' must be an array", name);
    if (json_array_size(v) != m)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'%s' has %zu entries, expected %zu (one per element)", name,
                           json_array_size(v), m);
    return 0;
}

static int parse_groups(json_t *v, struct design_in *in, struct qt_diag *reterr)
{
    size_t m = in->spec.m;
    int r = per_element(v, "groups", m, reterr);

    if (r < 0)
        return r;
    in->groups = malloc(m * sizeof(int64_t));
    if (!in->groups)
        return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for groups");
    for (size_t a = 0; a < m; a++) {
        json_t *g = json_array_get(v, a);

        if (!json_is_integer(g) || json_integer_value(g) < 0)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "'groups[%zu]' must be a non-negative integer", a);
        in->groups[a] = (int64_t)json_integer_value(g);
    }
    in->spec.groups = in->groups;
    return 0;
}

static int parse_weights(json_t *v, struct design_in *in, struct qt_diag *reterr)
{
    size_t m = in->spec.m;
    int r = per_element(v, "weights", m, reterr);

    if (r < 0)
        return r;
    in->weights = malloc(m * sizeof(double));
    if (!in->weights)
        return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for weights");
    for (size_t a = 0; a < m; a++) {
        json_t *w = json_array_get(v, a);
        double x = json_is_number(w) ? json_number_value(w) : NAN;

        if (!(x > 0.0) || !isfinite(x))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'weights[%zu]' must be a positive number",
                               a);
        in->weights[a] = x;
    }
    in->spec.weights = in->weights;
    return 0;
}

static int parse_background(json_t *v, struct design_in *in, struct qt_diag *reterr)
{
    size_t m = in->spec.m;
    int r = per_element(v, "background", m, reterr);

    if (r < 0)
        return r;
    in->background = malloc(m * sizeof(double));
    if (!in->background)
        return qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for background");
    for (size_t a = 0; a < m; a++) {
        json_t *b = json_array_get(v, a);
        double x = json_is_number(b) ? json_number_value(b) : NAN;

        if (!(x >= 0.0) || !isfinite(x))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "'background[%zu]' must be a number >= 0", a);
        in->background[a] = x;
    }
    in->spec.background = in->background;
    return 0;
}

/* Everything but the physics: keys, dim, the one data block, groups, weights, background,
 * name. */
static int parse_design(json_t *root, struct design_in *in, struct qt_diag *reterr)
{
    static const char *const keys[] = {"dim",  "vectors",    "elements", "groups", "weights",
                                       "name", "background", NULL};
    json_t *vec = json_object_get(root, "vectors"), *el = json_object_get(root, "elements");
    json_t *groups = json_object_get(root, "groups"), *w = json_object_get(root, "weights");
    json_t *name = json_object_get(root, "name"), *bg;
    int r;

    r = check_keys(root, keys, NULL, reterr);
    if (r >= 0)
        r = read_dim(root, &in->spec.d, reterr);
    if (r < 0)
        return r;
    if (!vec == !el)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "give exactly one of 'vectors' and 'elements'");
    if (name && !json_is_string(name))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'name' must be a string");
    r = vec ? parse_vectors(vec, in->spec.d, in, reterr)
            : parse_elements(el, in->spec.d, in, reterr);
    if (r >= 0 && groups)
        r = parse_groups(groups, in, reterr);
    if (r >= 0 && w)
        r = parse_weights(w, in, reterr);
    if (r >= 0 && (bg = json_object_get(root, "background")))
        r = parse_background(bg, in, reterr);
    return r;
}

int qt_designfile_parse(const char *buf, size_t len, struct qt_design **ret_des,
                        struct qt_diag *reterr)
{
    struct design_in in = {0};
    struct qt_design *des = NULL;
    json_t *root = NULL;
    int r;

    r = load(buf, len, &root, reterr);
    if (r < 0)
        goto out;
    r = parse_design(root, &in, reterr);
    if (r < 0)
        goto out;
    if (reterr)
        reterr->msg[0] = '\0';
    r = qt_design_new_custom(&in.spec, &des, reterr);
    if (r < 0) {
        /* Some failures (memory, LAPACK) come back without a message. */
        if (reterr && !reterr->msg[0])
            (void)qt_diag_set(reterr, r, 0, 0, "cannot build the custom design: %s",
                              qt_strerror(r));
        goto out;
    }
    *ret_des = des;
out:
    json_decref(root);
    free(in.kets);
    free(in.elems);
    free(in.groups);
    free(in.weights);
    free(in.background);
    return r;
}

/* ---- target files ---- */

/* Reads a vector of d numbers ('name.re', optional 'name.im') into psi. */
static int read_ket(json_t *obj, size_t d, double complex *psi, struct qt_diag *reterr)
{
    static const char *const keys[] = {"re", "im", NULL};
    json_t *re = NULL, *im = NULL;
    struct dest to = {psi, 0, 1, false};
    int r;

    r = get_parts(obj, "ket", keys, &re, &im, reterr);
    if (r < 0)
        return r;
    if (json_array_size(re) != d)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "'ket.re' has %zu entries, expected d = %zu",
                           json_array_size(re), d);
    if (im && json_array_size(im) != d)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "'ket.im' has %zu entries, 'ket.re' has %zu",
                           json_array_size(im), d);
    r = read_vec(re, d, "ket.re", &to, 0, reterr);
    to.imag = true;
    if (r >= 0 && im)
        r = read_vec(im, d, "ket.im", &to, 0, reterr);
    return r;
}

/* psi_k = c_k exp(i pi phi_k) from "amplitudes" and "phases_pi". */
static int read_amplitudes(json_t *amp, json_t *ph, size_t d, double complex *psi,
                           struct qt_diag *reterr)
{
    if (!json_is_array(amp) || !json_is_array(ph))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'amplitudes' and 'phases_pi' must both be arrays");
    if (json_array_size(amp) != d)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "'amplitudes' has %zu entries, expected d = %zu",
                           json_array_size(amp), d);
    if (json_array_size(ph) != d)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'phases_pi' has %zu entries, 'amplitudes' has %zu", json_array_size(ph),
                           d);
    for (size_t k = 0; k < d; k++) {
        json_t *c = json_array_get(amp, k), *p = json_array_get(ph, k);
        double ck, pk;

        if (!json_is_number(c) || !json_is_number(p))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s[%zu]' must be a number",
                               json_is_number(c) ? "phases_pi" : "amplitudes", k);
        ck = json_number_value(c);
        pk = json_number_value(p);
        if (!isfinite(ck) || !(ck >= 0.0))
            return qt_diag_set(reterr, QT_ENOTPHYS, 0, 0,
                               "'amplitudes[%zu]' must be finite and >= 0, got %g", k, ck);
        if (!isfinite(pk))
            return qt_diag_set(reterr, QT_ENOTPHYS, 0, 0, "'phases_pi[%zu]' must be finite", k);
        psi[k] = qt_theory_coef(ck, pk); /* as the named profiles are built */
    }
    return 0;
}

/* Normalises psi (scaled first so that no square overflows) and writes rho = psi psi^H. */
static int pure_rho(size_t d, double complex *psi, const char *name, double complex *rho,
                    struct qt_diag *reterr)
{
    double amax = 0.0;

    for (size_t k = 0; k < d; k++)
        amax = fmax(amax, fmax(fabs(creal(psi[k])), fabs(cimag(psi[k]))));
    if (qt_ket_normalise(d, psi) < 0)
        return qt_diag_set(reterr, QT_ENOTPHYS, 0, 0, "'%s' is %s", name,
                           amax > 0.0 ? "not finite" : "the zero vector");
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++)
            rho[i + d * j] = psi[i] * conj(psi[j]);
    return 0;
}

/* Reads rows of a d x d matrix into rho (column-major). Accepts {re, im} / {real, imag} objects
 * and, for "density_matrix", a plain array of real rows as the origin's loader does. */
static int read_rho(json_t *obj, const char *name, size_t d, double complex *rho,
                    struct qt_diag *reterr)
{
    static const char *const rho_keys[] = {"re", "im", NULL};
    static const char *const dm_keys[] = {"real", "imag", NULL};
    const char *const *keys = strcmp(name, "rho") == 0 ? rho_keys : dm_keys;
    json_t *parts[2] = {obj, NULL};
    struct dest to = {rho, 1, d, false};
    int r = 0;

    if (!json_is_array(obj) || keys == rho_keys)
        r = get_parts(obj, name, keys, &parts[0], &parts[1], reterr);
    for (int p = 0; p < 2 && r >= 0 && parts[p]; p++) {
        char label[32];

        (void)snprintf(label, sizeof(label), "%s%s%s", name, json_is_array(obj) ? "" : ".",
                       json_is_array(obj) ? "" : keys[p]);
        if (json_array_size(parts[p]) != d)
            return qt_diag_set(reterr, p ? QT_ESHAPE : QT_EDIM, 0, 0,
                               "'%s' has %zu rows, expected d = %zu", label,
                               json_array_size(parts[p]), d);
        to.imag = p == 1;
        r = read_mat(parts[p], d, d, label, "d = ", &to, 0, reterr);
    }
    return r;
}

/* ||A - A^H||_F / ||A||_F, computed on A / max|a_ij| so that no square overflows; 0 for A = 0. */
static double herm_defect(size_t d, const double complex *A)
{
    double amax = 0.0, herm = 0.0, nrm = 0.0;

    for (size_t t = 0; t < d * d; t++)
        amax = fmax(amax, fmax(fabs(creal(A[t])), fabs(cimag(A[t]))));
    if (!(amax > 0.0))
        return 0.0;
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            double complex a = A[i + d * j] / amax, b = conj(A[j + d * i]) / amax;

            herm += creal((a - b) * conj(a - b));
            nrm += creal(a * conj(a));
        }
    return sqrt(herm) / sqrt(nrm);
}

/* rho = V diag(lam) V^H, exactly Hermitian (lower triangle computed, mirrored, real diagonal). */
static void rebuild(size_t d, const double complex *V, const double *lam, double complex *rho)
{
    for (size_t j = 0; j < d; j++)
        for (size_t i = j; i < d; i++) {
            double complex s = 0.0;

            for (size_t k = 0; k < d; k++)
                s += V[i + d * k] * lam[k] * conj(V[j + d * k]);
            rho[i + d * j] = i == j ? creal(s) : s;
            rho[j + d * i] = conj(rho[i + d * j]);
        }
}

/* rho, Hermitian with trace tr (|tr - 1| <= NEAR_TOL), whose smallest eigenvalue is below
 * -EIG_ATOL or whose trace or Hermitian defect was outside the strict tolerances: checks the
 * eigenvalues of rho / tr against -NEAR_TOL and replaces rho by its projection (negative
 * eigenvalues clipped, renormalised). */
static int project(size_t d, double complex *rho, double tr, const char *name,
                   struct qt_target_fix *fix, struct qt_diag *reterr)
{
    struct qt_ws ws = QT_WS_INIT;
    double complex *V = qt_ws_alloc_n(&ws, d * d, sizeof(*V));
    double *w = qt_ws_alloc_n(&ws, d, sizeof(*w)), sum = 0.0, dist = 0.0;
    int r = V && w ? 0 : -ENOMEM;

    if (r < 0)
        goto out;
    memcpy(V, rho, d * d * sizeof(*V));
    r = qt_zheev(&ws, true, d, V, d, w);
    if (r < 0) {
        r = qt_diag_set(reterr, r, 0, 0, "eigenvalues of '%s': %s", name, qt_strerror(r));
        goto out;
    }
    fix->min_eig = w[0] / tr;
    if (!(fix->min_eig >= -NEAR_TOL)) {
        r = qt_diag_set(reterr, QT_ENOTPHYS, 0, 0,
                        "'%s' has a negative eigenvalue %.6g (tolerance %g)", name, fix->min_eig,
                        NEAR_TOL);
        goto out;
    }
    for (size_t k = 0; k < d; k++)
        sum += fmax(w[k], 0.0);
    for (size_t k = 0; k < d; k++) {
        double p = fmax(w[k], 0.0) / sum;

        dist += fabs(w[k] / tr - p);
        w[k] = p;
    }
    fix->distance = 0.5 * dist;
    fix->projected = true;
    rebuild(d, V, w, rho);
    tr = 0.0;
    for (size_t i = 0; i < d; i++)
        tr += creal(rho[i + d * i]);
    for (size_t t = 0; t < d * d; t++) /* trace 1 to rounding: a second check keeps the bits */
        rho[t] /= tr;
out:
    qt_ws_done(&ws);
    return r;
}

/* Fails unless the Hermitian matrix A has no eigenvalue below -EIG_ATOL; sets *ret_min. */
static int check_psd(size_t d, const double complex *A, const char *name, double *ret_min,
                     struct qt_diag *reterr)
{
    struct qt_ws ws = QT_WS_INIT;
    double complex *B = qt_ws_alloc_n(&ws, d * d, sizeof(*B));
    double *w = qt_ws_alloc_n(&ws, d, sizeof(*w));
    int r = B && w ? 0 : -ENOMEM;

    if (r < 0)
        goto out;
    memcpy(B, A, d * d * sizeof(*B));
    r = qt_zheev(&ws, false, d, B, d, w);
    if (r < 0)
        r = qt_diag_set(reterr, r, 0, 0, "eigenvalues of '%s': %s", name, qt_strerror(r));
    else if (w[0] < -EIG_ATOL)
        r = qt_diag_set(reterr, QT_ENOTPHYS, 0, 0,
                        "'%s' has a negative eigenvalue %.6g (tolerance %g)", name, w[0], EIG_ATOL);
    else
        *ret_min = w[0];
out:
    qt_ws_done(&ws);
    return r;
}

/* Checks that rho is Hermitian, has unit trace and no negative eigenvalue, then makes it
 * exactly Hermitian and divides it by its trace. With fix (files), a matrix outside those
 * tolerances but within NEAR_TOL of a density matrix is projected onto one instead of refused,
 * and fix says so; without (the wire), it is refused. */
static int check_density(size_t d, double complex *rho, const char *name, struct qt_target_fix *fix,
                         struct qt_diag *reterr)
{
    double defect = herm_defect(d, rho), tr = 0.0, min_eig = 0.0;
    double lim = fix ? NEAR_TOL : 0.0;
    bool strict;
    int r;

    if (!(defect <= HERM_RTOL || defect <= lim))
        return qt_diag_set(reterr, QT_ENOTPHYS, 0, 0,
                           "'%s' is not Hermitian (||A - A^H|| / ||A|| = %.3g)", name, defect);
    for (size_t i = 0; i < d; i++)
        tr += creal(rho[i + d * i]);
    if (!(fabs(tr - 1.0) <= TRACE_ATOL || fabs(tr - 1.0) <= lim))
        return qt_diag_set(reterr, QT_ENOTPHYS, 0, 0, "'%s' has trace %.9g, expected 1 (within %g)",
                           name, tr, fix ? NEAR_TOL : TRACE_ATOL);
    strict = defect <= HERM_RTOL && fabs(tr - 1.0) <= TRACE_ATOL;
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i <= j; i++) {
            double complex h = 0.5 * (rho[i + d * j] + conj(rho[j + d * i]));

            rho[i + d * j] = i == j ? creal(h) : h;
            rho[j + d * i] = conj(rho[i + d * j]);
        }
    if (fix) {
        memset(fix, 0, sizeof(*fix));
        fix->trace = tr;
        fix->herm_defect = defect;
    }
    r = strict ? check_psd(d, rho, name, &min_eig, reterr) : QT_ENOTPHYS;
    if (r < 0 && !(r == QT_ENOTPHYS && fix))
        return r;
    if (r < 0) /* fix: outside the strict tolerances, maybe near enough */
        return project(d, rho, tr, name, fix, reterr);
    if (fix)
        fix->min_eig = min_eig / tr;
    /* A trace within rounding of 1 is left as it is, so that checking a state twice (qtomoctl
     * reads the target file, the daemon's worker checks what arrives) gives the same bits. */
    if (fabs(tr - 1.0) > 4.0 * (double)d * DBL_EPSILON)
        for (size_t t = 0; t < d * d; t++)
            rho[t] /= tr;
    return 0;
}

int qt_target_check(size_t d, double complex *rho, struct qt_diag *reterr)
{
    return check_density(d, rho, "target", NULL, reterr);
}

/* Picks the one state given in the file and checks the optional "dim". */
/* psi of the named profile {"profile": "4D_custom"} for dimension d. */
static int read_profile(json_t *prof, size_t d, double complex *psi, struct qt_diag *reterr)
{
    const struct qt_theory_profile *p = qt_theory_profile_find(json_string_value(prof));

    if (!json_is_string(prof))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'profile' must be a string");
    if (!p)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'profile': unknown profile '%s' (known: 4D_custom, 16D_custom)",
                           json_string_value(prof));
    if (p->d != d)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "profile '%s' has d = %zu, the data has d = %zu",
                           p->name, p->d, d);
    for (size_t k = 0; k < d; k++)
        psi[k] = qt_theory_coef(p->c[k], p->phi[k]);
    return 0;
}

static int parse_target(json_t *root, size_t d, double complex *rho, double complex *psi,
                        struct qt_target_fix *fix, struct qt_diag *reterr)
{
    static const char *const keys[] = {"ket",       "rho", "density_matrix", "amplitudes",
                                       "phases_pi", "dim", "profile",        NULL};
    json_t *ket = json_object_get(root, "ket"), *rh = json_object_get(root, "rho");
    json_t *dm = json_object_get(root, "density_matrix");
    json_t *amp = json_object_get(root, "amplitudes"), *dim = json_object_get(root, "dim");
    json_t *ph = json_object_get(root, "phases_pi"), *prof = json_object_get(root, "profile");
    int r = check_keys(root, keys, NULL, reterr);

    if (r < 0)
        return r;
    if (!!ket + !!rh + !!dm + !!amp + !!prof != 1)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "give exactly one of 'ket', 'rho', 'density_matrix', 'amplitudes' and "
                           "'profile'");
    if (!amp != !ph)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'amplitudes' and 'phases_pi' go together");
    if (dim && !json_is_integer(dim))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'dim' must be an integer");
    if (dim && (json_integer_value(dim) < 1 || (size_t)json_integer_value(dim) != d))
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "target has dim %lld, the data has dim %zu",
                           (long long)json_integer_value(dim), d);
    if (ket || amp || prof) {
        r = ket   ? read_ket(ket, d, psi, reterr)
            : amp ? read_amplitudes(amp, ph, d, psi, reterr)
                  : read_profile(prof, d, psi, reterr);
        if (r >= 0)
            r = pure_rho(d, psi, ket ? "ket" : amp ? "amplitudes" : "profile", rho, reterr);
        return r;
    }
    r = read_rho(rh ? rh : dm, rh ? "rho" : "density_matrix", d, rho, reterr);
    if (r >= 0)
        r = check_density(d, rho, rh ? "rho" : "density_matrix", fix, reterr);
    return r;
}

int qt_targetfile_parse(const char *buf, size_t len, size_t d, double complex *ret_rho,
                        struct qt_target_fix *ret_fix, struct qt_diag *reterr)
{
    struct qt_target_fix fix = {0};

    double complex *rho = NULL, *psi = NULL;
    json_t *root = NULL;
    int r;

    if (d < 1 || d > TARGET_MAX_DIM)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "target dimension %zu is not in 1..%d", d,
                           TARGET_MAX_DIM);
    r = load(buf, len, &root, reterr);
    if (r < 0)
        goto out;
    rho = alloc_cplx(d * d);
    psi = alloc_cplx(d);
    if (!rho || !psi) {
        r = qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory for a %zu x %zu target", d, d);
        goto out;
    }
    r = parse_target(root, d, rho, psi, &fix, reterr);
    if (r < 0)
        goto out;
    memcpy(ret_rho, rho, d * d * sizeof(*rho));
    if (ret_fix)
        *ret_fix = fix;
out:
    json_decref(root);
    free(rho);
    free(psi);
    return r;
}

/* Detector files: structure checked here (key, index), the model by qt_detector_new. */
#include "qt_detectorfile.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_jsonfile.h"
#include "io/qt_designfile.h"

/* Bounds on counts read from the file before anything is allocated by them. */
#define MAX_VALUES QT_DESIGN_MAX_OUTCOMES

struct det_in {
    double *eff, *bg, *tint, *cross, *qcross;
    size_t *cross_k;
    double *acc_time, *acc_singles, *acc; /* "accidentals": T_g, S_ai, A_a (m) */
    size_t *acc_fold;
};

static void det_in_done(struct det_in *in)
{
    free(in->eff);
    free(in->bg);
    free(in->tint);
    free(in->cross);
    free(in->qcross);
    free(in->cross_k);
    free(in->acc_time);
    free(in->acc_singles);
    free(in->acc);
    free(in->acc_fold);
}

/* A JSON array of numbers, at most MAX_VALUES. */
static int read_numbers(json_t *root, const char *key, double **ret, size_t *ret_n,
                        struct qt_diag *reterr)
{
    json_t *arr = json_object_get(root, key);
    size_t n;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' must be an array of numbers", key);
    n = json_array_size(arr);
    if (n == 0 || n > MAX_VALUES)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "'%s' has %zu values (1 to %zu allowed)", key,
                           n, (size_t)MAX_VALUES);
    *ret = malloc(n * sizeof(double));
    if (!*ret)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);

        if (!json_is_number(v))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s[%zu]' must be a number", key, i);
        (*ret)[i] = json_number_value(v);
    }
    *ret_n = n;
    return 0;
}

/* Checks that matrix g of key is a square array of rows (k = fixed_k when non-zero) whose
 * entries fit the budget of *total, and adds them to it. */
static int matrix_shape(json_t *M, const char *key, size_t g, size_t fixed_k, size_t *ret_k,
                        size_t *total, struct qt_diag *reterr)
{
    size_t k = json_is_array(M) ? json_array_size(M) : 0;

    if (k == 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s[%zu]' must be a non-empty array of rows",
                           key, g);
    if (fixed_k && k != fixed_k)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "'%s[%zu]' has %zu rows, expected %zu", key, g,
                           k, fixed_k);
    for (size_t i = 0; i < k; i++) {
        json_t *row = json_array_get(M, i);

        if (!json_is_array(row) || json_array_size(row) != k)
            return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                               "'%s[%zu]' row %zu must be an array of %zu numbers (the matrix is "
                               "square)",
                               key, g, i, k);
    }
    if (k * k > QT_DETECTOR_MAX_CROSS - *total)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "'%s' holds more than %zu entries", key,
                           (size_t)QT_DETECTOR_MAX_CROSS);
    *ret_k = k;
    *total += k * k;
    return 0;
}

/* The k x k entries of matrix g, row by row, into out. */
static int matrix_values(json_t *M, const char *key, size_t g, size_t k, double *out,
                         struct qt_diag *reterr)
{
    for (size_t i = 0; i < k; i++) {
        json_t *row = json_array_get(M, i);

        for (size_t j = 0; j < k; j++) {
            json_t *v = json_array_get(row, j);

            if (!json_is_number(v))
                return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                                   "'%s[%zu]' entry (%zu, %zu) must be a number", key, g, i, j);
            out[i * k + j] = json_number_value(v);
        }
    }
    return 0;
}

/* A JSON array of square matrices (arrays of rows); fixed_k > 0 requires that size. Shapes are
 * checked before anything is allocated for the values. */
static int read_matrices(json_t *root, const char *key, size_t fixed_k, double **ret,
                         size_t **ret_k, size_t *ret_n, struct qt_diag *reterr)
{
    json_t *arr = json_object_get(root, key);
    size_t n, total = 0, off = 0;
    int r = 0;

    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'%s' must be an array of square matrices",
                           key);
    n = json_array_size(arr);
    if (n == 0 || n > MAX_VALUES)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "'%s' has %zu matrices (1 to %zu allowed)", key,
                           n, (size_t)MAX_VALUES);
    *ret_k = malloc(n * sizeof(size_t));
    if (!*ret_k)
        return -ENOMEM;
    for (size_t g = 0; g < n && r >= 0; g++)
        r = matrix_shape(json_array_get(arr, g), key, g, fixed_k, *ret_k + g, &total, reterr);
    if (r < 0)
        return r;
    *ret = malloc(total * sizeof(double));
    if (!*ret)
        return -ENOMEM;
    for (size_t g = 0; g < n && r >= 0; g++) {
        r = matrix_values(json_array_get(arr, g), key, g, (*ret_k)[g], *ret + off, reterr);
        off += (*ret_k)[g] * (*ret_k)[g];
    }
    if (r >= 0)
        *ret_n = n;
    return r;
}

/* "accidentals.time": one number (every group) or an array of numbers. */
static int read_acc_time(json_t *v, struct det_in *in, struct qt_accidentals_spec *acc,
                         struct qt_diag *reterr)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;

    if (!json_is_number(v) && !json_is_array(v))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'accidentals.time' must be a number or an array of numbers "
                           "(seconds)");
    if (n == 0 || n > MAX_VALUES)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'accidentals.time' has %zu values (1 to %zu allowed)", n,
                           (size_t)MAX_VALUES);
    in->acc_time = malloc(n * sizeof(double));
    if (!in->acc_time)
        return -ENOMEM;
    for (size_t g = 0; g < n; g++) {
        json_t *x = json_is_array(v) ? json_array_get(v, g) : v;

        if (!json_is_number(x))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "'accidentals.time[%zu]' must be a number",
                               g);
        in->acc_time[g] = json_number_value(x);
    }
    acc->time = in->acc_time;
    acc->n_time = n;
    return 0;
}

/* "accidentals.singles": an array of arrays of numbers, shapes checked before the values are
 * allocated (their lengths are checked against the design by qt_detector_accidentals). */
static int read_acc_singles(json_t *v, struct det_in *in, struct qt_accidentals_spec *acc,
                            struct qt_diag *reterr)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0, total = 0, off = 0;

    if (!json_is_array(v))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'accidentals.singles' must be an array of arrays (the singles "
                           "counts of each outcome's detectors)");
    if (n == 0 || n > MAX_VALUES)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "'accidentals.singles' has %zu arrays (1 to %zu allowed)", n,
                           (size_t)MAX_VALUES);
    in->acc_fold = malloc(n * sizeof(size_t));
    if (!in->acc_fold)
        return -ENOMEM;
    for (size_t a = 0; a < n; a++) {
        json_t *row = json_array_get(v, a);

        if (!json_is_array(row))
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "'accidentals.singles[%zu]' must be an array of numbers", a);
        in->acc_fold[a] = json_array_size(row);
        total += in->acc_fold[a];
    }
    in->acc_singles = malloc((total ? total : 1) * sizeof(double));
    if (!in->acc_singles)
        return -ENOMEM;
    for (size_t a = 0; a < n; a++) {
        json_t *row = json_array_get(v, a);

        for (size_t i = 0; i < in->acc_fold[a]; i++) {
            json_t *x = json_array_get(row, i);

            if (!json_is_number(x))
                return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                                   "'accidentals.singles[%zu][%zu]' must be a number", a, i);
            in->acc_singles[off++] = json_number_value(x);
        }
    }
    acc->singles = in->acc_singles;
    acc->fold = in->acc_fold;
    acc->n_outcomes = n;
    return 0;
}

/* The "accidentals" object: its keys, then its values. */
static int read_acc_object(json_t *obj, struct det_in *in, struct qt_accidentals_spec *acc,
                           struct qt_diag *reterr)
{
    static const char *const keys[] = {"window", "time", "singles", NULL};
    json_t *v[3];
    int r;

    if (!json_is_object(obj))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'accidentals' must be an object {\"window\", \"time\", "
                           "\"singles\"}");
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t k;

        for (k = 0; keys[k] && strcmp(key, keys[k]) != 0; k++)
            ;
        if (!keys[k])
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "unknown key 'accidentals.%s' (expected window, time, singles)",
                               key);
    }
    for (size_t k = 0; k < 3; k++) {
        v[k] = json_object_get(obj, keys[k]);
        if (!v[k])
            return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                               "'accidentals' needs '%s' (window: the coincidence window, "
                               "time: the counting time, both in seconds; singles: the singles "
                               "counts of each outcome's detectors)",
                               keys[k]);
    }
    if (!json_is_number(v[0]))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "'accidentals.window' must be a number (seconds)");
    acc->window = json_number_value(v[0]);
    r = read_acc_time(v[1], in, acc, reterr);
    if (r >= 0)
        r = read_acc_singles(v[2], in, acc, reterr);
    return r;
}

/* Accidentals from singles (qt_detector_accidentals) added to the background: they become it
 * when the file has none; else they are added to every entry that is a valid background
 * (>= 0) when "background" has m values, and anything else is left for qt_detector_new to
 * refuse with the value as written. Designs beyond QT_DETECTOR_MAX_DIM are left to it too. */
static int read_accidentals(json_t *root, const struct qt_design *des, struct det_in *in,
                            struct qt_detector_spec *spec, struct qt_diag *reterr)
{
    json_t *obj = json_object_get(root, "accidentals");
    struct qt_accidentals_spec acc = {0};
    size_t m = des->m;
    int r;

    if (!obj)
        return 0;
    r = read_acc_object(obj, in, &acc, reterr);
    if (r < 0 || des->d > QT_DETECTOR_MAX_DIM)
        return r;
    in->acc = malloc(m * sizeof(double));
    if (!in->acc)
        return -ENOMEM;
    r = qt_detector_accidentals(&acc, des, in->acc, reterr);
    if (r < 0)
        return r;
    if (!in->bg) {
        in->bg = in->acc;
        in->acc = NULL;
        spec->n_bg = m;
    } else if (spec->n_bg == m) {
        for (size_t a = 0; a < m; a++) {
            if (!(in->bg[a] >= 0.0))
                continue; /* refused with its own value by qt_detector_new */
            if (!isfinite(in->bg[a] + in->acc[a]))
                return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                                   "background[%zu] + the accidentals of outcome %zu (%g + %g) "
                                   "is not a finite number",
                                   a, a, in->bg[a], in->acc[a]);
            in->bg[a] += in->acc[a];
        }
    }
    return 0;
}

int qt_detectorfile_parse(const char *buf, size_t len, const struct qt_design *des,
                          struct qt_detector **ret_det, struct qt_diag *reterr)
{
    static const char *const keys[] = {
        "efficiencies",      "crosstalk", "qubit_crosstalk", "background", "accidentals",
        "setting_intensity", NULL};
    struct qt_detector_spec spec = {0};
    struct det_in in = {0};
    size_t *qk = NULL;
    json_t *root;
    int r = qt_jsonfile_load_object(buf, len, QT_DETECTORFILE_MAX_BYTES, &root, reterr);

    if (r < 0)
        return r;
    for (void *it = json_object_iter(root); it; it = json_object_iter_next(root, it)) {
        const char *key = json_object_iter_key(it);
        size_t k;

        for (k = 0; keys[k] && strcmp(key, keys[k]) != 0; k++)
            ;
        if (!keys[k]) {
            r = qt_diag_set(reterr, QT_EPARSE, 0, 0,
                            "unknown key '%s' (expected efficiencies, crosstalk, "
                            "qubit_crosstalk, background, accidentals, setting_intensity)",
                            key);
            goto out;
        }
    }
    r = read_numbers(root, "efficiencies", &in.eff, &spec.n_eff, reterr);
    if (r >= 0)
        r = read_numbers(root, "background", &in.bg, &spec.n_bg, reterr);
    if (r >= 0)
        r = read_accidentals(root, des, &in, &spec, reterr);
    if (r >= 0)
        r = read_numbers(root, "setting_intensity", &in.tint, &spec.n_int, reterr);
    if (r >= 0)
        r = read_matrices(root, "crosstalk", 0, &in.cross, &in.cross_k, &spec.n_cross, reterr);
    if (r >= 0)
        r = read_matrices(root, "qubit_crosstalk", 2, &in.qcross, &qk, &spec.n_qcross, reterr);
    if (r < 0)
        goto out;
    spec.efficiencies = in.eff;
    spec.background = in.bg;
    spec.intensity = in.tint;
    spec.crosstalk = in.cross;
    spec.cross_k = in.cross_k;
    spec.qubit_crosstalk = in.qcross;
    r = qt_detector_new(&spec, des, ret_det, reterr);
out:
    free(qk);
    det_in_done(&in);
    json_decref(root);
    return r;
}

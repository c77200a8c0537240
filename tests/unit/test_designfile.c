/* Unit tests for the design-file and target-file parsers: built-in designs written as custom
 * files reproduce their physics, every structural error is reported with its code and a
 * precise message, and target states come out as normalised density matrices. */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_designfile.h"
#include "io/qt_json.h"
#include "qt_test.h"

/* ---- helpers ---- */

/* Writes one m x n row-major part (real or imaginary) as an array of rows. */
static void write_rows(struct qt_jw *w, size_t m, size_t n, const double complex *z, bool imag)
{
    qt_jw_arr_begin(w);
    for (size_t a = 0; a < m; a++) {
        qt_jw_arr_begin(w);
        for (size_t i = 0; i < n; i++)
            qt_jw_num(w, imag ? cimag(z[a * n + i]) : creal(z[a * n + i]));
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
}

static void write_extras(struct qt_jw *w, size_t m, const double *weights, const int64_t *groups)
{
    if (weights) {
        qt_jw_key(w, "weights");
        qt_jw_arr_begin(w);
        for (size_t a = 0; a < m; a++)
            qt_jw_num(w, weights[a]);
        qt_jw_arr_end(w);
    }
    if (groups) {
        qt_jw_key(w, "groups");
        qt_jw_arr_begin(w);
        for (size_t a = 0; a < m; a++)
            qt_jw_int(w, groups[a]);
        qt_jw_arr_end(w);
    }
}

/* A design file with m kets (row a = ket a); the caller frees the result. */
static char *vectors_json(size_t d, size_t m, const double complex *kets, const double *weights,
                          const int64_t *groups)
{
    struct qt_jw w;
    char *s;

    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "name");
    qt_jw_str(&w, "test design");
    qt_jw_key(&w, "dim");
    qt_jw_int(&w, (int64_t)d);
    qt_jw_key(&w, "vectors");
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "re");
    write_rows(&w, m, d, kets, false);
    qt_jw_key(&w, "im");
    write_rows(&w, m, d, kets, true);
    qt_jw_obj_end(&w);
    write_extras(&w, m, weights, groups);
    qt_jw_obj_end(&w);
    assert_int_equal(w.err, 0);
    s = strdup(w.buf);
    assert_non_null(s);
    qt_jw_done(&w);
    return s;
}

/* The same design in element form: E_a = k_a k_a^H, weights folded in when fold is set. */
static char *elements_json(size_t d, size_t m, const double complex *kets, const double *weights,
                           bool fold)
{
    double complex *E = malloc(m * d * d * sizeof(*E));
    struct qt_jw w;
    char *s;

    assert_non_null(E);
    for (size_t a = 0; a < m; a++)
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                E[a * d * d + i * d + j] =
                    (fold && weights ? weights[a] : 1.0) * kets[a * d + i] * conj(kets[a * d + j]);
    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "dim");
    qt_jw_int(&w, (int64_t)d);
    qt_jw_key(&w, "elements");
    qt_jw_obj_begin(&w);
    for (int part = 0; part < 2; part++) {
        qt_jw_key(&w, part ? "im" : "re");
        qt_jw_arr_begin(&w);
        for (size_t a = 0; a < m; a++)
            write_rows(&w, d, d, E + a * d * d, part == 1);
        qt_jw_arr_end(&w);
    }
    qt_jw_obj_end(&w);
    write_extras(&w, m, fold ? NULL : weights, NULL);
    qt_jw_obj_end(&w);
    assert_int_equal(w.err, 0);
    s = strdup(w.buf);
    assert_non_null(s);
    qt_jw_done(&w);
    free(E);
    return s;
}

static struct qt_design *parse_ok(const char *json)
{
    struct qt_design *des = NULL;
    struct qt_diag err = {0};
    int r = qt_designfile_parse(json, strlen(json), &des, &err);

    if (r != 0)
        print_error("parse failed (%d): %s\n", r, err.msg);
    assert_int_equal(r, 0);
    assert_non_null(des);
    return des;
}

static void parse_fail(const char *json, int code, const char *msg)
{
    struct qt_design *des = (struct qt_design *)&des; /* must stay untouched */
    struct qt_diag err = {0};
    int r = qt_designfile_parse(json, strlen(json), &des, &err);

    if (r != code || !strstr(err.msg, msg))
        print_error("input %.200s\n  got %d '%s', expected %d '%s'\n", json, r, err.msg, code, msg);
    assert_int_equal(r, code);
    assert_non_null(strstr(err.msg, msg));
    assert_ptr_equal(des, (struct qt_design *)&des);
}

static void assert_sv_equal(const struct qt_design *a, const struct qt_design *b)
{
    size_t n = QT_MIN(a->m, a->d * a->d);

    assert_int_equal(a->d, b->d);
    assert_int_equal(a->m, b->m);
    for (size_t i = 0; i < n; i++)
        qt_assert_close(a->sv[i], b->sv[i], 0.0, 1e-12);
}

/* The tetrahedral SIC kets of origin-digest §1 (unit vectors), weighted 1/2 each. */
static void sic_kets(double complex *k)
{
    const double complex om = cexp(2.0 * M_PI * I / 3.0);
    const double a = 1.0 / sqrt(3.0), b = sqrt(2.0) / sqrt(3.0);

    k[0] = 1.0;
    k[1] = 0.0;
    k[2] = a;
    k[3] = b;
    k[4] = a;
    k[5] = b * om;
    k[6] = a;
    k[7] = b * conj(om);
}

/* nopovm kets in the built-in order: basis vectors, then for each pair i < j
 * (|i> + |j>)/sqrt2 and (|i> - i|j>)/sqrt2. Row a is ket a. */
static double complex *nopovm_kets(size_t d)
{
    double complex *k = calloc(d * d * d, sizeof(*k));
    const double s = 1.0 / sqrt(2.0);
    size_t a = d;

    assert_non_null(k);
    for (size_t i = 0; i < d; i++)
        k[i * d + i] = 1.0;
    for (size_t i = 0; i + 1 < d; i++)
        for (size_t j = i + 1; j < d; j++) {
            k[a * d + i] = s;
            k[a * d + j] = s;
            a++;
            k[a * d + i] = s;
            k[a * d + j] = -I * s;
            a++;
        }
    return k;
}

/* The three Pauli eigenbases of a qubit, 6 kets. */
static void mub2_kets(double complex *k)
{
    const double s = 1.0 / sqrt(2.0);
    const double complex v[12] = {1, 0, 0, 1, s, s, s, -s, s, I * s, s, -I * s};

    memcpy(k, v, sizeof(v));
}

/* ---- designs ---- */

static void test_sic(void **state)
{
    static const double weights[4] = {0.5, 0.5, 0.5, 0.5};
    double complex k[8];
    struct qt_design *des, *ref;
    char *json;

    (void)state;
    sic_kets(k);
    json = vectors_json(2, 4, k, weights, NULL);
    des = parse_ok(json);
    assert_int_equal(des->kind, QT_DESIGN_CUSTOM);
    assert_int_equal(des->d, 2);
    assert_int_equal(des->m, 4);
    assert_true(des->povm);
    assert_true(des->rank1);
    assert_int_equal(des->rank, 4);
    assert_int_equal(des->n_groups, 1);
    qt_assert_close(des->cond, sqrt(3.0), 0.0, 1e-12);
    qt_assert_close(des->group_scale[0], 1.0, 0.0, 1e-12);
    assert_int_equal(qt_design_new(QT_DESIGN_SIC, 2, &ref, NULL), 0);
    assert_sv_equal(des, ref);
    for (size_t i = 0; i < 8; i++) { /* stored kets carry the weight: sqrt(1/2) k */
        qt_assert_close(creal(des->kets[i]), creal(ref->kets[i]), 0.0, 1e-15);
        qt_assert_close(cimag(des->kets[i]), cimag(ref->kets[i]), 0.0, 1e-15);
    }
    qt_design_free(ref);
    qt_design_free(des);
    free(json);
}

static void test_nopovm(void **state)
{
    (void)state;
    for (size_t d = 2; d <= 4; d++) {
        double complex *k = nopovm_kets(d);
        char *json = vectors_json(d, d * d, k, NULL, NULL);
        struct qt_design *des = parse_ok(json), *ref;

        assert_false(des->povm);
        assert_int_equal(des->rank, d * d);
        assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, d, &ref, NULL), 0);
        assert_sv_equal(des, ref);
        qt_assert_close(des->cond, ref->cond, 1e-12, 0.0);
        qt_design_free(ref);
        qt_design_free(des);
        free(json);
        free(k);
    }
}

/* Element form with the weights folded in, element form with separate weights and vector form
 * describe one design. */
static void test_elements_equal_vectors(void **state)
{
    static const double weights[4] = {0.5, 0.5, 0.5, 0.5};
    double complex k[8];
    char *jv, *je, *jw;
    struct qt_design *dv, *de, *dw;

    (void)state;
    sic_kets(k);
    jv = vectors_json(2, 4, k, weights, NULL);
    je = elements_json(2, 4, k, weights, true);
    jw = elements_json(2, 4, k, weights, false);
    dv = parse_ok(jv);
    de = parse_ok(je);
    dw = parse_ok(jw);
    assert_false(de->rank1);
    assert_non_null(de->elems);
    assert_true(de->povm);
    assert_sv_equal(de, dv);
    assert_sv_equal(dw, dv);
    assert_string_equal(de->id, dw->id);
    assert_string_not_equal(de->id, dv->id); /* elements and kets hash differently */
    qt_design_free(dv);
    qt_design_free(de);
    qt_design_free(dw);
    free(jv);
    free(je);
    free(jw);

    double complex *kn = nopovm_kets(3);
    jv = vectors_json(3, 9, kn, NULL, NULL);
    je = elements_json(3, 9, kn, NULL, true);
    dv = parse_ok(jv);
    de = parse_ok(je);
    assert_false(de->povm);
    assert_sv_equal(de, dv);
    qt_design_free(dv);
    qt_design_free(de);
    free(jv);
    free(je);
    free(kn);
}

static void test_groups(void **state)
{
    static const int64_t groups[6] = {9, 9, 4, 4, 70000000000, 70000000000};
    static const uint32_t want[6] = {0, 0, 1, 1, 2, 2};
    double complex k[12];
    char *json;
    struct qt_design *des, *ref;

    (void)state;
    mub2_kets(k);
    json = vectors_json(2, 6, k, NULL, groups);
    des = parse_ok(json);
    assert_int_equal(des->n_groups, 3);
    for (size_t a = 0; a < 6; a++)
        assert_int_equal(des->groups[a], want[a]);
    assert_true(des->povm);
    for (size_t g = 0; g < 3; g++)
        qt_assert_close(des->group_scale[g], 1.0, 0.0, 1e-12);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 2, &ref, NULL), 0);
    assert_sv_equal(des, ref);
    qt_design_free(ref);
    qt_design_free(des);
    free(json);

    /* Without groups the design is one group, which is not a POVM of identity scale 1 but
     * still a POVM (the sum is 3 I). */
    json = vectors_json(2, 6, k, NULL, NULL);
    des = parse_ok(json);
    assert_int_equal(des->n_groups, 1);
    assert_true(des->povm);
    qt_assert_close(des->group_scale[0], 3.0, 0.0, 1e-12);
    qt_design_free(des);
    free(json);
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return s[n] == '\0';
}

static void test_id(void **state)
{
    double complex k[12];
    char *j1, *j2;
    struct qt_design *d1, *d2, *d3, *d4;
    const char *spaced = "{ \"dim\" : 2,\n \"vectors\": {\"re\": [[1, 0], [0, 1], [0.5, 0.5], "
                         "[0.5, 0.5]],\n \"im\": [[0, 0], [0, 0], [0, 0], [0, -0.5]]}, "
                         "\"name\": \"other\"}";
    const char *no_im = "{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[0.5,0.5],[0.5,0.5]],"
                        "\"im\":[[0,0],[0,0],[0,0],[0,-0.5]]}}";

    (void)state;
    mub2_kets(k);
    j1 = vectors_json(2, 6, k, NULL, NULL);
    k[5] += 1e-12; /* one entry changes */
    j2 = vectors_json(2, 6, k, NULL, NULL);
    d1 = parse_ok(j1);
    d2 = parse_ok(j1);
    d3 = parse_ok(j2);
    assert_int_equal(strncmp(d1->id, "custom-", 7), 0);
    assert_true(is_hex(d1->id + 7, 32));
    assert_string_equal(d1->id, d2->id);
    assert_string_not_equal(d1->id, d3->id);
    qt_design_free(d1);
    qt_design_free(d2);
    qt_design_free(d3);
    /* Whitespace, key order and the name do not matter; only the content does. */
    d1 = parse_ok(spaced);
    d4 = parse_ok(no_im);
    assert_string_equal(d1->id, d4->id);
    assert_true(is_hex(d4->id + 7, 32));
    qt_design_free(d1);
    qt_design_free(d4);
    free(j1);
    free(j2);
}

static void test_not_ic(void **state)
{
    (void)state;
    /* The computational basis twice: rank 2 of 4. */
    parse_fail("{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[1,0],[0,1]]}}", QT_ENOTIC,
               "not informationally complete");
    /* A real design (no "im") cannot see imaginary parts. */
    parse_fail("{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[1,1],[1,-1],[2,1],[1,3]]}}", QT_ENOTIC,
               "rank 3, need d^2 = 4");
    /* Too few elements. */
    parse_fail("{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[1,1]]}}", QT_ENOTIC,
               "3 elements cannot be informationally complete");
    parse_fail("{\"dim\":2,\"vectors\":{\"re\":[]}}", QT_ENOTIC, "'vectors.re' is empty");
    parse_fail("{\"dim\":2,\"elements\":{\"re\":[]}}", QT_ENOTIC, "'elements.re' is empty");
}

static void test_not_psd(void **state)
{
    (void)state;
    parse_fail("{\"dim\":2,\"elements\":{\"re\":[[[1,0],[0,0]],[[0,0],[0,1]],[[1,0],[0,-1]],"
               "[[0.5,0.5],[0.5,0.5]]],"
               "\"im\":[[[0,0],[0,0]],[[0,0],[0,0]],[[0,0],[0,0]],[[0,0.5],[-0.5,0]]]}}",
               QT_ENOTPSD, "element 2 is not positive semidefinite");
    parse_fail("{\"dim\":2,\"elements\":{\"re\":[[[1,0],[0,0]],[[0,1],[0,1]],[[1,0],[0,1]],"
               "[[0.5,0.5],[0.5,0.5]]]}}",
               QT_ENOTPSD, "element 1 is not Hermitian");
    parse_fail("{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,0],[1,1],[1,1]]}}", QT_ENOTPSD,
               "vector 1 is zero");
}

/* Rows of a dim-wide matrix with entries 0, row bad having bad_len entries. */
static void rows(char *out, size_t size, size_t m, size_t d, size_t bad, size_t bad_len)
{
    size_t k = (size_t)snprintf(out, size, "[");

    for (size_t a = 0; a < m; a++) {
        size_t n = a == bad ? bad_len : d;

        k += (size_t)snprintf(out + k, size - k, "%s[", a ? "," : "");
        for (size_t i = 0; i < n; i++)
            k += (size_t)snprintf(out + k, size - k, "%s%d", i ? "," : "", a == i ? 1 : 0);
        k += (size_t)snprintf(out + k, size - k, "]");
    }
    (void)snprintf(out + k, size - k, "]");
}

/* printf into a static buffer, for building test inputs. */
static const char *jfmt(const char *fmt, ...) QT_PRINTF(1, 2);

static const char *jfmt(const char *fmt, ...)
{
    static char buf[8192];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

static void test_design_shape_errors(void **state)
{
    char r12[512], r10[512], bad[512], r4[512], bad4[512], r3[512], mats[2100];

    (void)state;
    rows(r12, sizeof(r12), 12, 4, 99, 0);
    rows(r10, sizeof(r10), 10, 4, 99, 0);
    rows(bad, sizeof(bad), 12, 4, 3, 5);
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s}}", bad), QT_ESHAPE,
               "'vectors.re' row 3 has 5 entries, expected dim = 4");
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s,\"im\":%s}}", r12, bad), QT_ESHAPE,
               "'vectors.im' row 3 has 5 entries, expected dim = 4");
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s,\"im\":%s}}", r12, r10), QT_ESHAPE,
               "'vectors.im' has 10 rows, 'vectors.re' has 12");
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"weights\":[1,1,1,1,1,1,1]}", r12),
               QT_ESHAPE, "'weights' has 7 entries, expected 12 (one per element)");
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"groups\":[0,0,0,0,0,0,0,0,0,0,0]}", r12),
               QT_ESHAPE, "'groups' has 11 entries, expected 12 (one per element)");
    parse_fail(
        jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"groups\":[0,0,0,0,0,-1,0,0,0,0,0,0]}", r12),
        QT_EPARSE, "'groups[5]' must be a non-negative integer");
    parse_fail(
        jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"groups\":[0,0,0,0,0,1.0,0,0,0,0,0,0]}", r12),
        QT_EPARSE, "'groups[5]' must be a non-negative integer");
    parse_fail(
        jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"weights\":[1,1,1,0,1,1,1,1,1,1,1,1]}", r12),
        QT_EPARSE, "'weights[3]' must be a positive number");
    parse_fail(
        jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},\"weights\":[1,1,1,1,-2,1,1,1,1,1,1,1]}", r12),
        QT_EPARSE, "'weights[4]' must be a positive number");
    parse_fail(jfmt("{\"dim\":4,\"vectors\":{\"re\":%s},"
                    "\"weights\":[\"1\",1,1,1,1,1,1,1,1,1,1,1]}",
                    r12),
               QT_EPARSE, "'weights[0]' must be a positive number");
    /* Elements: 4 elements of d = 4; element 2 row 1 too short. */
    rows(r4, sizeof(r4), 4, 4, 99, 0);
    rows(bad4, sizeof(bad4), 4, 4, 1, 3);
    rows(r3, sizeof(r3), 3, 4, 99, 0);
    (void)snprintf(mats, sizeof(mats), "[%s,%s,%s,%s]", r4, r4, bad4, r4);
    parse_fail(jfmt("{\"dim\":4,\"elements\":{\"re\":%s}}", mats), QT_ESHAPE,
               "'elements.re[2]' row 1 has 3 entries, expected 4");
    parse_fail(jfmt("{\"dim\":4,\"elements\":{\"re\":[%s,%s],\"im\":%s}}", r4, r4, mats), QT_ESHAPE,
               "'elements.im' has 4 elements, 'elements.re' has 2");
    parse_fail(jfmt("{\"dim\":4,\"elements\":{\"re\":[%s,%s],\"im\":[%s,%s]}}", r4, r4, r4, bad4),
               QT_ESHAPE, "'elements.im[1]' row 1 has 3 entries, expected 4");
    parse_fail(jfmt("{\"dim\":4,\"elements\":{\"re\":[%s,%s]}}", r4, r3), QT_ESHAPE,
               "'elements.re[1]' has 3 rows, expected dim = 4");
}

static void test_design_syntax_errors(void **state)
{
    static const struct {
        const char *json;
        int code;
        const char *msg;
    } cases[] = {
        {"", QT_EPARSE, "invalid JSON"},
        {"[1, 2]", QT_EPARSE, "the top level must be a JSON object"},
        {"{\"dim\": 2} x", QT_EPARSE, "invalid JSON"},
        {"{\"dim\": 2, \"dim\": 3}", QT_EPARSE, "duplicate"},
        {"{\"dim\": NaN}", QT_EPARSE, "invalid JSON"},
        {"{\"dim\": 2, \"weights\": [1e400]}", QT_EPARSE, "invalid JSON"},
        {"{\"vectors\": {\"re\": []}}", QT_EPARSE, "missing key 'dim'"},
        {"{\"dim\": \"2\"}", QT_EPARSE, "'dim' must be an integer >= 2"},
        {"{\"dim\": 2.0}", QT_EPARSE, "'dim' must be an integer >= 2"},
        {"{\"dim\": 1}", QT_EDIM, "'dim' must be an integer >= 2"},
        {"{\"dim\": -3}", QT_EDIM, "'dim' must be an integer >= 2"},
        {"{\"dim\": 65}", QT_EDIM, "custom designs support dim <= 64"},
        {"{\"dim\": 2, \"vector\": []}", QT_EPARSE,
         "unknown key 'vector' (expected dim, vectors, elements, groups, weights, name, background)"},
        {"{\"dim\": 2}", QT_EPARSE, "give exactly one of 'vectors' and 'elements'"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]]}, \"elements\": {\"re\": []}}", QT_EPARSE,
         "give exactly one of 'vectors' and 'elements'"},
        {"{\"dim\": 2, \"vectors\": [[1,0]]}", QT_EPARSE,
         "'vectors' must be an object with 're' and optional 'im'"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]], \"imag\": []}}", QT_EPARSE,
         "unknown key 'imag' in 'vectors' (expected re, im)"},
        {"{\"dim\": 2, \"vectors\": {\"im\": [[1,0]]}}", QT_EPARSE, "'vectors' needs 're'"},
        {"{\"dim\": 2, \"vectors\": {\"re\": 5}}", QT_EPARSE, "'vectors.re' must be an array"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]], \"im\": {}}}", QT_EPARSE,
         "'vectors.im' must be an array"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0], 7]}}", QT_EPARSE,
         "'vectors.re' row 1 must be an array"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0], [\"0\", 1]]}}", QT_EPARSE,
         "'vectors.re[1][0]' must be a number"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0], [0,1]], \"im\": [[0,0], [0,null]]}}",
         QT_EPARSE, "'vectors.im[1][1]' must be a number"},
        {"{\"dim\": 2, \"elements\": {\"re\": [[[1,0],[0,0]], 3]}}", QT_EPARSE,
         "'elements.re[1]' must be an array of 2 rows"},
        {"{\"dim\": 2, \"elements\": {\"re\": [[[1,0],[0,true]]]}}", QT_EPARSE,
         "'elements.re[0][1][1]' must be a number"},
        {"{\"dim\": 2, \"elements\": {\"re\": [[[1,0],[0,1]]], \"x\": 1}}", QT_EPARSE,
         "unknown key 'x' in 'elements' (expected re, im)"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]]}, \"groups\": 0}", QT_EPARSE,
         "'groups' must be an array"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]]}, \"weights\": {}}", QT_EPARSE,
         "'weights' must be an array"},
        {"{\"dim\": 2, \"vectors\": {\"re\": [[1,0]]}, \"name\": 5}", QT_EPARSE,
         "'name' must be a string"},
    };

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(cases); i++)
        parse_fail(cases[i].json, cases[i].code, cases[i].msg);
}

static void test_design_limits(void **state)
{
    struct qt_design *des = NULL;
    struct qt_diag err = {0};
    const char *text = "{\n  \"dim\": 2,\n  oops\n}";

    (void)state;
    /* The size limit is checked before the buffer is read. */
    assert_int_equal(qt_designfile_parse("{}", QT_DESIGNFILE_MAX_BYTES + 1, &des, &err),
                     QT_ETOOBIG);
    assert_non_null(strstr(err.msg, "limit"));
    assert_null(des);
    /* Syntax errors carry the position. */
    assert_int_equal(qt_designfile_parse(text, strlen(text), &des, &err), QT_EPARSE);
    assert_int_equal(err.line, 3);
    assert_true(err.column >= 1);
    /* No diagnostics wanted. */
    assert_int_equal(qt_designfile_parse("{", 1, &des, NULL), QT_EPARSE);
    assert_int_equal(qt_designfile_parse(NULL, 0, &des, NULL), QT_EPARSE);
    /* Entries so large that the measurement map overflows fail with a message, whatever code
     * the design builder picks for it. */
    const char *huge = "{\"dim\":2,\"vectors\":{\"re\":[[1e300,0],[0,1e300],[1e300,1e300],"
                       "[1e300,1e300]],\"im\":[[0,0],[0,0],[0,0],[0,1e300]]}}";
    err.msg[0] = '\0';
    assert_true(qt_designfile_parse(huge, strlen(huge), &des, &err) < 0);
    assert_true(strlen(err.msg) > 0);
    /* The fuzzer's find: one entry near sqrt(DBL_MAX) made LAPACK's SVD run for minutes. Such
     * magnitudes are refused before any decomposition, for vectors and for elements. */
    const char *fuzz = "{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[4.4e153,0.7],[0.7,-0.7],"
                       "[0.7,0],[0.7,0]],\"im\":[[0,0.5],[0,0],[0,0],[0,0],[0,0.7],[0,-0.7]]},"
                       "\"groups\":[1,1,1,1,0,0]}";
    assert_int_equal(qt_designfile_parse(fuzz, strlen(fuzz), &des, &err), QT_ETOOBIG);
    assert_non_null(strstr(err.msg, "vector 2 component 0"));
    assert_non_null(strstr(err.msg, "above the limit"));
    const char *big_el = "{\"dim\":2,\"elements\":{\"re\":[[[1,0],[0,0]],[[0,0],[0,1]],"
                         "[[1,1],[1,1]],[[2e100,0],[0,0]]],\"im\":[[[0,0],[0,0]],[[0,0],[0,0]],"
                         "[[0,0],[0,0]],[[0,0],[0,0]]]}}";
    assert_int_equal(qt_designfile_parse(big_el, strlen(big_el), &des, &err), QT_ETOOBIG);
    assert_non_null(strstr(err.msg, "element 3 entry (0, 0)"));
    assert_null(des);
    /* Large but bounded scales are fine: a tetrahedron of kets scaled by 1e49 builds. */
    const char *scaled = "{\"dim\":2,\"vectors\":{\"re\":[[1e49,0],[0,1e49],[7e48,7e48],"
                         "[7e48,-7e48],[7e48,0],[7e48,0]],\"im\":[[0,0],[0,0],[0,0],[0,0],"
                         "[0,7e48],[0,-7e48]]}}";
    assert_int_equal(qt_designfile_parse(scaled, strlen(scaled), &des, &err), 0);
    qt_design_free(des);
    des = NULL;
    /* An embedded NUL is not JSON. */
    assert_int_equal(qt_designfile_parse("{\"dim\": 2}\0", 11, &des, NULL), QT_EPARSE);
    assert_null(des);
}

/* ---- targets ---- */

static void target_ok(const char *json, size_t d, double complex *rho)
{
    struct qt_diag err = {0};
    int r = qt_targetfile_parse(json, strlen(json), d, rho, NULL, &err);
    double complex tr = 0.0;

    if (r != 0)
        print_error("target parse failed (%d): %s\n", r, err.msg);
    assert_int_equal(r, 0);
    for (size_t i = 0; i < d; i++)
        tr += rho[i + d * i];
    qt_assert_close(creal(tr), 1.0, 0.0, 1e-14);
    qt_assert_close(cimag(tr), 0.0, 0.0, 1e-15);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            qt_assert_close(creal(rho[i + d * j]), creal(rho[j + d * i]), 0.0, 1e-15);
            qt_assert_close(cimag(rho[i + d * j]), -cimag(rho[j + d * i]), 0.0, 1e-15);
        }
}

static void target_fail(const char *json, size_t d, int code, const char *msg)
{
    double complex rho[16];
    struct qt_diag err = {0};
    int r;

    for (size_t i = 0; i < 16; i++)
        rho[i] = 42.0;
    r = qt_targetfile_parse(json, strlen(json), d, d <= 4 ? rho : NULL, NULL, &err);
    if (r != code || !strstr(err.msg, msg))
        print_error("target %s\n  got %d '%s', expected %d '%s'\n", json, r, err.msg, code, msg);
    assert_int_equal(r, code);
    assert_non_null(strstr(err.msg, msg));
    for (size_t i = 0; i < 16; i++)
        qt_assert_close(creal(rho[i]), 42.0, 0.0, 0.0);
}

static void assert_cplx(double complex z, double re, double im)
{
    qt_assert_close(creal(z), re, 0.0, 1e-15);
    qt_assert_close(cimag(z), im, 0.0, 1e-15);
}

static void test_target_ket(void **state)
{
    double complex rho[4];

    (void)state;
    target_ok("{\"ket\": {\"re\": [1, 1], \"im\": [0, 0]}}", 2, rho);
    for (size_t i = 0; i < 4; i++)
        assert_cplx(rho[i], 0.5, 0.0);
    /* (|0> + i|1>)/sqrt2, unnormalised in the file; rho[0 + 2*1] = psi_0 conj(psi_1). */
    target_ok("{\"ket\": {\"re\": [3, 0], \"im\": [0, 3]}, \"dim\": 2}", 2, rho);
    assert_cplx(rho[0], 0.5, 0.0);
    assert_cplx(rho[2], 0.0, -0.5);
    assert_cplx(rho[1], 0.0, 0.5);
    assert_cplx(rho[3], 0.5, 0.0);
    /* Real ket; huge entries are scaled before squaring. */
    target_ok("{\"ket\": {\"re\": [1e300, -1e300]}}", 2, rho);
    assert_cplx(rho[0], 0.5, 0.0);
    assert_cplx(rho[1], -0.5, 0.0);
    target_ok("{\"ket\": {\"re\": [1e-320, 0]}}", 2, rho);
    assert_cplx(rho[0], 1.0, 0.0);
}

static void test_target_amplitudes(void **state)
{
    double complex rho[16];

    (void)state;
    /* The origin's "4D_custom" profile: psi = (1, 1, 1, -1) / 2. */
    target_ok("{\"amplitudes\": [0.5, 0.5, 0.5, 0.5], \"phases_pi\": [0, 0, 0, 1]}", 4, rho);
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++)
            assert_cplx(rho[i + 4 * j], (i == 3) != (j == 3) ? -0.25 : 0.25, 0.0);
    /* Normalised: (3, 4 i) / 5. */
    target_ok("{\"amplitudes\": [3, 4], \"phases_pi\": [2, 0.5]}", 2, rho);
    assert_cplx(rho[0], 0.36, 0.0);
    assert_cplx(rho[3], 0.64, 0.0);
    assert_cplx(rho[2], 0.0, -0.48);
    /* Far-out phases stay finite. */
    target_ok("{\"amplitudes\": [1, 1], \"phases_pi\": [1e300, -1.7e308]}", 2, rho);
    assert_cplx(rho[0], 0.5, 0.0);
}

static void test_target_rho(void **state)
{
    double complex rho[4];

    (void)state;
    target_ok("{\"rho\": {\"re\": [[0.5, 0], [0, 0.5]]}}", 2, rho);
    assert_cplx(rho[0], 0.5, 0.0);
    assert_cplx(rho[1], 0.0, 0.0);
    /* Rows in the file, column-major out: row 0 column 1 is rho[2]. */
    target_ok("{\"rho\": {\"re\": [[0.5, 0], [0, 0.5]], \"im\": [[0, 0.5], [-0.5, 0]]}}", 2, rho);
    assert_cplx(rho[2], 0.0, 0.5);
    assert_cplx(rho[1], 0.0, -0.5);
    /* The origin's record format, with and without the imaginary part. */
    target_ok("{\"density_matrix\": {\"real\": [[0.75, 0.25], [0.25, 0.25]], "
              "\"imag\": [[0, -0.1], [0.1, 0]]}, \"dim\": 2}",
              2, rho);
    assert_cplx(rho[2], 0.25, -0.1);
    target_ok("{\"density_matrix\": {\"real\": [[1, 0], [0, 0]]}}", 2, rho);
    assert_cplx(rho[0], 1.0, 0.0);
    target_ok("{\"density_matrix\": [[0.25, 0], [0, 0.75]]}", 2, rho);
    assert_cplx(rho[3], 0.75, 0.0);
    /* Renormalised exactly to trace 1 when within 1e-6; tiny negative eigenvalues pass. */
    target_ok("{\"rho\": {\"re\": [[0.5000004, 0], [0, 0.5]]}}", 2, rho);
    qt_assert_close(creal(rho[0]), 0.5000004 / 1.0000004, 1e-15, 0.0);
    target_ok("{\"rho\": {\"re\": [[1.0000000005, 0], [0, -5e-10]]}}", 2, rho);
    /* Hermitian within 1e-9 relative is accepted and symmetrised. */
    target_ok("{\"rho\": {\"re\": [[0.5, 0.2], [0.2000000001, 0.5]]}}", 2, rho);
    assert_cplx(rho[1], 0.20000000005, 0.0);
}

static void test_target_errors(void **state)
{
    static const struct {
        const char *json;
        size_t d;
        int code;
        const char *msg;
    } cases[] = {
        {"", 2, QT_EPARSE, "invalid JSON"},
        {"[]", 2, QT_EPARSE, "top level must be a JSON object"},
        {"{}", 2, QT_EPARSE,
         "give exactly one of 'ket', 'rho', 'density_matrix', 'amplitudes' and 'profile'"},
        {"{\"ket\": {\"re\": [1, 0]}, \"rho\": {\"re\": [[1, 0], [0, 0]]}}", 2, QT_EPARSE,
         "give exactly one of"},
        {"{\"kets\": []}", 2, QT_EPARSE,
         "unknown key 'kets' (expected ket, rho, density_matrix, amplitudes, phases_pi, dim, "
         "profile)"},
        {"{\"ket\": {\"re\": [1, 0], \"imag\": [0, 0]}}", 2, QT_EPARSE,
         "unknown key 'imag' in 'ket'"},
        {"{\"ket\": [1, 0]}", 2, QT_EPARSE, "'ket' must be an object"},
        {"{\"ket\": {\"re\": [1, 0, 0]}}", 2, QT_EDIM, "'ket.re' has 3 entries, expected d = 2"},
        {"{\"ket\": {\"re\": [1, 0], \"im\": [0]}}", 2, QT_ESHAPE,
         "'ket.im' has 1 entries, 'ket.re' has 2"},
        {"{\"ket\": {\"re\": [1, \"0\"]}}", 2, QT_EPARSE, "'ket.re[1]' must be a number"},
        {"{\"ket\": {\"re\": [0, 0], \"im\": [0, 0]}}", 2, QT_ENOTPHYS, "'ket' is the zero vector"},
        {"{\"ket\": {\"re\": [1, 0]}, \"dim\": 4}", 2, QT_EDIM,
         "target has dim 4, the data has dim 2"},
        {"{\"ket\": {\"re\": [1, 0]}, \"dim\": \"2\"}", 2, QT_EPARSE, "'dim' must be an integer"},
        {"{\"amplitudes\": [1, 0]}", 2, QT_EPARSE, "'amplitudes' and 'phases_pi' go together"},
        {"{\"phases_pi\": [1, 0]}", 2, QT_EPARSE, "give exactly one of"},
        {"{\"amplitudes\": [1, 0, 0], \"phases_pi\": [0, 0, 0]}", 2, QT_EDIM,
         "'amplitudes' has 3 entries, expected d = 2"},
        {"{\"amplitudes\": [1, 0], \"phases_pi\": [0]}", 2, QT_ESHAPE,
         "'phases_pi' has 1 entries, 'amplitudes' has 2"},
        {"{\"amplitudes\": [1, -0.5], \"phases_pi\": [0, 0]}", 2, QT_ENOTPHYS,
         "'amplitudes[1]' must be finite and >= 0"},
        {"{\"amplitudes\": [0, 0], \"phases_pi\": [0, 0]}", 2, QT_ENOTPHYS,
         "'amplitudes' is the zero vector"},
        {"{\"amplitudes\": [1, 0], \"phases_pi\": [0, null]}", 2, QT_EPARSE,
         "'phases_pi[1]' must be a number"},
        {"{\"amplitudes\": 1, \"phases_pi\": [0, 0]}", 2, QT_EPARSE, "must both be arrays"},
        {"{\"rho\": [[1, 0], [0, 0]]}", 2, QT_EPARSE, "'rho' must be an object"},
        {"{\"rho\": {\"re\": [[1, 0], [0, 0], [0, 0]]}}", 2, QT_EDIM,
         "'rho.re' has 3 rows, expected d = 2"},
        {"{\"rho\": {\"re\": [[1, 0], [0]]}}", 2, QT_ESHAPE,
         "'rho.re' row 1 has 1 entries, expected d = 2"},
        {"{\"rho\": {\"re\": [[1, 0], [0, 0]], \"im\": [[0, 0]]}}", 2, QT_ESHAPE,
         "'rho.im' has 1 rows, expected d = 2"},
        {"{\"rho\": {\"re\": [[1, 0], 0]}}", 2, QT_EPARSE, "'rho.re' row 1 must be an array"},
        {"{\"rho\": {\"re\": [[0.5, 0.2], [0.1, 0.5]]}}", 2, QT_ENOTPHYS, "'rho' is not Hermitian"},
        {"{\"rho\": {\"re\": [[0.5, 0], [0, 0.5]], \"im\": [[0.1, 0], [0, 0]]}}", 2, QT_ENOTPHYS,
         "'rho' is not Hermitian"},
        {"{\"rho\": {\"re\": [[1.5, 0], [0, -0.5]]}}", 2, QT_ENOTPHYS,
         "'rho' has a negative eigenvalue -0.5"},
        {"{\"rho\": {\"re\": [[0.5, 0], [0, 0.4]]}}", 2, QT_ENOTPHYS,
         "'rho' has trace 0.9, expected 1"},
        {"{\"rho\": {\"re\": [[0, 0], [0, 0]]}}", 2, QT_ENOTPHYS, "'rho' has trace 0, expected 1"},
        {"{\"rho\": {\"re\": [[0.5, 1e308], [-1e308, 0.5]]}}", 2, QT_ENOTPHYS,
         "'rho' is not Hermitian"},
        {"{\"density_matrix\": {\"re\": [[1, 0], [0, 0]]}}", 2, QT_EPARSE,
         "unknown key 're' in 'density_matrix' (expected real, imag)"},
        {"{\"density_matrix\": [[1, 0], [0]]}", 2, QT_ESHAPE,
         "'density_matrix' row 1 has 1 entries, expected d = 2"},
        {"{\"density_matrix\": {\"real\": [[0.5, 0.6], [0.6, 0.5]]}}", 2, QT_ENOTPHYS,
         "'density_matrix' has a negative eigenvalue"},
        {"{\"ket\": {\"re\": [1]}}", 0, QT_EDIM, "target dimension 0"},
        {"{\"ket\": {\"re\": [1]}}", 513, QT_EDIM, "target dimension 513"},
    };

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(cases); i++)
        target_fail(cases[i].json, cases[i].d, cases[i].code, cases[i].msg);
}

/* dim mismatch against the data's dimension, as qtomoctl reports it. */
static void test_target_dim_mismatch(void **state)
{
    const char *json = "{\"dim\": 4, \"amplitudes\": [0.5, 0.5, 0.5, 0.5], "
                       "\"phases_pi\": [0, 0, 0, 1]}";
    double complex *rho = malloc(256 * sizeof(*rho));
    struct qt_diag err = {0};

    (void)state;
    assert_non_null(rho);
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 16, rho, NULL, &err), QT_EDIM);
    assert_non_null(strstr(err.msg, "target has dim 4, the data has dim 16"));
    assert_int_equal(qt_targetfile_parse(json, QT_DESIGNFILE_MAX_BYTES + 1, 4, rho, NULL, &err),
                     QT_ETOOBIG);
    free(rho);
}

/* The origin's theory profiles (origin-digest §3.5): psi_k = c_k exp(i pi phi_k), normalised,
 * computed here with cexp from the digest's numbers; the profile gives the same bits as the
 * equivalent amplitudes file. */
static void test_target_profiles(void **state)
{
    static const double phi16[16] = {0, 0, 0, 0, 0, 0.5, 1, 1.5, 0, 1, 0, 1, 0, 1.5, 1, 0.5};
    double complex *rho = malloc(256 * sizeof(*rho)), *amp = malloc(256 * sizeof(*amp));
    double complex psi[16];
    struct qt_jw w;

    (void)state;
    assert_non_null(rho);
    assert_non_null(amp);
    target_ok("{\"profile\": \"4D_custom\"}", 4, rho);
    for (size_t k = 0; k < 4; k++)
        psi[k] = 0.5 * cexp(I * M_PI * (k == 3 ? 1.0 : 0.0));
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++) {
            double complex want = psi[i] * conj(psi[j]);

            assert_cplx(rho[i + 4 * j], creal(want), cimag(want));
        }
    target_ok("{\"amplitudes\": [0.5, 0.5, 0.5, 0.5], \"phases_pi\": [0, 0, 0, 1]}", 4, amp);
    assert_memory_equal(rho, amp, 16 * sizeof(*rho));

    target_ok("{\"profile\": \"16D_custom\", \"dim\": 16}", 16, rho);
    for (size_t k = 0; k < 16; k++)
        psi[k] = 0.25 * cexp(I * M_PI * phi16[k]);
    for (size_t i = 0; i < 16; i++)
        for (size_t j = 0; j < 16; j++) {
            double complex want = psi[i] * conj(psi[j]);

            assert_cplx(rho[i + 16 * j], creal(want), cimag(want));
        }
    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "amplitudes");
    qt_jw_arr_begin(&w);
    for (size_t k = 0; k < 16; k++)
        qt_jw_num(&w, 0.25);
    qt_jw_arr_end(&w);
    qt_jw_key(&w, "phases_pi");
    qt_jw_arr_begin(&w);
    for (size_t k = 0; k < 16; k++)
        qt_jw_num(&w, phi16[k]);
    qt_jw_arr_end(&w);
    qt_jw_obj_end(&w);
    target_ok(w.buf, 16, amp);
    qt_jw_done(&w);
    assert_memory_equal(rho, amp, 256 * sizeof(*rho));

    target_fail("{\"profile\": \"4d_custom\"}", 4, QT_EPARSE,
                "unknown profile '4d_custom' (known: 4D_custom, 16D_custom)");
    target_fail("{\"profile\": 4}", 4, QT_EPARSE, "'profile' must be a string");
    target_fail("{\"profile\": \"16D_custom\"}", 4, QT_EDIM,
                "profile '16D_custom' has d = 16, the data has d = 4");
    target_fail("{\"profile\": \"4D_custom\", \"ket\": {\"re\": [1, 0, 0, 0]}}", 4, QT_EPARSE,
                "give exactly one of");
    free(rho);
    free(amp);
}

/* A published matrix printed to 4 decimals: Phi+ with 0.5 -> 0.5001 in three corners has trace
 * 1.0001 and an eigenvalue of about -5e-5. It is projected (negative eigenvalue clipped,
 * renormalised: here a pure state) and the fix says how far it was; a second strict check
 * (the daemon's worker) keeps its bits; beyond 1e-3 it is refused; a density matrix is left
 * as before. */
static void test_target_published(void **state)
{
    const char *json = "{\"rho\": {\"re\": [[0.5, 0, 0, 0.5001], [0, 0, 0, 0], [0, 0, 0, 0], "
                       "[0.5001, 0, 0, 0.5001]]}}";
    double complex rho[16], again[16], sq[16] = {0};
    double a = 0.5, b = 0.5001, c = 0.5001, tr = a + c;
    double lmin = 0.5 * (a + c) - sqrt(0.25 * (a - c) * (a - c) + b * b);
    struct qt_target_fix fix;
    struct qt_diag err = {0};

    (void)state;
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 4, rho, &fix, &err), 0);
    assert_true(fix.projected);
    qt_assert_close(fix.trace, 1.0001, 0.0, 1e-15);
    qt_assert_close(fix.min_eig, lmin / tr, 1e-9, 0.0);
    assert_true(fix.min_eig < -4e-5 && fix.min_eig > -6e-5);
    qt_assert_close(fix.distance, -lmin / tr, 1e-9, 0.0); /* one eigenvalue clipped */
    qt_assert_close(fix.herm_defect, 0.0, 0.0, 0.0);
    target_ok(json, 4, rho); /* trace 1, Hermitian */
    /* pure: rho^2 = rho */
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++)
            for (size_t k = 0; k < 4; k++)
                sq[i + 4 * j] += rho[i + 4 * k] * rho[k + 4 * j];
    for (size_t t = 0; t < 16; t++) {
        qt_assert_close(creal(sq[t]), creal(rho[t]), 0.0, 1e-14);
        qt_assert_close(cimag(sq[t]), cimag(rho[t]), 0.0, 1e-14);
    }
    qt_assert_close(creal(rho[0]), 0.5, 0.0, 1e-4);
    qt_assert_close(creal(rho[12]), 0.5, 0.0, 1e-4);
    memcpy(again, rho, sizeof(rho));
    assert_int_equal(qt_target_check(4, again, &err), 0);
    assert_memory_equal(again, rho, sizeof(rho));
    /* The wire's check stays strict: the matrix as given is refused there. */
    double complex given[16] = {0.5, 0, 0, 0.5001, 0, 0, 0, 0, 0, 0, 0, 0, 0.5001, 0, 0, 0.5001};

    assert_int_equal(qt_target_check(4, given, &err), QT_ENOTPHYS);
    /* Only the trace off (1.0004): renormalised, nothing clipped. */
    json = "{\"rho\": {\"re\": [[0.5004, 0], [0, 0.5]]}}";
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 2, rho, &fix, &err), 0);
    assert_true(fix.projected);
    qt_assert_close(fix.distance, 0.0, 0.0, 1e-15);
    qt_assert_close(creal(rho[0]), 0.5004 / 1.0004, 0.0, 1e-15);
    /* Hermitian within 1e-3 relative: Hermitised. */
    json = "{\"rho\": {\"re\": [[0.5, 0.2], [0.2002, 0.5]]}}";
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 2, rho, &fix, &err), 0);
    assert_true(fix.projected && fix.herm_defect > 1e-4 && fix.herm_defect < 1e-3);
    qt_assert_close(creal(rho[1]), 0.2001, 0.0, 1e-15);
    /* Beyond the tolerance: refused as before. */
    target_fail("{\"rho\": {\"re\": [[0.5011, 0], [0, 0.5]]}}", 2, QT_ENOTPHYS,
                "'rho' has trace 1.0011, expected 1 (within 0.001)");
    target_fail("{\"rho\": {\"re\": [[0.5, 0.502], [0.502, 0.5]]}}", 2, QT_ENOTPHYS,
                "'rho' has a negative eigenvalue -0.002 (tolerance 0.001)");
    target_fail("{\"rho\": {\"re\": [[0.5, 0.2], [0.21, 0.5]]}}", 2, QT_ENOTPHYS,
                "'rho' is not Hermitian");
    /* A density matrix is not "projected": the strict path, as before. */
    json = "{\"rho\": {\"re\": [[0.5000004, 0], [0, 0.5]]}}";
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 2, rho, &fix, &err), 0);
    assert_false(fix.projected);
    qt_assert_close(fix.trace, 1.0000004, 0.0, 1e-15);
    qt_assert_close(creal(rho[0]), 0.5000004 / 1.0000004, 1e-15, 0.0);
    /* Kets, amplitudes and profiles are never projected. */
    json = "{\"profile\": \"4D_custom\"}";
    assert_int_equal(qt_targetfile_parse(json, strlen(json), 4, rho, &fix, &err), 0);
    assert_false(fix.projected);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sic),
    cmocka_unit_test(test_nopovm),
    cmocka_unit_test(test_elements_equal_vectors),
    cmocka_unit_test(test_groups),
    cmocka_unit_test(test_id),
    cmocka_unit_test(test_not_ic),
    cmocka_unit_test(test_not_psd),
    cmocka_unit_test(test_design_shape_errors),
    cmocka_unit_test(test_design_syntax_errors),
    cmocka_unit_test(test_design_limits),
    cmocka_unit_test(test_target_ket),
    cmocka_unit_test(test_target_amplitudes),
    cmocka_unit_test(test_target_rho),
    cmocka_unit_test(test_target_errors),
    cmocka_unit_test(test_target_dim_mismatch),
    cmocka_unit_test(test_target_profiles),
    cmocka_unit_test(test_target_published),
};

QT_TEST_MAIN(tests)

/* Measurement designs: origin vectors and order, MUB completeness for every prime power up to
 * 32, the Pauli layout, the map/adjoint/inverse identities, closed-form singular values against
 * a dense SVD, inference and dimension errors. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_rng.h"
#include "num/qt_whiten.h"
#include "qt_test.h"

static struct qt_design *make(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};
    int r = qt_design_new(kind, d, &des, &dg);

    if (r < 0)
        print_error("qt_design_new(%d, %zu): %s\n", kind, d, dg.msg);
    assert_int_equal(r, 0);
    return des;
}

static double complex cjson(json_t *re, json_t *im, size_t i, size_t j)
{
    return json_real_value(json_array_get(json_array_get(re, i), j)) +
           I * json_real_value(json_array_get(json_array_get(im, i), j));
}

/* Every design in the origin's designs.json: same projectors (up to the global phase of each
 * ket), same groups, same sum of projectors, same singular values. */
static void test_designs_match_origin(void **state)
{
    json_error_t jerr;
    json_t *root = json_load_file(qt_refdata("generated/designs.json"), 0, &jerr);
    size_t idx;
    json_t *e;

    (void)state;
    assert_non_null(root);
    json_array_foreach(root, idx, e)
    {
        const char *name = json_string_value(json_object_get(e, "design"));
        size_t d = (size_t)json_integer_value(json_object_get(e, "dimension"));
        struct qt_design *des = make((enum qt_design_kind)qt_design_kind_from_name(name), d);
        json_t *re = json_object_get(json_object_get(e, "vectors"), "re");
        json_t *im = json_object_get(json_object_get(e, "vectors"), "im");
        json_t *sre = json_object_get(json_object_get(e, "sum_of_projectors"), "re");
        json_t *sim = json_object_get(json_object_get(e, "sum_of_projectors"), "im");
        json_t *sv = json_object_get(e, "measurement_matrix_singular_values");

        assert_int_equal(des->m, json_array_size(re));
        for (size_t a = 0; a < des->m; a++) {
            assert_int_equal(des->groups[a],
                             json_integer_value(json_array_get(json_object_get(e, "groups"), a)));
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++) {
                    double complex p = des->kets[i + d * a] * conj(des->kets[j + d * a]);
                    double complex q = cjson(re, im, a, i) * conj(cjson(re, im, a, j));

                    assert_true(cabs(p - q) < 1e-13);
                }
        }
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                assert_true(cabs(des->H[i + d * j] - cjson(sre, sim, i, j)) < 1e-12);
        for (size_t i = 0; i < d * d; i++)
            qt_assert_close(des->sv[i], json_real_value(json_array_get(sv, i)), 1e-12, 0);
        qt_design_free(des);
    }
    json_decref(root);
}

/* Complete MUBs for every prime power d <= 32: orthonormal within a basis, |<u|v>|^2 = 1/d
 * across bases, groups of d consecutive outcomes summing to I, condition number sqrt(d+1). */
static void test_mub_complete(void **state)
{
    static const size_t dims[] = {2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17, 19, 23, 25, 27, 29, 31, 32};

    (void)state;
    for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
        size_t d = dims[t];
        struct qt_design *des = make(QT_DESIGN_MUB, d);
        double worst = 0.0;

        assert_int_equal(des->m, d * (d + 1));
        assert_int_equal(des->n_groups, d + 1);
        assert_true(des->povm);
        qt_assert_close(des->cond, sqrt((double)d + 1.0), 1e-12, 0);
        for (size_t a = 0; a < des->m; a++) {
            assert_int_equal(des->groups[a], a / d);
            for (size_t b = a; b < des->m; b++) {
                double complex ip = 0.0;
                double want;

                for (size_t i = 0; i < d; i++)
                    ip += conj(des->kets[i + d * a]) * des->kets[i + d * b];
                if (a == b)
                    want = 1.0;
                else if (a / d == b / d)
                    want = 0.0;
                else
                    want = 1.0 / (double)d;
                worst = fmax(worst, fabs(creal(ip * conj(ip)) - want));
            }
        }
        if (worst > 1e-12)
            print_error("d = %zu: worst deviation %g\n", d, worst);
        assert_true(worst <= 1e-12);
        for (size_t g = 0; g <= d; g++)
            qt_assert_close(des->group_scale[g], 1.0, 1e-12, 0);
        qt_design_free(des);
    }
}

/* Larger prime powers build and keep unbiasedness (checked on a sample of pairs). */
static void test_mub_large(void **state)
{
    static const size_t dims[] = {49, 64, 81, 121, 125, 127, 128};

    (void)state;
    for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
        size_t d = dims[t];

        if (qt_test_quick() && d != 64 && d != 125)
            continue; /* one of each characteristic under valgrind */
        struct qt_design *des = make(QT_DESIGN_MUB, d);

        for (size_t s = 0; s < 400; s++) {
            size_t a = (s * 7919) % des->m, b = (s * 104729 + 17) % des->m;
            double complex ip = 0.0;

            for (size_t i = 0; i < d; i++)
                ip += conj(des->kets[i + d * a]) * des->kets[i + d * b];
            double want = a == b ? 1.0 : a / d == b / d ? 0.0 : 1.0 / (double)d;
            qt_assert_close(creal(ip * conj(ip)), want, 0, 1e-12);
        }
        qt_design_free(des);
    }
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 6, &des, &dg), QT_EDIM);
    assert_non_null(strstr(dg.msg, "prime power"));
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 243, &des, &dg), QT_EDIM);
}

/* Kets of the n-qubit Pauli design built independently in the documented order. */
static double complex *pauli_kets(unsigned n)
{
    static const double s = 0.70710678118654752440;
    const double complex eig[3][2][2] = {
        {{s, s}, {s, -s}}, {{s, I * s}, {s, -I * s}}, {{1, 0}, {0, 1}}};
    size_t d = (size_t)1 << n, S = 1;
    double complex *K;

    for (unsigned k = 0; k < n; k++)
        S *= 3;
    K = calloc(d * S * d, sizeof(*K));
    assert_non_null(K);
    for (size_t set = 0; set < S; set++)
        for (size_t o = 0; o < d; o++) {
            double complex *v = K + d * (set * d + o);

            for (size_t b = 0; b < d; b++) {
                double complex amp = 1.0;
                size_t rest = set;

                for (unsigned q = n; q-- > 0;) { /* qubit q: digit n-1-q of set */
                    unsigned sq = (unsigned)(rest % 3);
                    unsigned oq = (unsigned)((o >> (n - 1 - q)) & 1u);
                    unsigned bq = (unsigned)((b >> (n - 1 - q)) & 1u);

                    rest /= 3;
                    amp *= eig[sq][oq][bq];
                }
                v[b] = amp;
            }
        }
    return K;
}

static void random_herm(struct qt_rng *r, size_t d, double complex *A)
{
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i <= j; i++) {
            double complex z = qt_rng_normal(r) + (i == j ? 0.0 : I * qt_rng_normal(r));

            A[i + d * j] = i == j ? creal(z) : z;
            A[j + d * i] = conj(A[i + d * j]);
        }
}

/* The qubit-by-qubit Pauli kernels agree with explicit kets in the documented order. */
static void test_pauli_layout(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 7);
    for (unsigned n = 1; n <= 4; n++) {
        size_t d = (size_t)1 << n;
        struct qt_design *des = make(QT_DESIGN_PAULI, d);
        double complex *K = pauli_kets(n), *rho = malloc(d * d * sizeof(*rho));
        double complex *out = malloc(d * d * sizeof(*out)), *want = calloc(d * d, sizeof(*want));
        double *q = malloc(des->m * sizeof(double)), *w = malloc(des->m * sizeof(double));

        assert_int_equal(des->m, (size_t)pow(6, n));
        assert_int_equal(des->n_groups, (size_t)pow(3, n));
        random_herm(&rng, d, rho);
        assert_int_equal(qt_design_forward(des, &ws, rho, q), 0);
        for (size_t a = 0; a < des->m; a++) {
            double complex acc = 0.0;

            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    acc += conj(K[i + d * a]) * rho[i + d * j] * K[j + d * a];
            qt_assert_close(q[a], creal(acc), 0, 1e-12);
            assert_int_equal(des->groups[a], a >> n);
            w[a] = qt_rng_normal(&rng);
            for (size_t j = 0; j < d; j++)
                for (size_t i = 0; i < d; i++)
                    want[i + d * j] += w[a] * K[i + d * a] * conj(K[j + d * a]);
        }
        assert_int_equal(qt_design_adjoint(des, &ws, w, out), 0);
        assert_true(qt_frob_diff(d, out, want) < 1e-11);
        free(K);
        free(rho);
        free(out);
        free(want);
        free(q);
        free(w);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

/* A sum of PRODUCT_TERMS Kronecker products of per-qubit 2 x 2 matrices: X = sum_t (x)_k f[t][k]
 * (qubit 0 the leftmost factor), written to the d x d column-major X. */
#define PRODUCT_TERMS 3

static void kron_sum(unsigned n, const double complex (*f)[8][4], double complex *X)
{
    size_t d = (size_t)1 << n;

    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            double complex acc = 0.0;

            for (size_t t = 0; t < PRODUCT_TERMS; t++) {
                double complex p = 1.0;

                for (unsigned k = 0; k < n; k++) {
                    size_t bi = (i >> (n - 1 - k)) & 1u, bj = (j >> (n - 1 - k)) & 1u;

                    p *= f[t][k][bi + 2 * bj];
                }
                acc += p;
            }
            X[i + d * j] = acc;
        }
}

/* 5-7 qubits, where the maps fuse pairs of mode products and the forward map mixes its
 * low-first and top-down orders (qt_pauli.c), and explicit kets are too slow under valgrind:
 * both maps on sums of product operators, whose images are sums of products of one-qubit
 * images. Forward: rho = sum_t (x)_k h_tk gives q_a = sum_t prod_k <e_so| h_tk |e_so> with
 * (s, o) = (s_k, o_k); adjoint: w_a = sum_t prod_k v_tk(s_k, o_k) gives
 * sum_t (x)_k sum_{s,o} v_tk(s, o) |e_so><e_so|. */
static void test_pauli_products(void **state)
{
    static const double s = 0.70710678118654752440;
    const double complex eig[3][2][2] = {
        {{s, s}, {s, -s}}, {{s, I * s}, {s, -I * s}}, {{1, 0}, {0, 1}}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 23);
    for (unsigned n = 5; n <= 7; n++) {
        size_t d = (size_t)1 << n;
        struct qt_design *des = make(QT_DESIGN_PAULI, d);
        double complex h[PRODUCT_TERMS][8][4], g[PRODUCT_TERMS][8][4];
        double v[PRODUCT_TERMS][8][6], p1[PRODUCT_TERMS][8][6];
        double complex *rho = malloc(d * d * sizeof(*rho)), *out = malloc(d * d * sizeof(*out));
        double complex *want = malloc(d * d * sizeof(*want));
        double *q = malloc(des->m * sizeof(double)), *w = malloc(des->m * sizeof(double));
        double qmax = 0.0;

        for (size_t t = 0; t < PRODUCT_TERMS; t++)
            for (unsigned k = 0; k < n; k++) {
                random_herm(&rng, 2, h[t][k]);
                for (size_t so = 0; so < 6; so++) {
                    const double complex *e = eig[so / 2][so % 2];
                    double complex z = 0.0;

                    for (size_t i = 0; i < 2; i++)
                        for (size_t j = 0; j < 2; j++)
                            z += conj(e[i]) * h[t][k][i + 2 * j] * e[j];
                    p1[t][k][so] = creal(z); /* <e_so| h |e_so> */
                    v[t][k][so] = qt_rng_normal(&rng);
                }
                for (size_t ij = 0; ij < 4; ij++) { /* g = sum_so v(so) |e_so><e_so| */
                    g[t][k][ij] = 0.0;
                    for (size_t so = 0; so < 6; so++) {
                        const double complex *e = eig[so / 2][so % 2];

                        g[t][k][ij] += v[t][k][so] * e[ij % 2] * conj(e[ij / 2]);
                    }
                }
            }
        kron_sum(n, (const double complex(*)[8][4])h, rho);
        kron_sum(n, (const double complex(*)[8][4])g, want);
        for (size_t a = 0; a < des->m; a++) {
            size_t set = a >> n, o = a & (d - 1);
            double qa = 0.0, wa = 0.0;

            for (size_t t = 0; t < PRODUCT_TERMS; t++) {
                double pq = 1.0, pw = 1.0;
                size_t rest = set;

                for (unsigned k = n; k-- > 0;) { /* qubit k: digit n-1-k of set and of o */
                    size_t so = 2 * (rest % 3) + ((o >> (n - 1 - k)) & 1u);

                    rest /= 3;
                    pq *= p1[t][k][so];
                    pw *= v[t][k][so];
                }
                qa += pq;
                wa += pw;
            }
            q[a] = qa;
            w[a] = wa;
            qmax = fmax(qmax, fabs(qa));
        }
        double *got = malloc(des->m * sizeof(double));

        assert_int_equal(qt_design_forward(des, &ws, rho, got), 0);
        for (size_t a = 0; a < des->m; a++)
            qt_assert_close(got[a], q[a], 0, 1e-12 * qmax);
        assert_int_equal(qt_design_adjoint(des, &ws, w, out), 0);
        double wmax = 0.0;

        for (size_t i = 0; i < d * d; i++)
            wmax = fmax(wmax, cabs(want[i]));
        for (size_t i = 0; i < d * d; i++) {
            qt_assert_close(creal(out[i]), creal(want[i]), 0, 1e-12 * wmax);
            qt_assert_close(cimag(out[i]), cimag(want[i]), 0, 1e-12 * wmax);
        }
        free(got);
        free(rho);
        free(out);
        free(want);
        free(q);
        free(w);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The whitened maps in native order (what the MLE uses) equal the design-order maps with the
 * outcome vector moved by qt_whiten_to_native, which moves every entry exactly once: pauli
 * 1-6 qubits (a permutation of the tensor's order), and designs whose native order is theirs. */
static void test_native_order(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
    } cases[] = {{QT_DESIGN_PAULI, 2},  {QT_DESIGN_PAULI, 4},  {QT_DESIGN_PAULI, 8},
                 {QT_DESIGN_PAULI, 16}, {QT_DESIGN_PAULI, 32}, {QT_DESIGN_PAULI, 64},
                 {QT_DESIGN_NOPOVM, 3}, {QT_DESIGN_MUB, 4}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 11);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct qt_design *des = make(cases[k].kind, cases[k].d);
        const struct qt_whiten *wh = des->whiten;
        size_t n = wh->ds, m = des->m;
        double complex *sig = malloc(n * n * sizeof(*sig)), *o1 = malloc(n * n * sizeof(*o1));
        double complex *o2 = malloc(n * n * sizeof(*o2));
        double *q = malloc(m * sizeof(double)), *qn = malloc(m * sizeof(double));
        double *moved = malloc(m * sizeof(double)), *w = malloc(m * sizeof(double));
        double *wn = malloc(m * sizeof(double)), qmax = 0.0;

        assert_non_null(wh);
        random_herm(&rng, n, sig);
        assert_int_equal(qt_whiten_forward(wh, des, &ws, sig, q), 0);
        assert_int_equal(qt_whiten_forward_native(wh, des, &ws, sig, qn), 0);
        assert_int_equal(qt_whiten_to_native(wh, des, &ws, q, moved), 0);
        for (size_t a = 0; a < m; a++)
            qmax = fmax(qmax, fabs(q[a]));
        for (size_t a = 0; a < m; a++)
            qt_assert_close(qn[a], moved[a], 0, 1e-14 * qmax);
        for (size_t a = 0; a < m; a++)
            w[a] = qt_rng_normal(&rng);
        assert_int_equal(qt_whiten_to_native(wh, des, &ws, w, wn), 0);
        assert_int_equal(qt_whiten_adjoint(wh, des, &ws, w, o1), 0);
        assert_int_equal(qt_whiten_adjoint_native(wh, des, &ws, wn, o2), 0);
        assert_true(qt_frob_diff(n, o1, o2) < 1e-12 * (double)m);
        qsort(w, m, sizeof(double), cmp_double); /* a permutation: the same multiset */
        qsort(wn, m, sizeof(double), cmp_double);
        assert_memory_equal(w, wn, m * sizeof(double));
        free(sig);
        free(o1);
        free(o2);
        free(q);
        free(qn);
        free(moved);
        free(w);
        free(wn);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

static struct qt_design *custom_from(const struct qt_design *src)
{
    size_t d = src->d, m = src->m;
    double complex *kets = malloc(d * m * sizeof(*kets));
    struct qt_custom_spec spec = {d, m, kets, NULL, NULL, NULL, NULL, NULL, NULL};
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};

    assert_non_null(kets);
    for (size_t a = 0; a < m; a++)
        for (size_t i = 0; i < d; i++)
            kets[a * d + i] = src->kets[i + d * a];
    if (qt_design_new_custom(&spec, &des, &dg) < 0)
        print_error("custom: %s\n", dg.msg);
    assert_non_null(des);
    free(kets);
    return des;
}

/* Closed-form singular values (nopovm, mub) equal those of a dense SVD of the same map. */
static void test_closed_form_sv(void **state)
{
    (void)state;
    for (size_t d = 2; d <= 8; d++) {
        struct qt_design *des = make(QT_DESIGN_NOPOVM, d), *cus = custom_from(des);

        assert_false(des->povm);
        assert_false(cus->povm);
        for (size_t i = 0; i < d * d; i++)
            qt_assert_close(des->sv[i], cus->sv[i], 1e-12, 1e-14);
        qt_assert_close(des->cond, cus->cond, 1e-12, 0);
        qt_design_free(des);
        qt_design_free(cus);
    }
    for (unsigned n = 1; n <= 3; n++) {
        size_t d = (size_t)1 << n;
        struct qt_design *des = make(QT_DESIGN_PAULI, d);
        double complex *K = pauli_kets(n);
        struct qt_design tmp = *des;

        tmp.kets = K;
        struct qt_design *cus = custom_from(&tmp);
        for (size_t i = 0; i < d * d; i++)
            qt_assert_close(des->sv[i], cus->sv[i], 1e-12, 1e-14);
        assert_true(cus->povm);
        qt_design_free(cus);
        qt_design_free(des);
        free(K);
    }
}

/* <A rho, w> = Re Tr(rho A^H w), and the inverse solves the normal equations
 * A^H A rho = A^H f, for every kind of design. */
static void test_map_identities(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
    } cases[] = {{QT_DESIGN_NOPOVM, 2}, {QT_DESIGN_NOPOVM, 7}, {QT_DESIGN_MUB, 4},
                 {QT_DESIGN_MUB, 9},    {QT_DESIGN_MUB, 37},   {QT_DESIGN_SIC, 2},
                 {QT_DESIGN_PAULI, 8},  {QT_DESIGN_PAULI, 32}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 11);
    for (size_t t = 0; t < QT_ARRAY_SIZE(cases); t++) {
        struct qt_design *des = make(cases[t].kind, cases[t].d);
        size_t d = des->d, m = des->m;
        double complex *rho = malloc(d * d * sizeof(*rho)), *X = malloc(d * d * sizeof(*X));
        double complex *Y = malloc(d * d * sizeof(*Y));
        double *q = malloc(m * sizeof(double)), *w = malloc(m * sizeof(double));
        double lhs = 0.0, rhs = 0.0;

        random_herm(&rng, d, rho);
        for (size_t a = 0; a < m; a++)
            w[a] = qt_rng_normal(&rng);
        assert_int_equal(qt_design_forward(des, &ws, rho, q), 0);
        assert_int_equal(qt_design_adjoint(des, &ws, w, X), 0);
        for (size_t a = 0; a < m; a++)
            lhs += q[a] * w[a];
        for (size_t i = 0; i < d * d; i++)
            rhs += creal(conj(rho[i]) * X[i]);
        qt_assert_close(lhs, rhs, 1e-10, 1e-10);
        /* Normal equations with f = w: A^H A (A^+ w) = A^H w. */
        assert_int_equal(qt_design_pinv_apply(des, &ws, w, Y), 0);
        assert_int_equal(qt_design_forward(des, &ws, Y, q), 0);
        assert_int_equal(qt_design_adjoint(des, &ws, q, rho), 0);
        double nrm = 0.0;
        for (size_t i = 0; i < d * d; i++)
            nrm = fmax(nrm, cabs(X[i]));
        assert_true(qt_frob_diff(d, rho, X) < 1e-10 * nrm * (double)d);
        free(rho);
        free(X);
        free(Y);
        free(q);
        free(w);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

/* The batched inverse equals the single-sample inverse (dense GEMM and looped paths). */
static void test_batch_inverse(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
    } cases[] = {{QT_DESIGN_MUB, 5},
                 {QT_DESIGN_SIC, 2},
                 {QT_DESIGN_NOPOVM, 6},
                 {QT_DESIGN_PAULI, 4},
                 {QT_DESIGN_MUB, 64}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 5);
    for (size_t t = 0; t < QT_ARRAY_SIZE(cases); t++) {
        struct qt_design *des = make(cases[t].kind, cases[t].d);
        size_t d = des->d, m = des->m, n = 5;
        double *F = malloc(m * n * sizeof(double));
        double complex *R = malloc(d * d * n * sizeof(*R)), *one = malloc(d * d * sizeof(*one));

        for (size_t i = 0; i < m * n; i++)
            F[i] = qt_rng_uniform(&rng);
        assert_int_equal(qt_design_pinv_apply_batch(des, &ws, n, F, m, R), 0);
        for (size_t s = 0; s < n; s++) {
            assert_int_equal(qt_design_pinv_apply(des, &ws, F + m * s, one), 0);
            assert_true(qt_frob_diff(d, one, R + d * d * s) < 1e-12 * (double)m);
        }
        if (cases[t].kind == QT_DESIGN_MUB && d > 32)
            assert_null(des->pinv); /* large designs must not build dense m x d^2 operators */
        free(F);
        free(R);
        free(one);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

static void test_infer(void **state)
{
    struct qt_diag dg = {0};
    int kind;
    size_t d;

    (void)state;
    assert_int_equal(qt_design_infer(-1, 16, &kind, &d, &dg), 0);
    assert_int_equal(kind, QT_DESIGN_NOPOVM);
    assert_int_equal(d, 4);
    assert_int_equal(qt_design_infer(-1, 20, &kind, &d, &dg), 0);
    assert_int_equal(kind, QT_DESIGN_MUB);
    assert_int_equal(d, 4);
    assert_int_equal(qt_design_infer(-1, 256, &kind, &d, &dg), 0);
    assert_int_equal(d, 16);
    assert_int_equal(qt_design_infer(-1, 30, &kind, &d, &dg), 0); /* 5 * 6 */
    assert_int_equal(kind, QT_DESIGN_MUB);
    assert_int_equal(qt_design_infer(-1, 17, &kind, &d, &dg), QT_EDESIGN);
    assert_non_null(strstr(dg.msg, "17 rows"));
    /* With the design named, the row count must fit that design. */
    assert_int_equal(qt_design_infer(QT_DESIGN_MUB, 16, &kind, &d, &dg), QT_EDIM);
    assert_non_null(strstr(dg.msg, "mub"));
    assert_int_equal(qt_design_infer(QT_DESIGN_PAULI, 36, &kind, &d, &dg), 0);
    assert_int_equal(d, 4);
    assert_int_equal(qt_design_infer(QT_DESIGN_SIC, 4, &kind, &d, &dg), 0);
    assert_int_equal(d, 2);
    assert_int_equal(qt_design_infer(QT_DESIGN_MUB, 42, &kind, &d, &dg), QT_EDIM); /* d = 6 */
    assert_int_equal(qt_design_infer(QT_DESIGN_PAULI, 6 * 6 * 6, &kind, &d, &dg), 0);
    assert_int_equal(d, 8);
}

static void test_dimension_errors(void **state)
{
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};

    (void)state;
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 1, &des, &dg), QT_EDIM);
    assert_int_equal(qt_design_new(QT_DESIGN_SIC, 3, &des, &dg), QT_EDIM);
    assert_non_null(strstr(dg.msg, "d = 2 only"));
    assert_int_equal(qt_design_new(QT_DESIGN_PAULI, 6, &des, &dg), QT_EDIM);
    assert_int_equal(qt_design_new(QT_DESIGN_PAULI, 1024, &des, &dg), QT_EDIM);
    assert_int_equal(qt_design_new(QT_DESIGN_CUSTOM, 4, &des, &dg), QT_EDESIGN);
    assert_null(des);
    assert_int_equal(qt_design_kind_from_name("MUB"), QT_DESIGN_MUB);
    assert_int_equal(qt_design_kind_from_name("mubs"), QT_EDESIGN);
}

/* A custom design that is not informationally complete, and one with a non-PSD element. */
static void test_custom_errors(void **state)
{
    double complex kets[4 * 2] = {1, 0, 0, 1, 1, 0, 0, 1}; /* |0>,|1>,|0>,|1> */
    double complex elems[4 * 4] = {1, 0, 0, 0, 0, 0, 0, 1, 0.5, 0.5, 0.5, 0.5, 1, 0, 0, -1};
    struct qt_custom_spec spec = {2, 4, kets, NULL, NULL, NULL, NULL, NULL, NULL};
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};

    (void)state;
    assert_int_equal(qt_design_new_custom(&spec, &des, &dg), QT_ENOTIC);
    assert_non_null(strstr(dg.msg, "informationally complete"));
    spec.kets = NULL;
    spec.elems = elems;
    assert_int_equal(qt_design_new_custom(&spec, &des, &dg), QT_ENOTPSD);
    assert_non_null(strstr(dg.msg, "element 3"));
    spec.m = 3;
    assert_int_equal(qt_design_new_custom(&spec, &des, &dg), QT_ENOTIC);
    assert_null(des);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_designs_match_origin),
    cmocka_unit_test(test_mub_complete),
    cmocka_unit_test(test_mub_large),
    cmocka_unit_test(test_pauli_layout),
    cmocka_unit_test(test_pauli_products),
    cmocka_unit_test(test_native_order),
    cmocka_unit_test(test_closed_form_sv),
    cmocka_unit_test(test_map_identities),
    cmocka_unit_test(test_batch_inverse),
    cmocka_unit_test(test_infer),
    cmocka_unit_test(test_dimension_errors),
    cmocka_unit_test(test_custom_errors),
};

QT_TEST_MAIN(tests)

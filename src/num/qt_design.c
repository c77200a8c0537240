/* Construction and validation of measurement designs. The catalogue of built-in kinds (names,
 * dimensions, outcome counts, inference) lives in qt_design_kind.c, the maps
 * (forward, adjoint, inverse) live in qt_design_ops.c; the file is split because the Pauli and
 * closed-form kernels would push one file far past the house limit. */
#include "qt_design.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "qt_gf.h"
#include "qt_lapack.h"
#include "qt_whiten.h"

/* Arrays owned by a design built in memory. */
struct design_own {
    uint32_t *groups;
    double *group_scale;
    double complex *kets;
    double complex *elems;
    double complex *H;
    double *sv;
    double *pinv;
    struct qt_whiten *whiten;
    double *background;
    struct qt_design *mix_base; /* a map-only view (no own) */
    double complex *mix_kets;
    double *mix;
};

/* Dense batch operators are kept only up to this size (bytes). */
#define DENSE_BATCH_MAX (32u << 20)

static size_t ipow(size_t b, unsigned e)
{
    size_t r = 1;

    while (e--)
        r *= b;
    return r;
}

static struct qt_design *design_alloc(enum qt_design_kind kind, size_t d, size_t m)
{
    struct qt_design *des = calloc(1, sizeof(*des));
    struct design_own *own = calloc(1, sizeof(*own));

    if (!des || !own) {
        free(des);
        free(own);
        return NULL;
    }
    des->kind = kind;
    des->d = d;
    des->m = m;
    des->own = own;
    (void)snprintf(des->name, sizeof(des->name), "%s", qt_design_kind_name(kind));
    (void)snprintf(des->id, sizeof(des->id), "%s", des->name);
    return des;
}

void qt_design_free(struct qt_design *des)
{
    struct design_own *own;

    if (!des)
        return;
    own = des->own;
    if (own) {
        free(own->groups);
        free(own->group_scale);
        free(own->kets);
        free(own->elems);
        free(own->H);
        free(own->sv);
        free(own->pinv);
        free(own->background);
        free(own->mix_base);
        free(own->mix_kets);
        free(own->mix);
        qt_whiten_done(own->whiten);
        free(own->whiten);
        free(own);
    }
    free(des);
}

size_t qt_design_bytes(const struct qt_design *des)
{
    size_t d = des->d, m = des->m, b = 0;

    b += des->groups ? m * sizeof(uint32_t) : 0;
    b += des->group_scale ? des->n_groups * sizeof(double) : 0;
    b += des->kets ? d * m * sizeof(double complex) : 0;
    b += des->elems ? d * d * m * sizeof(double complex) : 0;
    b += des->H ? d * d * sizeof(double complex) : 0;
    b += des->sv ? QT_MIN(m, d * d) * sizeof(double) : 0;
    b += des->background ? m * sizeof(double) : 0;
    if (des->mix_base)
        b += m * des->mix_base->group_len * sizeof(double) +
             (des->mix_base->kets ? d * m * sizeof(double complex) : 0);
    if (des->whiten && !des->whiten->trivial) {
        size_t n = des->whiten->ds;

        b += (d * n + (des->whiten->kets ? n * m : n * n * m)) * sizeof(double complex);
    }
    b += des->pinv
             ? (des->pinv_lower ? d * (d + 1) / 2 : d * d) * des->pinv_cols * sizeof(double complex)
             : 0;
    return b;
}

/* ---- rank, condition number and the numpy lstsq rank rule ---- */

static void set_rank_cond(struct qt_design *des, size_t nsv)
{
    const double *sv = des->sv;
    double smax = nsv ? sv[0] : 0.0;
    double rcond = 2.220446049250313e-16 * (double)QT_MAX(des->m, des->d * des->d);
    double smin = 0.0;
    size_t rank = 0;

    for (size_t i = 0; i < nsv; i++) {
        if (sv[i] > rcond * smax)
            rank++;
        if (sv[i] > 1e-10 * smax)
            smin = sv[i];
    }
    des->rank = rank;
    des->cond = smin > 0.0 ? smax / smin : 1e16;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x < y) - (x > y);
}

/* ---- nopovm ---- */

/* Singular values of the nopovm map in closed form: eigenvalues of A^H A are 1/2 with
 * multiplicity d^2 - 2d and the roots of l^2 - (3/2 + mu) l + 1/2 for mu = d - 1 (once) and
 * mu = (d - 2)/2 (d - 1 times); see the derivation in the design notes of the README. */
static void nopovm_sv(size_t d, double *sv)
{
    size_t t = 0;

    for (size_t rep = 0; rep < d; rep++) {
        double mu = rep == 0 ? (double)d - 1.0 : ((double)d - 2.0) / 2.0;
        double b = 1.5 + mu, disc = sqrt(b * b - 2.0);

        sv[t++] = sqrt((b + disc) / 2.0);
        sv[t++] = sqrt(0.5 / ((b + disc) / 2.0)); /* product of the roots is 1/2 */
    }
    while (t < d * d)
        sv[t++] = sqrt(0.5);
    qsort(sv, d * d, sizeof(double), cmp_desc);
}

static int build_nopovm(struct qt_design *des)
{
    struct design_own *own = des->own;
    size_t d = des->d, m = des->m, a = d;
    const double s = 1.0 / sqrt(2.0);

    own->kets = calloc(d * m, sizeof(double complex));
    if (!own->kets)
        return -ENOMEM;
    for (size_t i = 0; i < d; i++)
        own->kets[i + d * i] = 1.0;
    for (size_t i = 0; i + 1 < d; i++)
        for (size_t j = i + 1; j < d; j++) {
            own->kets[i + d * a] = s;
            own->kets[j + d * a] = s;
            a++;
            own->kets[i + d * a] = s;
            own->kets[j + d * a] = -I * s;
            a++;
        }
    own->sv = malloc(d * d * sizeof(double));
    if (!own->sv)
        return -ENOMEM;
    nopovm_sv(d, own->sv);
    des->pinv_kind = QT_PINV_NOPOVM;
    des->n_groups = 1;
    return 0;
}

/* ---- mub ---- */

/* Odd characteristic: v_gamma[alpha] = chi(c alpha^2 + gamma alpha) / sqrt(d), basis 1 + c. */
static void mub_odd(const struct qt_gf *f, double complex *kets)
{
    size_t d = f->q;
    double norm = 1.0 / sqrt((double)d);

    for (size_t c = 0; c < d; c++)
        for (size_t g = 0; g < d; g++) {
            double complex *v = kets + d * (d * (1 + c) + g);

            for (size_t al = 0; al < d; al++) {
                unsigned x = f->add[f->mul[c][f->mul[al][al]]][f->mul[g][al]];
                double ph = 2.0 * M_PI * (double)f->tr[x] / (double)f->p;

                v[al] = norm * (cos(ph) + I * sin(ph));
            }
        }
}

/* Applies the n-qubit Pauli with X-part umask and Z-part vmask (qubit 0 = most significant
 * bit) to x: (P x)[b ^ umask] = i^|u&v| (-1)^|v & (b ^ umask)| x[b]. */
static void pauli_apply(size_t d, unsigned umask, unsigned vmask, const double complex *x,
                        double complex *y)
{
    static const double complex ipow4[4] = {1, I, -1, -I};
    unsigned iu = (unsigned)__builtin_popcount(umask & vmask) & 3u;

    for (size_t b = 0; b < d; b++) {
        unsigned tb = (unsigned)b ^ umask;
        double sgn = (__builtin_popcount(vmask & tb) & 1) ? -1.0 : 1.0;

        y[tb] = ipow4[iu] * sgn * x[b];
    }
}

/* Characteristic 2: the origin's stabilizer construction (origin-digest §1.3). Each ket is the
 * joint eigenvector of the N commuting generators with the sign pattern given by the bits of
 * its index; it is obtained by projecting a basis vector and fixing the global phase. */
static int mub_pow2(const struct qt_gf *f, double complex *kets)
{
    size_t d = f->q;
    unsigned N = f->k, G[8][8], S[8][8], M[8][8];
    double complex *x = malloc(2 * d * sizeof(double complex)), *y = x + d;

    if (!x)
        return -ENOMEM;
    for (unsigned i = 0; i < N; i++)
        for (unsigned j = 0; j < N; j++)
            G[i][j] = f->tr[f->mul[1u << i][1u << j]];
    for (size_t a = 0; a < d; a++) {
        unsigned umask[8], vmask[8];

        for (unsigned j = 0; j < N; j++)
            for (unsigned q = 0; q < N; q++)
                M[q][j] = ((unsigned)f->mul[a][1u << j] >> q) & 1u;
        for (unsigned i = 0; i < N; i++)
            for (unsigned j = 0; j < N; j++) {
                unsigned acc = 0;
                for (unsigned q = 0; q < N; q++)
                    acc ^= G[i][q] & M[q][j];
                S[i][j] = acc;
            }
        for (unsigned j = 0; j < N; j++) {
            umask[j] = 1u << (N - 1 - j);
            vmask[j] = 0;
            for (unsigned q = 0; q < N; q++)
                if (S[q][j])
                    vmask[j] |= 1u << (N - 1 - q);
        }
        for (size_t s = 0; s < d; s++) {
            double complex *v = kets + d * (d * (1 + a) + s);
            double nrm2 = 0.0;

            for (size_t t = 0; t < d && nrm2 < 0.5 / (double)d; t++) {
                memset(x, 0, d * sizeof(*x));
                x[t] = 1.0;
                for (unsigned j = 0; j < N; j++) {
                    double lam = (s >> j) & 1u ? -1.0 : 1.0;

                    pauli_apply(d, umask[j], vmask[j], x, y);
                    for (size_t b = 0; b < d; b++)
                        x[b] = 0.5 * (x[b] + lam * y[b]);
                }
                nrm2 = 0.0;
                for (size_t b = 0; b < d; b++)
                    nrm2 += creal(x[b] * conj(x[b]));
            }
            /* Global phase: first non-negligible component real and positive. */
            double complex ph = 0.0;
            for (size_t b = 0; b < d && ph == 0.0; b++)
                if (cabs(x[b]) > 1e-9)
                    ph = conj(x[b]) / cabs(x[b]);
            for (size_t b = 0; b < d; b++)
                v[b] = x[b] * ph / sqrt(nrm2);
        }
    }
    free(x);
    return 0;
}

static int build_mub(struct qt_design *des)
{
    struct design_own *own = des->own;
    size_t d = des->d, m = des->m;
    struct qt_gf *f = malloc(sizeof(*f));
    int r;

    if (!f)
        return -ENOMEM;
    r = qt_gf_init(f, (unsigned)d);
    if (r < 0)
        goto out;
    own->kets = calloc(d * m, sizeof(double complex));
    own->sv = malloc(d * d * sizeof(double));
    if (!own->kets || !own->sv) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d; i++)
        own->kets[i + d * i] = 1.0;
    if (f->p == 2)
        r = mub_pow2(f, own->kets);
    else
        mub_odd(f, own->kets);
    if (r < 0)
        goto out;
    own->sv[0] = sqrt((double)d + 1.0);
    for (size_t i = 1; i < d * d; i++)
        own->sv[i] = 1.0;
    des->pinv_kind = QT_PINV_FRAME;
    des->n_groups = d + 1;
out:
    free(f);
    return r;
}

/* ---- sic ---- */

static int build_sic(struct qt_design *des)
{
    struct design_own *own = des->own;
    const double w = 1.0 / sqrt(2.0), a = 1.0 / sqrt(3.0), b = sqrt(2.0) / sqrt(3.0);
    const double complex om = cexp(2.0 * M_PI * I / 3.0);

    own->kets = malloc(8 * sizeof(double complex));
    if (!own->kets)
        return -ENOMEM;
    own->kets[0] = w;
    own->kets[1] = 0.0;
    own->kets[2] = w * a;
    own->kets[3] = w * b;
    own->kets[4] = w * a;
    own->kets[5] = w * b * om;
    own->kets[6] = w * a;
    own->kets[7] = w * b * conj(om);
    des->n_groups = 1;
    return 0; /* the dense inverse is computed by the generic path */
}

/* ---- pauli ---- */

static int build_pauli(struct qt_design *des)
{
    struct design_own *own = des->own;
    unsigned n = qt_design_qubits(des->d);
    size_t t = 0;

    des->n_qubits = n;
    des->n_groups = ipow(3, n);
    own->sv = malloc(des->d * des->d * sizeof(double));
    if (!own->sv)
        return -ENOMEM;
    /* sigma^2 = 3^(n-w) on Pauli strings of weight w, C(n, w) 3^w of them. */
    for (unsigned w = 0; w <= n; w++) {
        size_t binom = 1;

        for (unsigned i = 0; i < w; i++)
            binom = binom * (n - i) / (i + 1);
        for (size_t c = 0; c < binom * ipow(3, w); c++)
            own->sv[t++] = sqrt((double)ipow(3, n - w));
    }
    des->pinv_kind = QT_PINV_PAULI;
    return 0;
}

/* ---- shared post-processing: groups, H, POVM test, dense operators ---- */

static void vec_outer(size_t d, const double complex *k, double complex *E)
{
    for (size_t c = 0; c < d; c++)
        for (size_t r = 0; r < d; r++)
            E[r + d * c] = k[r] * conj(k[c]);
}

static const double complex *element(const struct qt_design *des, size_t a, double complex *buf)
{
    if (des->elems)
        return des->elems + des->d * des->d * a;
    vec_outer(des->d, des->kets + des->d * a, buf);
    return buf;
}

/* S_g = sum_{a in g} E_a for every group, into S (n_groups blocks of d x d). Rank-1 designs
 * gather each group's kets and use one GEMM per group. */
static int group_sums(const struct qt_design *des, double complex *S)
{
    size_t d = des->d, dd = d * d, m = des->m;
    double complex *buf;

    if (!des->kets) {
        for (size_t a = 0; a < m; a++)
            for (size_t t = 0; t < dd; t++)
                S[dd * des->groups[a] + t] += des->elems[dd * a + t];
        return 0;
    }
    buf = malloc(d * m * sizeof(*buf));
    if (!buf)
        return -ENOMEM;
    for (size_t g = 0; g < des->n_groups; g++) {
        size_t n = 0;

        for (size_t a = 0; a < m; a++)
            if (des->groups[a] == g)
                memcpy(buf + d * n++, des->kets + d * a, d * sizeof(*buf));
        qt_zgemm('N', 'C', d, d, n, 1.0, buf, d, buf, d, 0.0, S + dd * g, d);
    }
    free(buf);
    return 0;
}

/* Sets H, group_scale and povm from the group sums (not for pauli, which is a POVM per setting
 * by construction). */
static int compute_group_sums(struct qt_design *des)
{
    struct design_own *own = des->own;
    size_t d = des->d, dd = d * d;
    double complex *S = calloc(dd * des->n_groups, sizeof(double complex));
    int r;

    own->H = calloc(dd, sizeof(double complex));
    own->group_scale = calloc(des->n_groups, sizeof(double));
    if (!S || !own->H || !own->group_scale) {
        free(S);
        return -ENOMEM;
    }
    r = group_sums(des, S);
    if (r < 0) {
        free(S);
        return r;
    }
    des->povm = true;
    for (size_t g = 0; g < des->n_groups; g++) {
        double complex *Sg = S + dd * g;
        double tr = 0.0, dev = 0.0, nrm = 0.0;

        for (size_t t = 0; t < dd; t++)
            own->H[t] += Sg[t];
        for (size_t i = 0; i < d; i++)
            tr += creal(Sg[i + d * i]);
        double c = tr / (double)d;
        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++) {
                double complex z = Sg[i + d * j] - (i == j ? c : 0.0);

                dev += creal(z * conj(z));
                nrm += creal(Sg[i + d * j] * conj(Sg[i + d * j]));
            }
        own->group_scale[g] = c;
        if (!(sqrt(dev) <= 1e-10 * sqrt(nrm)) || !(c > 0.0))
            des->povm = false;
    }
    free(S);
    return 0;
}

/* Dense A^+ (d^2 x m) from the SVD of [vec E_a] (d^2 x m), with numpy's lstsq cut-off
 * rcond = eps * max(m, d^2). Also sets the singular values. */
static int build_dense_pinv(struct qt_design *des, struct qt_ws *ws)
{
    struct design_own *own = des->own;
    size_t d = des->d, dd = d * d, m = des->m, r = QT_MIN(dd, m);
    double complex *Em = NULL, *U = NULL, *VH = NULL, *G = NULL;
    int ret;

    Em = malloc(dd * m * sizeof(*Em));
    U = malloc(dd * r * sizeof(*U));
    VH = malloc(r * m * sizeof(*VH));
    own->sv = malloc(r * sizeof(double));
    if (!Em || !U || !VH || !own->sv) {
        ret = -ENOMEM;
        goto out;
    }
    for (size_t a = 0; a < m; a++) {
        const double complex *E = element(des, a, Em + dd * a);

        if (E != Em + dd * a)
            memcpy(Em + dd * a, E, dd * sizeof(*E));
    }
    ret = qt_zsvd(ws, dd, m, Em, dd, own->sv, U, dd, VH, r);
    if (ret < 0)
        goto out;
    /* A = Em^H = V S U^H, so A^+ = U S^+ V^H. */
    double cut = 2.220446049250313e-16 * (double)QT_MAX(m, dd) * own->sv[0];
    for (size_t k = 0; k < r; k++) {
        double inv = own->sv[k] > cut ? 1.0 / own->sv[k] : 0.0;
        for (size_t i = 0; i < dd; i++)
            U[i + dd * k] *= inv;
    }
    G = malloc(dd * m * sizeof(*G));
    if (!G) {
        ret = -ENOMEM;
        goto out;
    }
    qt_zgemm('N', 'N', dd, m, r, 1.0, U, dd, VH, r, 0.0, G, dd);
    own->pinv = (double *)G;
    des->pinv_cols = m;
    des->pinv_kind = QT_PINV_DENSE;
    G = NULL;
out:
    free(Em);
    free(U);
    free(VH);
    free(G);
    return ret;
}

/* For complete MUBs: columns vec(E_a - I/(d+1)), so that one GEMM inverts many samples. Only the
 * lower triangle (column by column) is kept: the estimate is Hermitian, so the upper half would
 * double the GEMM for nothing. */
static int build_frame_batch(struct qt_design *des)
{
    struct design_own *own = des->own;
    size_t d = des->d, m = des->m, nl = d * (d + 1) / 2;
    double complex *G;

    if (nl * m * sizeof(double complex) > DENSE_BATCH_MAX)
        return 0;
    G = malloc(nl * m * sizeof(*G));
    if (!G)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++) {
        const double complex *k = des->kets + d * a;
        double complex *col = G + nl * a;

        for (size_t j = 0, t = 0; j < d; j++)
            for (size_t i = j; i < d; i++, t++)
                col[t] = k[i] * conj(k[j]) - (i == j ? 1.0 / ((double)d + 1.0) : 0.0);
    }
    own->pinv = (double *)G;
    des->pinv_cols = m;
    des->pinv_lower = true;
    return 0;
}

static int finish(struct qt_design *des, struct qt_ws *ws)
{
    struct design_own *own = des->own;
    int r;

    if (!own->groups) {
        own->groups = malloc(des->m * sizeof(uint32_t));
        if (!own->groups)
            return -ENOMEM;
        for (size_t a = 0; a < des->m; a++)
            own->groups[a] = des->kind == QT_DESIGN_MUB     ? (uint32_t)(a / des->d)
                             : des->kind == QT_DESIGN_PAULI ? (uint32_t)(a >> des->n_qubits)
                                                            : 0;
    }
    des->groups = own->groups;
    des->group_len = des->m % des->n_groups == 0 ? des->m / des->n_groups : 0;
    for (size_t a = 0; a < des->m && des->group_len; a++)
        if (des->groups[a] != a / des->group_len)
            des->group_len = 0;
    des->kets = own->kets;
    des->elems = own->elems;
    des->rank1 = des->elems == NULL;
    if (des->kind == QT_DESIGN_PAULI) {
        size_t d = des->d;

        own->H = calloc(d * d, sizeof(double complex));
        own->group_scale = malloc(des->n_groups * sizeof(double));
        if (!own->H || !own->group_scale)
            return -ENOMEM;
        for (size_t i = 0; i < d; i++)
            own->H[i + d * i] = (double)des->n_groups;
        for (size_t g = 0; g < des->n_groups; g++)
            own->group_scale[g] = 1.0;
        des->povm = true;
    } else {
        r = compute_group_sums(des);
        if (r < 0)
            return r;
    }
    des->H = own->H;
    des->group_scale = own->group_scale;
    if (des->kind == QT_DESIGN_SIC || des->kind == QT_DESIGN_CUSTOM) {
        r = build_dense_pinv(des, ws);
        if (r < 0)
            return r;
    } else if (des->kind == QT_DESIGN_MUB) {
        r = build_frame_batch(des);
        if (r < 0)
            return r;
    }
    des->sv = own->sv;
    des->pinv = own->pinv;
    set_rank_cond(des, QT_MIN(des->m, des->d * des->d));
    own->whiten = malloc(sizeof(*own->whiten));
    if (!own->whiten)
        return -ENOMEM;
    r = qt_whiten_init(own->whiten, des, ws, QT_WHITEN_EIG_REL, 0.0, QT_WHITEN_EPS);
    if (r < 0) {
        free(own->whiten);
        own->whiten = NULL;
        return r;
    }
    des->whiten = own->whiten;
    return 0;
}

int qt_design_new(enum qt_design_kind kind, size_t d, struct qt_design **ret_des,
                  struct qt_diag *reterr)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des;
    int r;

    r = qt_design_check_dim(kind, d, reterr);
    if (r < 0)
        return r;
    des = design_alloc(kind, d, qt_design_outcomes(kind, d));
    if (!des)
        return -ENOMEM;
    switch (kind) {
    case QT_DESIGN_NOPOVM:
        r = build_nopovm(des);
        break;
    case QT_DESIGN_MUB:
        r = build_mub(des);
        break;
    case QT_DESIGN_SIC:
        r = build_sic(des);
        break;
    case QT_DESIGN_PAULI:
        r = build_pauli(des);
        break;
    default:
        r = QT_EDESIGN;
        break;
    }
    if (r >= 0)
        r = finish(des, &ws);
    qt_ws_done(&ws);
    if (r < 0) {
        qt_design_free(des);
        return qt_diag_set(reterr, r, 0, 0, "cannot build design '%s' at d = %zu: %s",
                           qt_design_kind_name(kind), d, qt_strerror(r));
    }
    *ret_des = des;
    return 0;
}

/* ---- custom designs ---- */

#define CUSTOM_MAX_DIM   64
/* Largest magnitude of a weighted element entry. Squares and sums of squares of entries must stay
 * far from DBL_MAX: LAPACK's SVD iterates without end on a matrix whose norms overflow (a fuzzer
 * found a vector entry of 4.4e153). A ket enters its element squared, so its bound is the root. */
#define CUSTOM_MAX_ABS     1e100
#define CUSTOM_MAX_KET_ABS 1e50

static int check_element(struct qt_ws *ws, size_t d, size_t a, const double complex *E,
                         struct qt_diag *reterr)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *A = qt_ws_alloc_n(ws, d * d, sizeof(*A));
    double *w = qt_ws_alloc_n(ws, d, sizeof(*w));
    double nrm = 0.0, herm = 0.0;
    int r = 0;

    if (!A || !w) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            double complex e = E[i + d * j], diff = e - conj(E[j + d * i]);

            nrm += creal(e * conj(e));
            herm += creal(diff * conj(diff));
            A[i + d * j] = e;
        }
    nrm = sqrt(nrm);
    if (!(nrm > 0.0)) {
        r = qt_diag_set(reterr, QT_ENOTPSD, 0, 0, "element %zu is zero", a);
        goto out;
    }
    if (sqrt(herm) > 1e-10 * nrm) {
        r = qt_diag_set(reterr, QT_ENOTPSD, 0, 0, "element %zu is not Hermitian (|E - E^H| = %.3g)",
                        a, sqrt(herm));
        goto out;
    }
    r = qt_zheev(ws, false, d, A, d, w);
    if (r < 0)
        goto out;
    if (w[0] < -1e-10 * nrm)
        r = qt_diag_set(reterr, QT_ENOTPSD, 0, 0,
                        "element %zu is not positive semidefinite (eigenvalue %.6g)", a, w[0]);
out:
    qt_ws_release(ws, mark);
    return r;
}

static int custom_fill(struct qt_design *des, const struct qt_custom_spec *spec, struct qt_ws *ws,
                       struct qt_diag *reterr)
{
    struct design_own *own = des->own;
    size_t d = spec->d, m = spec->m, dd = d * d;

    for (size_t a = 0; a < m; a++) {
        double w = spec->weights ? spec->weights[a] : 1.0;

        if (!isfinite(w) || !(w > 0.0))
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "weight of element %zu must be finite and positive, got %g", a, w);
    }
    if (spec->kets) {
        own->kets = malloc(d * m * sizeof(double complex));
        if (!own->kets)
            return -ENOMEM;
        for (size_t a = 0; a < m; a++) {
            double sw = sqrt(spec->weights ? spec->weights[a] : 1.0);
            bool nonzero = false;

            for (size_t i = 0; i < d; i++) {
                double complex z = spec->kets[a * d + i];

                if (!isfinite(creal(z)) || !isfinite(cimag(z)))
                    return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                                       "vector %zu has a non-finite component %zu", a, i);
                nonzero |= z != 0.0;
                own->kets[i + d * a] = sw * z;
                if (!(cabs(sw * z) <= CUSTOM_MAX_KET_ABS))
                    return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                                       "vector %zu component %zu (times the square root of its "
                                       "weight) has magnitude %.3g, above the limit %g",
                                       a, i, cabs(sw * z), CUSTOM_MAX_KET_ABS);
            }
            if (!nonzero)
                return qt_diag_set(reterr, QT_ENOTPSD, 0, 0, "vector %zu is zero", a);
        }
    } else {
        own->elems = malloc(dd * m * sizeof(double complex));
        if (!own->elems)
            return -ENOMEM;
        for (size_t a = 0; a < m; a++) {
            double w = spec->weights ? spec->weights[a] : 1.0;
            double complex *E = own->elems + dd * a;

            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++) {
                    double complex z = spec->elems[a * dd + i * d + j]; /* row-major in file */

                    if (!isfinite(creal(z)) || !isfinite(cimag(z)))
                        return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                                           "element %zu has a non-finite entry (%zu, %zu)", a, i,
                                           j);
                    E[i + d * j] = w * z;
                    if (!(cabs(w * z) <= CUSTOM_MAX_ABS))
                        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                                           "element %zu entry (%zu, %zu) (times its weight) has "
                                           "magnitude %.3g, above the limit %g",
                                           a, i, j, cabs(w * z), CUSTOM_MAX_ABS);
                }
            int r = check_element(ws, d, a, E, reterr);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

struct label {
    int64_t value;
    size_t first; /* first outcome carrying the value */
};

static int cmp_label(const void *a, const void *b)
{
    const struct label *x = a, *y = b;

    if (x->value != y->value)
        return (x->value > y->value) - (x->value < y->value);
    return (x->first > y->first) - (x->first < y->first);
}

static int cmp_first(const void *a, const void *b)
{
    const struct label *x = a, *y = b;

    return (x->first > y->first) - (x->first < y->first);
}

/* Index of value v in the sorted distinct labels lab[0..n). */
static size_t find_label(const struct label *lab, size_t n, int64_t v)
{
    size_t lo = 0, hi = n;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (lab[mid].value <= v)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Renumbers the user's group labels densely, in order of first appearance, in O(m log m):
 * sort the (label, outcome) pairs, keep each label's first outcome, rank the distinct labels by
 * that outcome, then look every outcome's label up. */
static int custom_groups(struct qt_design *des, const struct qt_custom_spec *spec,
                         struct qt_diag *reterr)
{
    struct design_own *own = des->own;
    size_t m = spec->m, n = 0;
    struct label *lab = malloc(m * sizeof(*lab)), *order = malloc(m * sizeof(*order));
    uint32_t *id = malloc(m * sizeof(uint32_t));
    int r = 0;

    own->groups = malloc(m * sizeof(uint32_t));
    if (!lab || !order || !id || !own->groups) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t a = 0; a < m; a++) {
        lab[a] = (struct label){spec->groups ? spec->groups[a] : 0, a};
        if (lab[a].value < 0) {
            r = qt_diag_set(reterr, QT_EOPTION, 0, 0,
                            "group of element %zu must be a non-negative integer", a);
            goto out;
        }
    }
    qsort(lab, m, sizeof(*lab), cmp_label);
    for (size_t a = 0; a < m; a++)
        if (n == 0 || lab[a].value != lab[n - 1].value)
            lab[n++] = lab[a];
    for (size_t k = 0; k < n; k++) /* value = index of the label in lab */
        order[k] = (struct label){(int64_t)k, lab[k].first};
    qsort(order, n, sizeof(*order), cmp_first);
    for (size_t j = 0; j < n; j++)
        id[order[j].value] = (uint32_t)j;
    for (size_t a = 0; a < m; a++)
        own->groups[a] = id[find_label(lab, n, spec->groups ? spec->groups[a] : 0)];
    des->n_groups = n;
out:
    free(lab);
    free(order);
    free(id);
    return r;
}

/* The known backgrounds, kept only when some is > 0. */
static int custom_background(struct qt_design *des, const struct qt_custom_spec *spec,
                             struct qt_diag *reterr)
{
    struct design_own *own = des->own;
    bool any = false;

    if (!spec->background)
        return 0;
    for (size_t a = 0; a < des->m; a++) {
        double b = spec->background[a];

        if (!isfinite(b) || b < 0.0)
            return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                               "background of element %zu must be finite and >= 0, got %g", a, b);
        any |= b > 0.0;
    }
    if (!any)
        return 0;
    if (des->n_groups != 1)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "a background needs all elements in one group (the Poisson model with "
                           "one unknown intensity); this design has %zu groups",
                           des->n_groups);
    own->background = malloc(des->m * sizeof(double));
    if (!own->background)
        return -ENOMEM;
    memcpy(own->background, spec->background, des->m * sizeof(double));
    des->background = own->background;
    return 0;
}

/* The structure of an effective design (qt_design.mix_base): a map-only copy of the base. */
static int custom_mix(struct qt_design *des, const struct qt_custom_spec *spec,
                      struct qt_diag *reterr)
{
    struct design_own *own = des->own;
    const struct qt_design *b = spec->mix_base;
    struct qt_design *v;
    size_t k;

    if (!b)
        return 0;
    k = b->group_len;
    if ((b->kind != QT_DESIGN_PAULI && b->kind != QT_DESIGN_MUB) || !k || b->m != des->m ||
        b->d != des->d || !spec->mix || (b->kind != QT_DESIGN_PAULI && !b->kets))
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0,
                           "a mixing structure needs a pauli or mub base of the same size");
    v = calloc(1, sizeof(*v));
    own->mix = malloc(des->m * k * sizeof(double));
    if (!v || !own->mix) {
        free(v);
        return -ENOMEM;
    }
    own->mix_base = v;
    memcpy(own->mix, spec->mix, des->m * k * sizeof(double));
    if (b->kets) {
        own->mix_kets = malloc(des->d * des->m * sizeof(double complex));
        if (!own->mix_kets)
            return -ENOMEM;
        memcpy(own->mix_kets, b->kets, des->d * des->m * sizeof(double complex));
    }
    v->kind = b->kind;
    v->pinv_kind = b->pinv_kind;
    v->d = b->d;
    v->m = b->m;
    v->n_groups = b->n_groups;
    v->group_len = k;
    v->n_qubits = b->n_qubits;
    v->rank1 = true;
    v->povm = b->povm;
    v->kets = own->mix_kets;
    (void)snprintf(v->name, sizeof(v->name), "%s", b->name);
    (void)snprintf(v->id, sizeof(v->id), "%s", b->id);
    des->mix_base = v;
    des->mix = own->mix;
    return 0;
}

static void custom_id(struct qt_design *des)
{
    size_t d = des->d, m = des->m;
    XXH3_state_t *st = XXH3_createState();
    uint64_t hdr[3] = {d, m, des->rank1};

    if (!st)
        return; /* the id stays "custom"; callers that need an id check it */
    (void)XXH3_128bits_reset(st);
    (void)XXH3_128bits_update(st, hdr, sizeof(hdr));
    (void)XXH3_128bits_update(st, des->groups, m * sizeof(uint32_t));
    if (des->rank1)
        (void)XXH3_128bits_update(st, des->kets, d * m * sizeof(double complex));
    else
        (void)XXH3_128bits_update(st, des->elems, d * d * m * sizeof(double complex));
    if (des->background) /* absent from designs without one: their ids are unchanged */
        (void)XXH3_128bits_update(st, des->background, m * sizeof(double));
    if (des->mix_base) { /* the structure changes the rounding, so it is part of the id */
        uint64_t mh[3] = {0x6d6978 /* "mix" */, des->mix_base->kind, des->mix_base->group_len};

        (void)XXH3_128bits_update(st, mh, sizeof(mh));
        (void)XXH3_128bits_update(st, des->mix, m * des->mix_base->group_len * sizeof(double));
    }
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    (void)snprintf(des->id, sizeof(des->id), "custom-%016llx%016llx", (unsigned long long)h.high64,
                   (unsigned long long)h.low64);
}

bool qt_design_custom_fits(size_t d, size_t m)
{
    return d <= CUSTOM_MAX_DIM && m <= QT_DESIGN_MAX_OUTCOMES &&
           m * d * d <= QT_DESIGN_CUSTOM_MAX_MD2;
}

int qt_design_new_custom(const struct qt_custom_spec *spec, struct qt_design **ret_des,
                         struct qt_diag *reterr)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    size_t d = spec->d, m = spec->m;
    int r;

    if (d < 2 || d > CUSTOM_MAX_DIM)
        return qt_diag_set(reterr, QT_EDIM, 0, 0, "custom designs need 2 <= dim <= %d, got %zu",
                           CUSTOM_MAX_DIM, d);
    if (!spec->kets == !spec->elems)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0,
                           "a design gives exactly one of 'vectors' and 'elements'");
    if (m < d * d)
        return qt_diag_set(reterr, QT_ENOTIC, 0, 0,
                           "%zu elements cannot be informationally complete in dimension %zu "
                           "(need at least d^2 = %zu)",
                           m, d, d * d);
    if (!qt_design_custom_fits(d, m))
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                           "custom design with %zu elements at d = %zu "
                           "is too large",
                           m, d);
    des = design_alloc(QT_DESIGN_CUSTOM, d, m);
    if (!des)
        return -ENOMEM;
    r = custom_fill(des, spec, &ws, reterr);
    if (r >= 0)
        r = custom_groups(des, spec, reterr);
    if (r >= 0)
        r = custom_background(des, spec, reterr);
    if (r >= 0)
        r = finish(des, &ws);
    if (r >= 0) {
        size_t ic = 0; /* singular values above 1e-10 sigma_max, the condition-number rule */

        for (size_t i = 0; i < QT_MIN(m, d * d); i++)
            ic += des->sv[i] > 1e-10 * des->sv[0];
        if (ic < d * d)
            r = qt_diag_set(reterr, QT_ENOTIC, 0, 0,
                            "the measurement map has rank %zu, need d^2 = %zu: the design is not "
                            "informationally complete",
                            ic, d * d);
    }
    if (r >= 0)
        r = custom_mix(des, spec, reterr); /* after finish: the dense parts come from elements */
    if (r >= 0)
        custom_id(des);
    qt_ws_done(&ws);
    if (r < 0) {
        qt_design_free(des);
        return r;
    }
    *ret_des = des;
    return 0;
}

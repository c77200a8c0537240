/* The measurement map of a design, its adjoint and its minimum-norm least-squares inverse,
 * dispatched on the design's structure: closed forms for nopovm, qubit-by-qubit kernels for
 * pauli, blocked GEMMs over the kets for rank-1 designs, dense GEMV/GEMM otherwise. */
#include <errno.h>
#include <string.h>

#include "qt_design.h"
#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_pauli.h"

/* Columns of kets processed per GEMM, bounding scratch to d x KET_BLOCK. */
#define KET_BLOCK 512

/* Outcome index of the pair (i, j), i < j, in the nopovm order: d + 2 * rank of the pair. */
static size_t nopovm_pair(size_t d, size_t i, size_t j)
{
    return d + 2 * (i * (2 * d - i - 1) / 2 + (j - i - 1));
}

static void nopovm_forward(size_t d, const double complex *rho, double *q)
{
    for (size_t i = 0; i < d; i++)
        q[i] = creal(rho[i + d * i]);
    for (size_t i = 0; i + 1 < d; i++)
        for (size_t j = i + 1; j < d; j++) {
            size_t a = nopovm_pair(d, i, j);
            double diag = 0.5 * (creal(rho[i + d * i]) + creal(rho[j + d * j]));
            double complex z = rho[i + d * j];

            q[a] = diag + creal(z);
            q[a + 1] = diag + cimag(z);
        }
}

static void nopovm_adjoint(size_t d, const double *w, double complex *out)
{
    memset(out, 0, d * d * sizeof(*out));
    for (size_t i = 0; i < d; i++)
        out[i + d * i] = w[i];
    for (size_t i = 0; i + 1 < d; i++)
        for (size_t j = i + 1; j < d; j++) {
            size_t a = nopovm_pair(d, i, j);
            double half = 0.5 * (w[a] + w[a + 1]);
            double complex z = 0.5 * w[a] + 0.5 * I * w[a + 1];

            out[i + d * i] += half;
            out[j + d * j] += half;
            out[i + d * j] = z;
            out[j + d * i] = conj(z);
        }
}

/* The nopovm map is square and invertible; its inverse in closed form. */
static void nopovm_inverse(size_t d, const double *f, double complex *rho)
{
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] = f[i];
    for (size_t i = 0; i + 1 < d; i++)
        for (size_t j = i + 1; j < d; j++) {
            size_t a = nopovm_pair(d, i, j);
            double diag = 0.5 * (f[i] + f[j]);
            double complex z = (f[a] - diag) + I * (f[a + 1] - diag);

            rho[i + d * j] = z;
            rho[j + d * i] = conj(z);
        }
}

int qt_kets_forward(size_t d, size_t m, const double complex *kets, struct qt_ws *ws,
                    const double complex *rho, double *q)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *W = qt_ws_alloc_n(ws, d * QT_MIN(m, KET_BLOCK), sizeof(*W));

    if (!W)
        return -ENOMEM;
    for (size_t a0 = 0; a0 < m; a0 += KET_BLOCK) {
        size_t nb = QT_MIN(KET_BLOCK, m - a0);
        const double complex *K = kets + d * a0;

        qt_zgemm('N', 'N', d, nb, d, 1.0, rho, d, K, d, 0.0, W, d);
        for (size_t b = 0; b < nb; b++) {
            double acc = 0.0;

            for (size_t i = 0; i < d; i++)
                acc += creal(conj(K[i + d * b]) * W[i + d * b]);
            q[a0 + b] = acc;
        }
    }
    qt_ws_release(ws, mark);
    return 0;
}

int qt_kets_adjoint(size_t d, size_t m, const double complex *kets, struct qt_ws *ws,
                    const double *w, double complex *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *S = qt_ws_alloc_n(ws, d * QT_MIN(m, KET_BLOCK), sizeof(*S));

    if (!S)
        return -ENOMEM;
    for (size_t a0 = 0; a0 < m; a0 += KET_BLOCK) {
        size_t nb = QT_MIN(KET_BLOCK, m - a0);
        const double complex *K = kets + d * a0;

        for (size_t b = 0; b < nb; b++)
            for (size_t i = 0; i < d; i++)
                S[i + d * b] = w[a0 + b] * K[i + d * b];
        qt_zgemm('N', 'C', d, d, nb, 1.0, S, d, K, d, a0 == 0 ? 0.0 : 1.0, out, d);
    }
    /* Exact Hermitian symmetry: the two triangles come from different rounding paths. */
    qt_mat_hermitise(d, out, out);
    qt_ws_release(ws, mark);
    return 0;
}

/* Designs with a mixing structure (qt_design.mix_base): the base map, then q = M q_base within
 * each base group (forward), or w_base = M^T w (adjoint), then the base adjoint. */
static int mixed_forward(const struct qt_design *des, struct qt_ws *ws, const double complex *rho,
                         double *q)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    const struct qt_design *b = des->mix_base;
    size_t k = b->group_len, m = des->m;
    double *qb = qt_ws_alloc_n(ws, m, sizeof(double));
    int r = qb ? qt_design_forward(b, ws, rho, qb) : -ENOMEM;

    for (size_t g = 0; r >= 0 && g < m / k; g++) {
        const double *M = des->mix + g * k * k, *x = qb + g * k;

        for (size_t a = 0; a < k; a++) {
            double acc = 0.0;

            for (size_t c = 0; c < k; c++)
                acc += M[a + k * c] * x[c];
            q[g * k + a] = acc;
        }
    }
    qt_ws_release(ws, mark);
    return r;
}

static int mixed_adjoint(const struct qt_design *des, struct qt_ws *ws, const double *w,
                         double complex *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    const struct qt_design *b = des->mix_base;
    size_t k = b->group_len, m = des->m;
    double *wb = qt_ws_alloc_n(ws, m, sizeof(double));
    int r = wb ? 0 : -ENOMEM;

    for (size_t g = 0; r >= 0 && g < m / k; g++) {
        const double *M = des->mix + g * k * k, *x = w + g * k;

        for (size_t c = 0; c < k; c++) {
            double acc = 0.0;

            for (size_t a = 0; a < k; a++)
                acc += M[a + k * c] * x[a];
            wb[g * k + c] = acc;
        }
    }
    if (r >= 0)
        r = qt_design_adjoint(b, ws, wb, out);
    qt_ws_release(ws, mark);
    return r;
}

int qt_design_forward(const struct qt_design *des, struct qt_ws *ws, const double complex *rho,
                      double *q)
{
    if (des->mix_base)
        return mixed_forward(des, ws, rho, q);
    if (des->kind == QT_DESIGN_NOPOVM) {
        nopovm_forward(des->d, rho, q);
        return 0;
    }
    if (des->kind == QT_DESIGN_PAULI)
        return qt_pauli_forward(des->n_qubits, ws, rho, q);
    if (des->kets)
        return qt_kets_forward(des->d, des->m, des->kets, ws, rho, q);
    return qt_elems_forward(des->d, des->m, des->elems, ws, rho, q);
}

int qt_elems_forward(size_t d, size_t m, const double complex *elems, struct qt_ws *ws,
                     const double complex *rho, double *q)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *z = qt_ws_alloc_n(ws, m, sizeof(*z));

    if (!z)
        return -ENOMEM;
    /* q_a = <vec E_a, vec rho>, real for Hermitian E_a and rho. */
    qt_zgemv('C', d * d, m, 1.0, elems, d * d, rho, 0.0, z);
    for (size_t a = 0; a < m; a++)
        q[a] = creal(z[a]);
    qt_ws_release(ws, mark);
    return 0;
}

void qt_elems_adjoint(size_t d, size_t m, const double complex *elems, const double *w,
                      double complex *out)
{
    /* The complex d^2 x m element matrix is a real 2d^2 x m matrix with re/im interleaved. */
    qt_dgemm('N', 'N', 2 * d * d, 1, m, 1.0, (const double *)elems, 2 * d * d, w, m, 0.0,
             (double *)out, 2 * d * d);
}

int qt_design_adjoint(const struct qt_design *des, struct qt_ws *ws, const double *w,
                      double complex *out)
{
    if (des->mix_base)
        return mixed_adjoint(des, ws, w, out);
    if (des->kind == QT_DESIGN_NOPOVM) {
        nopovm_adjoint(des->d, w, out);
        return 0;
    }
    if (des->kind == QT_DESIGN_PAULI)
        return qt_pauli_adjoint(des->n_qubits, ws, w, out);
    if (des->kets)
        return qt_kets_adjoint(des->d, des->m, des->kets, ws, w, out);
    qt_elems_adjoint(des->d, des->m, des->elems, w, out);
    return 0;
}

int qt_design_pinv_apply(const struct qt_design *des, struct qt_ws *ws, const double *f,
                         double complex *rho)
{
    size_t d = des->d, dd = d * d;
    int r;

    switch (des->pinv_kind) {
    case QT_PINV_NOPOVM:
        nopovm_inverse(d, f, rho);
        return 0;
    case QT_PINV_PAULI:
        return qt_pauli_dual(des->n_qubits, ws, f, rho);
    case QT_PINV_FRAME: {
        double tot = 0.0;

        r = qt_design_adjoint(des, ws, f, rho);
        if (r < 0)
            return r;
        for (size_t a = 0; a < des->m; a++)
            tot += f[a];
        for (size_t i = 0; i < d; i++)
            rho[i + d * i] -= tot / ((double)d + 1.0);
        return 0;
    }
    case QT_PINV_DENSE:
    default:
        qt_dgemm('N', 'N', 2 * dd, 1, des->m, 1.0, des->pinv, 2 * dd, f, des->m, 0.0, (double *)rho,
                 2 * dd);
        return 0;
    }
}

/* Unpacks n lower triangles (packed column by column) into full Hermitian matrices. */
static void unpack_lower(size_t d, size_t n, const double complex *L, double complex *rho)
{
    size_t nl = d * (d + 1) / 2;

    for (size_t s = 0; s < n; s++) {
        const double complex *src = L + nl * s;
        double complex *dst = rho + d * d * s;

        for (size_t j = 0, t = 0; j < d; j++)
            for (size_t i = j; i < d; i++, t++) {
                dst[i + d * j] = i == j ? creal(src[t]) : src[t];
                dst[j + d * i] = conj(dst[i + d * j]);
            }
    }
}

int qt_design_pinv_apply_batch(const struct qt_design *des, struct qt_ws *ws, size_t n,
                               const double *F, size_t ldf, double complex *rho)
{
    size_t d = des->d, dd = d * d, nl = d * (d + 1) / 2;

    if (des->pinv_kind == QT_PINV_PAULI)
        return qt_pauli_dual_batch(des->n_qubits, ws, n, F, ldf, rho);
    if (des->pinv && des->pinv_cols == des->m && des->pinv_lower) {
        struct qt_ws_mark mark = qt_ws_mark(ws);
        double complex *L = qt_ws_alloc_n(ws, nl * (n ? n : 1), sizeof(*L));

        if (!L)
            return -ENOMEM;
        qt_dgemm('N', 'N', 2 * nl, n, des->m, 1.0, des->pinv, 2 * nl, F, ldf, 0.0, (double *)L,
                 2 * nl);
        unpack_lower(d, n, L, rho);
        qt_ws_release(ws, mark);
        return 0;
    }
    if (des->pinv && des->pinv_cols == des->m) {
        qt_dgemm('N', 'N', 2 * dd, n, des->m, 1.0, des->pinv, 2 * dd, F, ldf, 0.0, (double *)rho,
                 2 * dd);
        return 0;
    }
    for (size_t s = 0; s < n; s++) {
        int r = qt_design_pinv_apply(des, ws, F + ldf * s, rho + dd * s);

        if (r < 0)
            return r;
    }
    return 0;
}

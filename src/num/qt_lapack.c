/* BLAS/LAPACK wrappers: size checks, workspace handling, and the OpenBLAS core-type advice.
 * No other file includes <lapacke.h> or <cblas.h>. */
#include "qt_lapack.h"

#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <lapacke.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "base/qt_err.h"

static int fits(size_t n)
{
    return n <= (size_t)INT_MAX;
}

static CBLAS_TRANSPOSE cblas_op(char t)
{
    switch (t) {
    case 'T':
        return CblasTrans;
    case 'C':
        return CblasConjTrans;
    default:
        return CblasNoTrans;
    }
}

void qt_zgemm(char ta, char tb, size_t m, size_t n, size_t k, double complex alpha,
              const double complex *A, size_t lda, const double complex *B, size_t ldb,
              double complex beta, double complex *C, size_t ldc)
{
    assert(fits(m) && fits(n) && fits(k) && fits(lda) && fits(ldb) && fits(ldc));
    if (m == 0 || n == 0)
        return;
    cblas_zgemm(CblasColMajor, cblas_op(ta), cblas_op(tb), (int)m, (int)n, (int)k, &alpha, A,
                (int)(lda ? lda : 1), B, (int)(ldb ? ldb : 1), &beta, C, (int)ldc);
}

void qt_dgemm(char ta, char tb, size_t m, size_t n, size_t k, double alpha, const double *A,
              size_t lda, const double *B, size_t ldb, double beta, double *C, size_t ldc)
{
    assert(fits(m) && fits(n) && fits(k) && fits(lda) && fits(ldb) && fits(ldc));
    if (m == 0 || n == 0)
        return;
    cblas_dgemm(CblasColMajor, cblas_op(ta), cblas_op(tb), (int)m, (int)n, (int)k, alpha, A,
                (int)(lda ? lda : 1), B, (int)(ldb ? ldb : 1), beta, C, (int)ldc);
}

void qt_zgemv(char ta, size_t m, size_t n, double complex alpha, const double complex *A,
              size_t lda, const double complex *x, double complex beta, double complex *y)
{
    assert(fits(m) && fits(n) && fits(lda));
    if (m == 0 || n == 0)
        return;
    cblas_zgemv(CblasColMajor, cblas_op(ta), (int)m, (int)n, &alpha, A, (int)lda, x, 1, &beta, y,
                1);
}

int qt_zheev(struct qt_ws *ws, bool vectors, size_t n, double complex *A, size_t lda, double *w)
{
    struct qt_ws_mark mark;
    lapack_complex_double qwork;
    double qrwork;
    lapack_int qiwork, info;
    char jobz = vectors ? 'V' : 'N';
    int r = 0;

    if (!fits(n) || !fits(lda) || n > 46340)
        return QT_ETOOBIG;
    if (n == 0)
        return 0;
    info = LAPACKE_zheevd_work(LAPACK_COL_MAJOR, jobz, 'L', (lapack_int)n, A, (lapack_int)lda, w,
                               &qwork, -1, &qrwork, -1, &qiwork, -1);
    if (info != 0)
        return QT_ELAPACK;
    lapack_int lwork = (lapack_int)creal(qwork), lrwork = (lapack_int)qrwork;
    mark = qt_ws_mark(ws);
    lapack_complex_double *work = qt_ws_alloc_n(ws, (size_t)lwork, sizeof(*work));
    double *rwork = qt_ws_alloc_n(ws, (size_t)lrwork, sizeof(*rwork));
    lapack_int *iwork = qt_ws_alloc_n(ws, (size_t)qiwork, sizeof(*iwork));
    if (!work || !rwork || !iwork) {
        r = -ENOMEM;
        goto out;
    }
    info = LAPACKE_zheevd_work(LAPACK_COL_MAJOR, jobz, 'L', (lapack_int)n, A, (lapack_int)lda, w,
                               work, lwork, rwork, lrwork, iwork, qiwork);
    if (info != 0)
        r = QT_ELAPACK;
out:
    qt_ws_release(ws, mark);
    return r;
}

/* ZGESDD on arena copies: its bidiagonalisation reaches OpenBLAS 0.3.21's zgemv_n kernel, which
 * reads outside the arrays it is handed (OpenBLAS #4013); the arena's guard bytes absorb that.
 * The copies cost O(mn), nothing next to the factorisation. */
static int zgesdd(struct qt_ws *ws, char jobz, size_t m, size_t n, double complex *A, size_t lda,
                  double *s, double complex *U, size_t ldu, double complex *VH, size_t ldvh)
{
    struct qt_ws_mark mark;
    lapack_complex_double qwork;
    lapack_int info;
    size_t mn = m < n ? m : n, mx = m < n ? n : m;
    size_t lrwork;
    int r = 0;

    if (!fits(m) || !fits(n) || !fits(lda) || !fits(ldu) || !fits(ldvh))
        return QT_ETOOBIG;
    if (mn == 0)
        return 0;
    /* LAPACK 3.11 documents these minimal real workspace sizes for ZGESDD. */
    if (jobz == 'N')
        lrwork = 7 * mn;
    else
        lrwork = mn * (5 * mn + 7) > 2 * mx * mn + 2 * mn * mn + mn
                     ? mn * (5 * mn + 7)
                     : 2 * mx * mn + 2 * mn * mn + mn;
    mark = qt_ws_mark(ws);
    double *rwork = qt_ws_alloc_n(ws, lrwork, sizeof(double));
    lapack_int *iwork = qt_ws_alloc_n(ws, 8 * mn, sizeof(lapack_int));
    double complex *a = qt_ws_alloc_n(ws, m * n, sizeof(*a));
    double complex *u = jobz == 'N' ? NULL : qt_ws_alloc_n(ws, m * mn, sizeof(*u));
    double complex *vh = jobz == 'N' ? NULL : qt_ws_alloc_n(ws, mn * n, sizeof(*vh));
    double *sv = qt_ws_alloc_n(ws, mn, sizeof(double));
    if (!rwork || !iwork || !a || !sv || (jobz != 'N' && (!u || !vh))) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t j = 0; j < n; j++)
        memcpy(a + m * j, A + lda * j, m * sizeof(*a));
    info =
        LAPACKE_zgesdd_work(LAPACK_COL_MAJOR, jobz, (lapack_int)m, (lapack_int)n, a, (lapack_int)m,
                            sv, u, (lapack_int)m, vh, (lapack_int)mn, &qwork, -1, rwork, iwork);
    if (info != 0) {
        r = QT_ELAPACK;
        goto out;
    }
    lapack_int lwork = (lapack_int)creal(qwork);
    lapack_complex_double *work = qt_ws_alloc_n(ws, (size_t)lwork, sizeof(*work));
    if (!work) {
        r = -ENOMEM;
        goto out;
    }
    info =
        LAPACKE_zgesdd_work(LAPACK_COL_MAJOR, jobz, (lapack_int)m, (lapack_int)n, a, (lapack_int)m,
                            sv, u, (lapack_int)m, vh, (lapack_int)mn, work, lwork, rwork, iwork);
    if (info != 0) {
        r = QT_ELAPACK;
        goto out;
    }
    memcpy(s, sv, mn * sizeof(double));
    if (jobz != 'N') {
        for (size_t j = 0; j < mn; j++)
            memcpy(U + ldu * j, u + m * j, m * sizeof(*u));
        for (size_t j = 0; j < n; j++)
            memcpy(VH + ldvh * j, vh + mn * j, mn * sizeof(*vh));
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

int qt_zsvd_values(struct qt_ws *ws, size_t m, size_t n, double complex *A, size_t lda, double *s)
{
    return zgesdd(ws, 'N', m, n, A, lda, s, NULL, 1, NULL, 1);
}

int qt_zsvd(struct qt_ws *ws, size_t m, size_t n, double complex *A, size_t lda, double *s,
            double complex *U, size_t ldu, double complex *VH, size_t ldvh)
{
    return zgesdd(ws, 'S', m, n, A, lda, s, U, ldu, VH, ldvh);
}

int qt_zpotrf(size_t n, double complex *A, size_t lda)
{
    lapack_int info;

    if (!fits(n) || !fits(lda))
        return QT_ETOOBIG;
    if (n == 0)
        return 0;
    info = LAPACKE_zpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, A, (lapack_int)lda);
    return info == 0 ? 0 : 1;
}

int qt_dposv(size_t n, size_t nrhs, double *A, size_t lda, double *B, size_t ldb)
{
    lapack_int info;

    if (!fits(n) || !fits(nrhs) || !fits(lda) || !fits(ldb))
        return QT_ETOOBIG;
    if (n == 0)
        return 0;
    info = LAPACKE_dposv_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, (lapack_int)nrhs, A,
                              (lapack_int)lda, B, (lapack_int)ldb);
    return info == 0 ? 0 : 1;
}

const char *qt_blas_corename(void)
{
    const char *name = openblas_get_corename();

    return name ? name : "unknown";
}

/* Kernel families ranked by the instruction set they need. */
enum isa_rank { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

static enum isa_rank cpu_rank(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* libgcc's detection also checks that the OS saves the wider registers (XGETBV), and
     * valgrind reports no AVX-512, so this never advises kernels the process cannot run. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ISA_AVX2;
#endif
    return ISA_GENERIC;
}

static enum isa_rank core_rank(const char *core)
{
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2[] = {"Haswell", "Zen"};

    for (size_t i = 0; i < QT_ARRAY_SIZE(avx512); i++)
        if (strcasecmp(core, avx512[i]) == 0)
            return ISA_AVX512;
    for (size_t i = 0; i < QT_ARRAY_SIZE(avx2); i++)
        if (strcasecmp(core, avx2[i]) == 0)
            return ISA_AVX2;
    return ISA_GENERIC;
}

const char *qt_blas_coretype_advice(void)
{
    enum isa_rank cpu = cpu_rank();

    if (cpu <= core_rank(qt_blas_corename()))
        return NULL;
    return cpu == ISA_AVX512 ? "SkylakeX" : "Haswell";
}

void qt_blas_single_thread(void)
{
    openblas_set_num_threads(1);
}

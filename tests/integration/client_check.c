/* client_check: exercises libqtomo-client's public API against a running qtomod, using only the
 * installed header <qtomo/client.h> and linked against the shared library, as a user would.
 *
 *   client_check SOCKET DATA_DIR EXPECT_FILE MAX_BATCH
 *
 * With a sixth argument, only that check runs: target-refused (a refused qtomo_job_set_target
 * leaves the job unchanged) or design-after-target (a target that no longer fits the job's
 * dimension is refused, never read past its end).
 *
 * SOCKET: the daemon (started by tests/integration/test_qtomoctl.py with --max-batch MAX_BATCH,
 * 2 workers, as the test user); DATA_DIR: client/examples/data; EXPECT_FILE: the records of
 * column 1 of bell_nopovm_d4.csv as `qtomoctl reconstruct --local --json --method linear,mle`
 * writes them, reduced by the Python side to one line per method: "method purity" then the 16
 * real and 16 imaginary parts of rho, row-major, each printed with Python's repr (exact).
 *
 * Every failed check prints "client_check: FAIL <where>: <what>" and the program goes on; the
 * exit status is 1 when any check failed, 2 on a usage or setup error. */
#include <errno.h>
#include <math.h>
#include <qtomo/client.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define D       4
#define M       (D * D)
#define NCOL    4 /* columns of bell_nopovm_d4.csv */
#define N_BATCH 3000

static int failures;

static void fail(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(const char *where, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "client_check: FAIL %s: ", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

#define CHECK(cond, where, ...)       \
    do {                              \
        if (!(cond))                  \
            fail(where, __VA_ARGS__); \
    } while (0)

/* A call that must succeed: reports the library's code and message otherwise. */
#define CALL_OK(expr, where, e)                                                                 \
    do {                                                                                        \
        int r_ = (expr);                                                                        \
        if (r_ < 0)                                                                             \
            fail(where, "%s returned %d (%s): %s", #expr, r_, qtomo_strerror(r_), (e).message); \
    } while (0)

static void clear_err(struct qtomo_error *e)
{
    memset(e, 0, sizeof(*e));
    e->code = 12345;
    e->retry_after_ms = 12345;
}

/* ---- input ---- */

/* Reads the M x NCOL example (rows = outcomes, columns = samples) column-major. */
static int read_example(const char *dir, double *v)
{
    char path[4096];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/bell_nopovm_d4.csv", dir);
    f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "client_check: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int r = 0; r < M; r++)
        for (int c = 0; c < NCOL; c++)
            if (fscanf(f, c ? " ,%lf" : " %lf", &v[r + M * c]) != 1) {
                fprintf(stderr, "client_check: %s: cannot read row %d column %d\n", path, r + 1,
                        c + 1);
                fclose(f);
                return -1;
            }
    fclose(f);
    return 0;
}

struct expect {
    char method[16];
    double purity, re[M], im[M]; /* row-major */
};

static int read_expect(const char *path, struct expect *ex, int n)
{
    FILE *f = fopen(path, "r");

    if (!f) {
        fprintf(stderr, "client_check: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (int k = 0; k < n; k++) {
        int ok = fscanf(f, " %15s %lf", ex[k].method, &ex[k].purity) == 2;

        for (int i = 0; ok && i < M; i++)
            ok = fscanf(f, " %lf", &ex[k].re[i]) == 1;
        for (int i = 0; ok && i < M; i++)
            ok = fscanf(f, " %lf", &ex[k].im[i]) == 1;
        if (!ok) {
            fprintf(stderr, "client_check: %s: bad line %d\n", path, k + 1);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

/* ---- checks ---- */

/* rho: Hermitian, trace 1, purity Tr rho^2 in (0, 1], all within 1e-12. */
static void check_density(const char *where, const double complex *rho, size_t d, double purity)
{
    double complex tr = 0;
    double p = 0;

    for (size_t i = 0; i < d; i++) {
        tr += rho[i + d * i];
        for (size_t j = 0; j < d; j++) {
            double complex a = rho[i + d * j], b = rho[j + d * i];

            CHECK(cabs(a - conj(b)) <= 1e-12, where, "rho not Hermitian at (%zu,%zu)", i, j);
            p += creal(a * conj(a));
        }
    }
    CHECK(fabs(creal(tr) - 1) <= 1e-12 && fabs(cimag(tr)) <= 1e-12, where,
          "trace %.17g%+.17gi, not 1", creal(tr), cimag(tr));
    CHECK(purity > 0 && purity <= 1 + 1e-12, where, "purity %.17g not in (0, 1]", purity);
    CHECK(fabs(p - purity) <= 1e-12, where, "Tr rho^2 = %.17g but purity = %.17g", p, purity);
}

static void check_connect_errors(const char *sock)
{
    struct qtomo_error e;
    qtomo_conn *c = (qtomo_conn *)&e; /* must be set to NULL on failure */
    char buf[4096];
    int r;

    clear_err(&e);
    r = qtomo_connect(&c, "/nonexistent-qtomo-dir/qtomod.sock", "client_check", 2000, &e);
    CHECK(r == -ENOENT, "connect(missing dir)", "returned %d, expected -ENOENT (%d)", r, -ENOENT);
    CHECK(c == NULL, "connect(missing dir)", "*ret not set to NULL");
    CHECK(e.code == -ENOENT && e.message[0], "connect(missing dir)", "error code %d, message '%s'",
          e.code, e.message);
    CHECK(strstr(e.message, "/nonexistent-qtomo-dir/qtomod.sock") != NULL, "connect(missing dir)",
          "message does not name the path: '%s'", e.message);

    /* A missing socket in an existing directory: also -ENOENT. */
    (void)snprintf(buf, sizeof(buf), "%s.missing", sock);
    r = qtomo_connect(&c, buf, NULL, 2000, NULL); /* err may be NULL */
    CHECK(r == -ENOENT, "connect(missing socket)", "returned %d, expected -ENOENT", r);

    /* A path longer than sun_path. */
    memset(buf, 'x', 200);
    buf[0] = '/';
    buf[200] = '\0';
    clear_err(&e);
    r = qtomo_connect(&c, buf, NULL, 2000, &e);
    CHECK(r == -ENAMETOOLONG, "connect(long path)", "returned %d, expected -ENAMETOOLONG", r);

    /* The default path: $QTOMO_SOCKET first. */
    if (setenv("QTOMO_SOCKET", sock, 1) != 0) {
        fail("setenv", "%s", strerror(errno));
        return;
    }
    r = qtomo_default_socket(buf, sizeof(buf));
    CHECK(r == 0 && strcmp(buf, sock) == 0, "default_socket", "returned %d, '%s'", r, buf);
    r = qtomo_default_socket(buf, 4);
    CHECK(r == -ENAMETOOLONG, "default_socket(short buffer)", "returned %d", r);
    clear_err(&e);
    r = qtomo_connect(&c, NULL, NULL, 10000, &e);
    CHECK(r == 0, "connect(NULL = $QTOMO_SOCKET)", "returned %d: %s", r, e.message);
    qtomo_close(c);
    (void)unsetenv("QTOMO_SOCKET");
}

static void check_job_options(void)
{
    struct qtomo_error e;
    qtomo_job *j = qtomo_job_new();
    int r;

    if (!j) {
        fail("job_new", "NULL");
        return;
    }
    clear_err(&e);
    r = qtomo_job_set_option(j, "no-such-option", 1, &e);
    CHECK(r == -EINVAL, "set_option(unknown)", "returned %d", r);
    CHECK(e.code == -EINVAL && strstr(e.message, "no-such-option"), "set_option(unknown)",
          "code %d, message '%s' does not name the option", e.code, e.message);
    clear_err(&e);
    r = qtomo_job_set_option(j, "tolerance", 2.0, &e);
    CHECK(r == -EINVAL, "set_option(tolerance 2)", "returned %d", r);
    CHECK(strstr(e.message, "tolerance") && strstr(e.message, "1]"), "set_option(tolerance 2)",
          "message '%s' does not name the option and its bounds", e.message);
    clear_err(&e);
    r = qtomo_job_set_option(j, "tolerance", 0.0, &e); /* the bound is open */
    CHECK(r == -EINVAL, "set_option(tolerance 0)", "returned %d", r);
    r = qtomo_job_set_option(j, "tolerance", NAN, &e);
    CHECK(r == -EINVAL, "set_option(tolerance NaN)", "returned %d", r);
    clear_err(&e);
    r = qtomo_job_set_option(j, "mle-max-iterations", 1.5, &e);
    CHECK(r == -EINVAL && strstr(e.message, "integer"), "set_option(mle-max-iterations 1.5)",
          "returned %d, message '%s'", r, e.message);
    clear_err(&e);
    r = qtomo_job_set_option(j, "rhor-diluted", 0.5, &e);
    CHECK(r == -EINVAL && strstr(e.message, "rhor-diluted"), "set_option(flag 0.5)",
          "returned %d, message '%s'", r, e.message);
    clear_err(&e);
    r = qtomo_job_set_option(j, "physical", 2, &e);
    CHECK(r == -EINVAL && strstr(e.message, "physical"), "set_option(physical 2)",
          "returned %d, message '%s'", r, e.message);
    r = qtomo_job_set_option(j, NULL, 1, NULL);
    CHECK(r == -EINVAL, "set_option(NULL name)", "returned %d", r);
    /* Valid values, with and without an error struct. */
    CALL_OK(qtomo_job_set_option(j, "tolerance", 1e-9, &e), "set_option(tolerance)", e);
    CALL_OK(qtomo_job_set_option(j, "mle-max-iterations", 300, NULL), "set_option(mle-max)", e);
    CALL_OK(qtomo_job_set_option(j, "rhor-warm-start", 1, &e), "set_option(flag)", e);
    CALL_OK(qtomo_job_set_option(j, "physical", 1, &e), "set_option(physical)", e);
    CALL_OK(qtomo_job_set_option(j, "bell", 1, &e), "set_option(bell)", e);

    /* Designs and methods. */
    r = qtomo_job_set_design(j, "bogus", 0);
    CHECK(r == -EINVAL, "set_design(bogus)", "returned %d", r);
    r = qtomo_job_set_design(j, "custom", 2);
    CHECK(r == -EINVAL, "set_design(custom)", "returned %d (custom needs set_custom)", r);
    CHECK(qtomo_job_set_design(j, "mub", 3) == 0, "set_design(mub 3)", "failed");
    CHECK(qtomo_job_set_design(j, NULL, 0) == 0, "set_design(NULL)", "failed");
    CHECK(qtomo_job_set_methods(j, "linear,bogus") == -EINVAL, "set_methods(bogus)", "accepted");
    CHECK(qtomo_job_set_methods(j, "") == -EINVAL, "set_methods('')", "accepted");
    CHECK(qtomo_job_set_methods(j, "linear,,mle") == -EINVAL, "set_methods(',,')", "accepted");
    CHECK(qtomo_job_set_methods(j, NULL) == -EINVAL, "set_methods(NULL)", "accepted");
    CHECK(qtomo_job_set_methods(j, "rhor,linear") == 0, "set_methods(rhor,linear)", "refused");
    CHECK(qtomo_job_set_custom(j, NULL, 2) == -EINVAL, "set_custom(NULL)", "accepted");
    qtomo_job_free(j);
    qtomo_job_free(NULL);
}

static void check_reconstruct(qtomo_conn *c, const double *v, const struct expect *ex)
{
    static const char *const methods[] = {"linear", "mle"};
    struct qtomo_error e;
    qtomo_job *j = qtomo_job_new();
    qtomo_sample *s = NULL;
    double neg[M], x;
    int r;

    if (!j) {
        fail("job_new", "NULL");
        return;
    }
    /* Defaults: design inferred (16 values = nopovm d = 4), methods linear,mle. */
    clear_err(&e);
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    CHECK(r == 0 && s, "reconstruct", "returned %d: %s", r, e.message);
    if (r == 0 && s) {
        CHECK(qtomo_sample_index(s) == 0, "reconstruct", "index %llu",
              (unsigned long long)qtomo_sample_index(s));
        CHECK(qtomo_sample_count(s) == 2, "reconstruct", "%zu results, expected 2",
              qtomo_sample_count(s));
        for (size_t i = 0; i < qtomo_sample_count(s) && i < 2; i++) {
            const char *msg = NULL, *m = qtomo_sample_method(s, i);
            const double complex *rho = qtomo_sample_rho(s, i);
            double purity = -1, q, cm;
            size_t n = 0;

            CHECK(m && strcmp(m, methods[i]) == 0, "reconstruct", "method %zu is '%s'", i,
                  m ? m : "(null)");
            CHECK(qtomo_sample_status(s, i, &msg) == 0, "reconstruct", "%s failed: %s", methods[i],
                  msg ? msg : "");
            CHECK(qtomo_sample_dim(s, i) == D, "reconstruct", "dim %zu", qtomo_sample_dim(s, i));
            CHECK(qtomo_sample_metric(s, i, "purity", &purity) == 0, "reconstruct", "no purity");
            if (!rho) {
                fail("reconstruct", "%s: no rho", methods[i]);
                continue;
            }
            check_density(methods[i], rho, D, purity);
            /* Bit for bit what `qtomoctl reconstruct --local` computes for this column. */
            CHECK(strcmp(ex[i].method, methods[i]) == 0, "expect file", "line %zu is %s", i + 1,
                  ex[i].method);
            CHECK(purity == ex[i].purity, "reconstruct vs --local", "%s purity %.17g != %.17g",
                  methods[i], purity, ex[i].purity);
            for (int a = 0; a < D; a++)
                for (int b = 0; b < D; b++) {
                    double complex z = rho[a + D * b]; /* column-major */

                    CHECK(creal(z) == ex[i].re[D * a + b] && cimag(z) == ex[i].im[D * a + b],
                          "reconstruct vs --local",
                          "%s rho[%d][%d] = %.17g%+.17gi, --local %.17g%+.17gi", methods[i], a, b,
                          creal(z), cimag(z), ex[i].re[D * a + b], ex[i].im[D * a + b]);
                }
            const double *ev = qtomo_sample_vector(s, i, "eigenvalues", &n);
            CHECK(ev && n == D, "reconstruct", "%s: eigenvalues %p, n %zu", methods[i],
                  (const void *)ev, n);
            if (ev && n == D)
                CHECK(fabs(ev[0] + ev[1] + ev[2] + ev[3] - 1) <= 1e-12 && ev[0] >= ev[3],
                      "reconstruct", "eigenvalues do not sum to 1 descending");
            CHECK(qtomo_sample_metric(s, i, "no-such-metric", &x) == -ENOENT, "reconstruct",
                  "unknown metric found");
            CHECK(qtomo_sample_vector(s, i, "purity", NULL) == NULL, "reconstruct",
                  "purity returned as a vector");
            qtomo_sample_timing(s, &q, &cm);
            CHECK(q >= 0 && cm >= 0, "reconstruct", "timing %g %g", q, cm);
        }
        CHECK(qtomo_sample_metric(s, 1, "converged", &x) == 0 && x == 1.0, "reconstruct",
              "mle not converged");
        CHECK(qtomo_sample_metric(s, 1, "iterations", &x) == 0 && x >= 1, "reconstruct",
              "mle iterations missing");
        CHECK(qtomo_sample_method(s, 2) == NULL && qtomo_sample_rho(s, 2) == NULL &&
                  qtomo_sample_status(s, 2, NULL) == -EINVAL,
              "reconstruct", "result index out of range accepted");
    }
    qtomo_sample_free(s);
    qtomo_sample_free(NULL);

    /* A negative value: linear accepts it (flagged), mle refuses: not a call failure. */
    memcpy(neg, v, sizeof(neg));
    neg[3] = -5;
    s = NULL;
    clear_err(&e);
    r = qtomo_reconstruct(c, j, neg, M, &s, &e);
    CHECK(r == 0 && s, "reconstruct(negative)", "returned %d: %s", r, e.message);
    if (r == 0 && s) {
        const char *msg = NULL;

        CHECK(qtomo_sample_status(s, 0, NULL) == 0, "reconstruct(negative)", "linear failed");
        r = qtomo_sample_status(s, 1, &msg);
        CHECK(r == QTOMO_E_INVALID_SAMPLE, "reconstruct(negative)", "mle status %d", r);
        CHECK(msg && strstr(msg, "negative"), "reconstruct(negative)", "mle message '%s'",
              msg ? msg : "(null)");
        CHECK(qtomo_sample_rho(s, 1) == NULL, "reconstruct(negative)", "rho of a failed result");
        CHECK(qtomo_sample_metric(s, 1, "purity", &x) == -ENOENT, "reconstruct(negative)",
              "purity of a failed result");
    }
    qtomo_sample_free(s);

    /* A target: fidelity appears. |Phi+> = (|00> + |11>)/sqrt2. */
    {
        double complex t[M] = {0};

        t[0] = t[3 + D * 3] = t[0 + D * 3] = t[3] = 0.5;
        CALL_OK(qtomo_job_set_target(j, t, D), "set_target", e);
        s = NULL;
        clear_err(&e);
        r = qtomo_reconstruct(c, j, v, M, &s, &e);
        CHECK(r == 0 && s, "reconstruct(target)", "returned %d: %s", r, e.message);
        if (r == 0 && s)
            CHECK(qtomo_sample_metric(s, 0, "fidelity", &x) == 0 && x > 0.9 && x <= 1,
                  "reconstruct(target)", "fidelity to |Phi+> of Bell state 1: %g", x);
        qtomo_sample_free(s);
    }
    /* --spectral: no "spectral.*" values before, the four after; amplitudes of a unit vector,
     * phases in (-1, 1], eigenvalues descending from the dominant one. */
    s = NULL;
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    CHECK(r == 0 && s && !qtomo_sample_vector(s, 0, "spectral.amplitudes", NULL) &&
              qtomo_sample_metric(s, 0, "spectral.dominant_eigenvalue", &x) == -ENOENT,
          "reconstruct(no spectral)", "spectral values present");
    qtomo_sample_free(s);
    CALL_OK(qtomo_job_set_option(j, "spectral", 1, &e), "set_option(spectral)", e);
    s = NULL;
    clear_err(&e);
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    CHECK(r == 0 && s, "reconstruct(spectral)", "returned %d: %s", r, e.message);
    for (size_t i = 0; r == 0 && s && i < 2; i++) {
        size_t na = 0, np = 0, ne = 0;
        const double *a = qtomo_sample_vector(s, i, "spectral.amplitudes", &na);
        const double *ph = qtomo_sample_vector(s, i, "spectral.phases_pi", &np);
        const double *ev = qtomo_sample_vector(s, i, "spectral.eigenvalues", &ne);
        double dom = -1, sum = 0;

        CHECK(a && ph && ev && na == D && np == D && ne == D, "reconstruct(spectral)",
              "%s: vectors missing", methods[i]);
        CHECK(qtomo_sample_metric(s, i, "spectral.dominant_eigenvalue", &dom) == 0,
              "reconstruct(spectral)", "%s: no dominant eigenvalue", methods[i]);
        if (!a || !ph || !ev || na != D || np != D || ne != D)
            continue;
        for (int k = 0; k < D; k++) {
            sum += a[k] * a[k];
            CHECK(ph[k] > -1 && ph[k] <= 1, "reconstruct(spectral)", "phase %g", ph[k]);
            CHECK(k == 0 || ev[k] <= ev[k - 1], "reconstruct(spectral)", "not descending");
        }
        CHECK(fabs(sum - 1) <= 1e-12 && dom == ev[0] && dom > 0.9, "reconstruct(spectral)",
              "%s: sum |c|^2 = %.17g, dominant %g, eigenvalues[0] %g", methods[i], sum, dom, ev[0]);
    }
    qtomo_sample_free(s);
    qtomo_job_free(j);

    /* Server-side refusals leave the connection usable. */
    j = qtomo_job_new();
    if (!j)
        return;
    {
        double big[42];

        for (int i = 0; i < 42; i++)
            big[i] = 1 + i % 5;
        CHECK(qtomo_job_set_design(j, "mub", 6) == 0, "set_design(mub 6)", "refused locally");
        s = NULL;
        clear_err(&e);
        r = qtomo_reconstruct(c, j, big, 42, &s, &e);
        CHECK(r == QTOMO_E_INVALID_PARAMS && !s, "reconstruct(mub d=6)",
              "returned %d, expected %d (d = 6 is no prime power)", r, QTOMO_E_INVALID_PARAMS);
        CHECK(e.code == r && e.message[0], "reconstruct(mub d=6)", "code %d message '%s'", e.code,
              e.message);
        /* Inference failure: 3 values are no design. */
        CHECK(qtomo_job_set_design(j, NULL, 0) == 0, "set_design(NULL)", "failed");
        clear_err(&e);
        r = qtomo_reconstruct(c, j, big, 3, &s, &e);
        CHECK(r == -EINVAL && e.message[0], "reconstruct(3 values)", "returned %d '%s'", r,
              e.message);
        r = qtomo_reconstruct(c, j, NULL, 0, &s, &e);
        CHECK(r == -EINVAL, "reconstruct(no values)", "returned %d", r);
        /* Still usable. */
        clear_err(&e);
        r = qtomo_reconstruct(c, j, v, M, &s, &e);
        CHECK(r == 0, "reconstruct after refusals", "returned %d: %s", r, e.message);
        qtomo_sample_free(s);
    }
    qtomo_job_free(j);
}

/* ---- submit ---- */

struct batch {
    uint64_t first;
    size_t n;
    unsigned *seen;
    double base_purity[NCOL];
    size_t results, bad_index, bad_value, failed;
    size_t cancel_after; /* 0: never */
    size_t progress_calls, progress_bad;
    uint64_t last_done;
    volatile int *flag; /* set from the progress callback when non-NULL */
};

static int on_result(void *ud, const qtomo_sample *s)
{
    struct batch *b = ud;
    uint64_t idx = qtomo_sample_index(s);
    double p = 0;

    b->results++;
    if (idx < b->first || idx - b->first >= b->n) {
        b->bad_index++;
        return 0;
    }
    b->seen[idx - b->first]++;
    if (qtomo_sample_status(s, 0, NULL) != 0) {
        b->failed++;
    } else if (qtomo_sample_metric(s, 0, "purity", &p) != 0 ||
               fabs(p - b->base_purity[(idx - b->first) % NCOL]) > 1e-12) {
        b->bad_value++;
    }
    return b->cancel_after && b->results >= b->cancel_after;
}

static void on_progress(void *ud, const struct qtomo_progress *p)
{
    struct batch *b = ud;

    b->progress_calls++;
    if (p->total != b->n || p->done > p->total || p->done < b->last_done || p->failed > p->done)
        b->progress_bad++;
    b->last_done = p->done;
    if (b->flag && p->done > 0)
        *b->flag = 1;
}

static void check_submit(qtomo_conn *c, const double *v)
{
    struct qtomo_totals t;
    struct qtomo_error e;
    qtomo_job *j = qtomo_job_new();
    double *vals = malloc(sizeof(double) * M * N_BATCH);
    struct batch b = {.first = 1000, .n = N_BATCH};
    struct qtomo_callbacks cb = {on_result, on_progress, &b, NULL};
    qtomo_sample *s;
    int r;

    b.seen = calloc(N_BATCH, sizeof(unsigned));
    if (!j || !vals || !b.seen) {
        fail("submit", "out of memory");
        goto out;
    }
    for (size_t k = 0; k < N_BATCH; k++)
        memcpy(vals + M * k, v + M * (k % NCOL), sizeof(double) * M);
    CHECK(qtomo_job_set_methods(j, "linear") == 0, "set_methods(linear)", "refused");
    for (int k = 0; k < NCOL; k++) {
        s = NULL;
        clear_err(&e);
        r = qtomo_reconstruct(c, j, v + M * k, M, &s, &e);
        if (r < 0 || qtomo_sample_metric(s, 0, "purity", &b.base_purity[k]) < 0)
            fail("submit setup", "reconstruct of column %d: %d %s", k + 1, r, e.message);
        qtomo_sample_free(s);
    }
    qtomo_job_set_progress(j, 20);

    /* The whole batch: every index exactly once, in [first, first + n). With the daemon's
     * max-batch below n the library splits it into parts (max_batch is asserted by main). */
    clear_err(&e);
    r = qtomo_submit(c, j, vals, M, N_BATCH, b.first, &cb, &t, &e);
    CHECK(r == 0, "submit", "returned %d: %s", r, e.message);
    CHECK(t.n_ok == N_BATCH && t.n_err == 0 && t.n_cancelled == 0, "submit",
          "totals ok %llu err %llu cancelled %llu", (unsigned long long)t.n_ok,
          (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled);
    CHECK(t.elapsed_ms > 0, "submit", "elapsed %g", t.elapsed_ms);
    CHECK(b.results == N_BATCH && b.bad_index == 0, "submit", "%zu results, %zu bad indices",
          b.results, b.bad_index);
    for (size_t k = 0; k < N_BATCH; k++)
        if (b.seen[k] != 1) {
            fail("submit", "index %zu seen %u times", b.first + k, b.seen[k]);
            break;
        }
    CHECK(b.bad_value == 0 && b.failed == 0, "submit",
          "%zu purities differ from reconstruct's, %zu failed", b.bad_value, b.failed);
    CHECK(b.progress_bad == 0, "submit", "%zu inconsistent progress callbacks", b.progress_bad);

    /* One bad sample in the batch: counted in n_err, the rest go on. */
    memset(b.seen, 0, N_BATCH * sizeof(unsigned));
    b.results = b.failed = b.bad_value = b.bad_index = 0;
    b.last_done = 0;
    vals[M * 7 + 2] = -1; /* sample 7: mle needs non-negative values */
    CHECK(qtomo_job_set_methods(j, "linear,mle") == 0, "set_methods", "refused");
    b.n = 40;
    clear_err(&e);
    r = qtomo_submit(c, j, vals, M, 40, b.first, &cb, &t, &e);
    CHECK(r == 0, "submit(one bad)", "returned %d: %s", r, e.message);
    CHECK(t.n_ok == 39 && t.n_err == 1 && t.n_cancelled == 0, "submit(one bad)",
          "totals ok %llu err %llu cancelled %llu", (unsigned long long)t.n_ok,
          (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled);
    CHECK(b.results == 40 && b.seen[7] == 1, "submit(one bad)", "%zu results", b.results);
    vals[M * 7 + 2] = v[M * 3 + 2];

    /* Cancelled from the result callback: QTOMO_E_CANCELLED, every sample accounted for once. */
    memset(b.seen, 0, N_BATCH * sizeof(unsigned));
    b.results = b.failed = b.bad_value = b.bad_index = 0;
    b.last_done = 0;
    b.n = N_BATCH;
    b.cancel_after = 50;
    CHECK(qtomo_job_set_methods(j, "linear,mle,rhor") == 0, "set_methods", "refused");
    clear_err(&e);
    r = qtomo_submit(c, j, vals, M, N_BATCH, b.first, &cb, &t, &e);
    CHECK(r == QTOMO_E_CANCELLED, "submit(cancel by callback)", "returned %d (%s): %s", r,
          qtomo_strerror(r), e.message);
    CHECK(e.code == QTOMO_E_CANCELLED, "submit(cancel by callback)", "err.code %d", e.code);
    CHECK(t.n_ok + t.n_err + t.n_cancelled == N_BATCH, "submit(cancel by callback)",
          "ok %llu + err %llu + cancelled %llu != %d", (unsigned long long)t.n_ok,
          (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled, N_BATCH);
    CHECK(t.n_cancelled > 0, "submit(cancel by callback)", "nothing cancelled");
    CHECK(b.results >= 50 && b.results == t.n_ok + t.n_err && b.bad_index == 0,
          "submit(cancel by callback)", "%zu results for ok %llu + err %llu", b.results,
          (unsigned long long)t.n_ok, (unsigned long long)t.n_err);
    for (size_t k = 0; k < N_BATCH; k++)
        if (b.seen[k] > 1) {
            fail("submit(cancel by callback)", "index %zu seen %u times", b.first + k, b.seen[k]);
            break;
        }

    /* Cancelled through the flag (as a signal handler would set it). */
    {
        volatile int flag = 0;

        memset(b.seen, 0, N_BATCH * sizeof(unsigned));
        b.results = b.failed = b.bad_value = b.bad_index = 0;
        b.last_done = 0;
        b.cancel_after = 0;
        b.flag = &flag;
        cb.cancel = &flag;
        clear_err(&e);
        r = qtomo_submit(c, j, vals, M, N_BATCH, 0, &cb, &t, &e);
        b.first = 0;
        CHECK(r == QTOMO_E_CANCELLED, "submit(cancel flag)", "returned %d: %s", r, e.message);
        CHECK(t.n_ok + t.n_err + t.n_cancelled == N_BATCH && t.n_cancelled > 0,
              "submit(cancel flag)", "ok %llu err %llu cancelled %llu", (unsigned long long)t.n_ok,
              (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled);
        CHECK(b.results == t.n_ok + t.n_err, "submit(cancel flag)",
              "%zu results for ok %llu + err %llu", b.results, (unsigned long long)t.n_ok,
              (unsigned long long)t.n_err);
        cb.cancel = NULL;
        b.flag = NULL;
    }

    /* Bad arguments. */
    clear_err(&e);
    r = qtomo_submit(c, j, vals, M, 0, 0, &cb, &t, &e);
    CHECK(r == -EINVAL, "submit(n = 0)", "returned %d", r);
    r = qtomo_submit(c, j, vals, M, 4, 0, NULL, &t, &e);
    CHECK(r == -EINVAL, "submit(no callbacks)", "returned %d", r);

    /* After cancels the connection is usable and the daemon has nothing left in flight. */
    {
        struct qtomo_status st;

        s = NULL;
        clear_err(&e);
        r = qtomo_reconstruct(c, j, v, M, &s, &e);
        CHECK(r == 0 && s && qtomo_sample_count(s) == 3, "reconstruct after cancels",
              "returned %d: %s", r, e.message);
        qtomo_sample_free(s);
        clear_err(&e);
        r = qtomo_status(c, false, &st, &e);
        CHECK(r == 0 && st.inflight == 0, "status after cancels", "returned %d, inflight %llu", r,
              (unsigned long long)st.inflight);
        qtomo_status_free(&st);
    }
out:
    free(b.seen);
    free(vals);
    qtomo_job_free(j);
}

/* ---- custom designs and administration ---- */

/* The six Pauli eigenstates of a qubit, one group per basis (as qtomod_fixture.py's PAULI6). */
static const char pauli6[] = "{\"name\": \"pauli6\", \"dim\": 2, \"vectors\": {"
                             "\"re\": [[1, 0], [0, 1], [0.7071067811865476, 0.7071067811865476], "
                             "[0.7071067811865476, -0.7071067811865476], [0.7071067811865476, 0], "
                             "[0.7071067811865476, 0]], "
                             "\"im\": [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0.7071067811865476], "
                             "[0, -0.7071067811865476]]}, \"groups\": [0, 0, 1, 1, 2, 2]}";

static void check_custom(qtomo_conn *c, char *id_out)
{
    struct qtomo_error e;
    char id[64], id2[64], small[8];
    qtomo_job *j = qtomo_job_new();
    qtomo_sample *s = NULL;
    double counts[6] = {900, 100, 500, 500, 700, 300}, x = 0;
    int r;

    id_out[0] = '\0';
    if (!j) {
        fail("job_new", "NULL");
        return;
    }
    clear_err(&e);
    r = qtomo_design_put(c, pauli6, strlen(pauli6), id, sizeof(id), &e);
    CHECK(r == 0, "design_put", "returned %d: %s", r, e.message);
    if (r == 0) {
        size_t n = strlen(id);

        CHECK(strncmp(id, "custom-", 7) == 0 && n == 7 + 32 &&
                  strspn(id + 7, "0123456789abcdef") == 32,
              "design_put", "id '%s' is not custom-<32 hex>", id);
        CALL_OK(qtomo_design_put(c, pauli6, strlen(pauli6), id2, sizeof(id2), &e),
                "design_put(again)", e);
        CHECK(strcmp(id, id2) == 0, "design_put(again)", "id %s, then %s", id, id2);
        clear_err(&e);
        r = qtomo_design_put(c, pauli6, strlen(pauli6), small, sizeof(small), &e);
        CHECK(r == -ENAMETOOLONG, "design_put(small id buffer)", "returned %d", r);
        (void)snprintf(id_out, 64, "%s", id);

        CHECK(qtomo_job_set_custom(j, id, 2) == 0, "set_custom", "refused");
        clear_err(&e);
        r = qtomo_reconstruct(c, j, counts, 6, &s, &e);
        CHECK(r == 0 && s, "reconstruct(custom)", "returned %d: %s", r, e.message);
        if (r == 0 && s) {
            CHECK(qtomo_sample_status(s, 0, NULL) == 0 && qtomo_sample_status(s, 1, NULL) == 0,
                  "reconstruct(custom)", "a method failed");
            CHECK(qtomo_sample_metric(s, 0, "purity", &x) == 0, "reconstruct(custom)", "no purity");
            if (qtomo_sample_rho(s, 0))
                check_density("custom linear", qtomo_sample_rho(s, 0), 2, x);
            else
                fail("reconstruct(custom)", "no rho");
        }
        qtomo_sample_free(s);
        s = NULL;
        /* A detector model on that design: its effective design, with the background. */
        static const char det[] = "{\"efficiencies\": [1, 0.8, 1, 0.8, 1, 0.8], "
                                  "\"background\": [2, 0, 0, 3, 0, 0]}";
        static const char bad_det[] = "{\"efficiencies\": [1]}";
        struct qtomo_detector_ref ref;

        clear_err(&e);
        r = qtomo_detector_put(c, det, strlen(det), "custom", 2, id, &ref, &e);
        CHECK(r == 0 && strcmp(ref.design, "custom") == 0 && ref.m == 6 && ref.d == 2 &&
                  strncmp(ref.detector, "det-", 4) == 0 && strcmp(ref.design_id, id) != 0,
              "detector_put", "returned %d (%s): design %s id %s detector %s m %zu", r, e.message,
              ref.design, ref.design_id, ref.detector, ref.m);
        CHECK(r != 0 || qtomo_job_set_detector(j, &ref) == 0, "set_detector", "refused");
        clear_err(&e);
        r = r == 0 ? qtomo_reconstruct(c, j, counts, 6, &s, &e) : r;
        CHECK(r == 0 && s && qtomo_sample_status(s, 1, NULL) == 0 &&
                  qtomo_sample_metric(s, 1, "gap", &x) == 0 && x <= 1e-8,
              "reconstruct(detector)", "returned %d: %s", r, e.message);
        qtomo_sample_free(s);
        s = NULL;
        clear_err(&e);
        r = qtomo_detector_put(c, bad_det, strlen(bad_det), "custom", 2, id, &ref, &e);
        CHECK(r == QTOMO_E_INVALID_PARAMS && strstr(e.message, "efficiencies"),
              "detector_put(bad)", "returned %d, message '%s'", r, e.message);
        (void)qtomo_job_set_custom(j, id, 2);
    }
    /* Invalid design texts: the server says what is wrong; the connection goes on. */
    clear_err(&e);
    r = qtomo_design_put(c, "{\"dim\":2,", 9, id2, sizeof(id2), &e);
    CHECK(r == QTOMO_E_INVALID_PARAMS && strstr(e.message, "JSON"), "design_put(bad JSON)",
          "returned %d, message '%s'", r, e.message);
    {
        static const char incomplete[] =
            "{\"dim\":2,\"vectors\":{\"re\":[[1,0],[0,1],[1,0],[0,1]]}}";

        clear_err(&e);
        r = qtomo_design_put(c, incomplete, strlen(incomplete), id2, sizeof(id2), &e);
        CHECK(r == QTOMO_E_INVALID_PARAMS && strstr(e.message, "informationally complete"),
              "design_put(incomplete)", "returned %d, message '%s'", r, e.message);
    }
    r = qtomo_design_put(c, "", 0, id2, sizeof(id2), &e);
    CHECK(r == -EINVAL, "design_put(empty)", "returned %d", r);
    /* An id nobody uploaded. */
    CHECK(qtomo_job_set_custom(j, "custom-00000000000000000000000000000000", 2) == 0,
          "set_custom(unknown)", "refused locally");
    clear_err(&e);
    r = qtomo_reconstruct(c, j, counts, 6, &s, &e);
    CHECK(r == QTOMO_E_NOT_FOUND && !s, "reconstruct(unknown custom id)", "returned %d: %s", r,
          e.message);
    qtomo_sample_free(s);
    qtomo_job_free(j);
}

static void check_admin(qtomo_conn *c, const char *custom_id)
{
    struct qtomo_status st;
    struct qtomo_cache_entry *ce = NULL;
    struct qtomo_damaged *dm = NULL;
    struct qtomo_error e;
    const char *designs[2] = {"mub", "nopovm"};
    size_t dims[2] = {3, 2}, n = 0, nd = 0;
    uint64_t v = 0, checked = 0, gen = 0;
    double rtt = -1;
    int r;

    clear_err(&e);
    r = qtomo_status(c, false, &st, &e);
    CHECK(r == 0, "status", "returned %d: %s", r, e.message);
    if (r == 0) {
        CHECK(st.n_workers == 2 && st.uptime_s > 0 && st.cache_budget > 0, "status",
              "workers %llu uptime %g budget %llu", (unsigned long long)st.n_workers, st.uptime_s,
              (unsigned long long)st.cache_budget);
        CHECK(st.workers == NULL && st.n_workers_info == 0, "status", "worker detail in status");
        CHECK(st.cache_files >= 2 && st.cache_bytes > 0, "status", "cache %llu files %llu bytes",
              (unsigned long long)st.cache_files, (unsigned long long)st.cache_bytes);
        qtomo_status_free(&st);
    }
    clear_err(&e);
    r = qtomo_status(c, true, &st, &e);
    CHECK(r == 0, "stats", "returned %d: %s", r, e.message);
    if (r == 0) {
        CHECK(st.n_workers_info == 2 && st.workers, "stats", "%zu worker entries",
              st.n_workers_info);
        for (size_t i = 0; i < st.n_workers_info; i++)
            CHECK(st.workers[i].pid > 0 && st.workers[i].state[0] && st.workers[i].rss_kb > 0,
                  "stats", "worker %zu: pid %u state '%s' rss %llu", i, st.workers[i].pid,
                  st.workers[i].state, (unsigned long long)st.workers[i].rss_kb);
        CHECK(st.items >= N_BATCH, "stats", "items %llu", (unsigned long long)st.items);
        CHECK(st.errors >= 1 && st.crashes == 0, "stats", "errors %llu crashes %llu",
              (unsigned long long)st.errors, (unsigned long long)st.crashes);
        qtomo_status_free(&st);
        qtomo_status_free(&st); /* idempotent */
    }
    qtomo_status_free(NULL);
    clear_err(&e);
    r = qtomo_ping(c, &rtt, &e);
    CHECK(r == 0 && rtt >= 0, "ping", "returned %d, rtt %g: %s", r, rtt, e.message);

    clear_err(&e);
    r = qtomo_cache_warm(c, designs, dims, 2, &v, &e);
    CHECK(r == 0 && v == 2, "cache_warm", "returned %d, warmed %llu: %s", r, (unsigned long long)v,
          e.message);
    designs[0] = "mub";
    dims[0] = 6;
    clear_err(&e);
    r = qtomo_cache_warm(c, designs, dims, 1, &v, &e);
    CHECK(r == QTOMO_E_INVALID_PARAMS, "cache_warm(mub 6)", "returned %d", r);
    r = qtomo_cache_warm(c, designs, dims, 0, &v, &e);
    CHECK(r == -EINVAL, "cache_warm(0 items)", "returned %d", r);

    clear_err(&e);
    r = qtomo_cache_list(c, &ce, &n, &e);
    CHECK(r == 0, "cache_list", "returned %d: %s", r, e.message);
    if (r == 0) {
        bool nop4 = false, mub3 = false, custom = false;
        char want[96];

        (void)snprintf(want, sizeof(want), "%s-d2.qtpc", custom_id);
        for (size_t i = 0; i < n; i++) {
            CHECK(ce[i].bytes > 0 && ce[i].d >= 2 && ce[i].m > 0 && ce[i].last_use_ns > 0,
                  "cache_list", "entry %s: d %llu m %llu bytes %llu", ce[i].name,
                  (unsigned long long)ce[i].d, (unsigned long long)ce[i].m,
                  (unsigned long long)ce[i].bytes);
            if (strcmp(ce[i].name, "nopovm-d4.qtpc") == 0)
                nop4 = ce[i].d == 4 && ce[i].m == 16 && strcmp(ce[i].design, "nopovm") == 0;
            if (strcmp(ce[i].name, "mub-d3.qtpc") == 0)
                mub3 = ce[i].d == 3 && ce[i].m == 12;
            if (custom_id[0] && strcmp(ce[i].name, want) == 0)
                custom = strcmp(ce[i].id, custom_id) == 0 && strcmp(ce[i].design, "custom") == 0;
        }
        CHECK(nop4 && mub3, "cache_list", "nopovm-d4 %d, mub-d3 %d among %zu entries", nop4, mub3,
              n);
        CHECK(custom || !custom_id[0], "cache_list", "no entry %s with id %s", want, custom_id);
        free(ce);
    }

    clear_err(&e);
    r = qtomo_cache_verify(c, NULL, 0, &checked, &dm, &nd, &e);
    CHECK(r == 0 && checked >= 3 && nd == 0 && dm == NULL, "cache_verify(all)",
          "returned %d, checked %llu, damaged %zu: %s", r, (unsigned long long)checked, nd,
          e.message);
    free(dm);
    dm = NULL;
    clear_err(&e);
    r = qtomo_cache_verify(c, "nopovm", 4, &checked, &dm, &nd, &e);
    CHECK(r == 0 && checked == 1 && nd == 0, "cache_verify(nopovm 4)",
          "returned %d, checked %llu, damaged %zu: %s", r, (unsigned long long)checked, nd,
          e.message);
    free(dm);
    dm = NULL;
    clear_err(&e);
    r = qtomo_cache_verify(c, "mub", 5, &checked, &dm, &nd, &e);
    CHECK(r == QTOMO_E_NOT_FOUND, "cache_verify(absent mub 5)", "returned %d: %s", r, e.message);
    free(dm);

    /* The test runs as the daemon's own user: an administrator. */
    clear_err(&e);
    r = qtomo_cache_evict(c, "nopovm", 2, &v, &e);
    CHECK(r == 0 && v > 0, "cache_evict(nopovm 2)", "returned %d, bytes %llu: %s", r,
          (unsigned long long)v, e.message);
    clear_err(&e);
    r = qtomo_cache_evict(c, "nopovm", 2, &v, &e);
    CHECK(r == QTOMO_E_NOT_FOUND, "cache_evict(again)", "returned %d: %s", r, e.message);
    r = qtomo_cache_evict(c, NULL, 2, &v, &e);
    CHECK(r == -EINVAL, "cache_evict(NULL)", "returned %d", r);
    clear_err(&e);
    r = qtomo_reload(c, &gen, &e);
    CHECK(r == 0 && gen >= 1, "reload", "returned %d, generation %llu: %s", r,
          (unsigned long long)gen, e.message);
    clear_err(&e);
    r = qtomo_ping(c, NULL, &e);
    CHECK(r == 0, "ping after reload", "returned %d: %s", r, e.message);
}

/* A refused qtomo_job_set_target must leave the job as it was: here the job's design is nopovm
 * at d = 4 with a 4 x 4 target, and a 2 x 2 target is refused (-EINVAL). The next reconstruct
 * must give the same fidelity as before the refused call. (A job whose dimension is left to the
 * samples may change its target's size; a misfit is then refused at send time, see below.) */
static void check_target_refused(qtomo_conn *c, const double *v)
{
    double complex t[M] = {0}, t2[4] = {1, 0, 0, 0};
    struct qtomo_error e;
    qtomo_job *j = qtomo_job_new();
    qtomo_sample *s = NULL;
    double before = -1, after = -2;
    int r;

    if (!j) {
        fail("job_new", "NULL");
        return;
    }
    t[0] = t[3 + D * 3] = t[0 + D * 3] = t[3] = 0.5; /* |Phi+><Phi+| */
    CHECK(qtomo_job_set_methods(j, "linear") == 0, "set_methods", "refused");
    CHECK(qtomo_job_set_design(j, "nopovm", D) == 0, "set_design(nopovm 4)", "refused");
    CALL_OK(qtomo_job_set_target(j, t, D), "set_target(4 x 4)", e);
    clear_err(&e);
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    if (r < 0 || qtomo_sample_metric(s, 0, "fidelity", &before) < 0)
        fail("reconstruct(target)", "returned %d: %s", r, e.message);
    qtomo_sample_free(s);
    s = NULL;
    r = qtomo_job_set_target(j, t2, 2);
    CHECK(r == -EINVAL, "set_target(2 x 2 on a d = 4 job)", "returned %d, expected -EINVAL", r);
    clear_err(&e);
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    if (r < 0 || qtomo_sample_metric(s, 0, "fidelity", &after) < 0)
        fail("reconstruct after a refused set_target", "returned %d: %s", r, e.message);
    else
        CHECK(after == before, "reconstruct after a refused set_target",
              "fidelity %.17g, before the refused call %.17g: the refused 2 x 2 target replaced "
              "the job's 4 x 4 one",
              after, before);
    qtomo_sample_free(s);
    qtomo_job_free(j);
}

/* A job whose target was set for d = 2 and whose design is then set to nopovm with d = 4: the
 * target no longer fits. Either call may refuse, or the reconstruct may fail cleanly (-EINVAL or
 * the server's -32602); what must not happen is a request built from a 4 x 4 read of the
 * 2 x 2 target. */
static void check_design_after_target(qtomo_conn *c, const double *v)
{
    double complex t2[4] = {1, 0, 0, 0};
    struct qtomo_error e;
    qtomo_job *j = qtomo_job_new();
    qtomo_sample *s = NULL;
    int r;

    if (!j) {
        fail("job_new", "NULL");
        return;
    }
    CHECK(qtomo_job_set_methods(j, "linear") == 0, "set_methods", "refused");
    r = qtomo_job_set_target(j, t2, 2);
    CHECK(r == 0, "set_target(2 x 2)", "returned %d", r);
    r = qtomo_job_set_design(j, "nopovm", 4);
    if (r == -EINVAL) {
        qtomo_job_free(j);
        return; /* refused: fine */
    }
    clear_err(&e);
    r = qtomo_reconstruct(c, j, v, M, &s, &e);
    CHECK(r == -EINVAL || r == QTOMO_E_INVALID_PARAMS, "reconstruct(2 x 2 target, d = 4)",
          "returned %d (%s), expected a refusal of the 2 x 2 target for d = 4", r, e.message);
    qtomo_sample_free(s);
    qtomo_job_free(j);
}

static void check_strerror(void)
{
    static const int codes[] = {0,
                                -ENOENT,
                                -ECONNREFUSED,
                                -ETIMEDOUT,
                                QTOMO_E_PARSE,
                                QTOMO_E_INVALID_PARAMS,
                                QTOMO_E_BUSY,
                                QTOMO_E_NOT_FOUND,
                                QTOMO_E_PERMISSION,
                                QTOMO_E_CANCELLED,
                                QTOMO_EPROTO,
                                -999999,
                                12345};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *s = qtomo_strerror(codes[i]);

        CHECK(s && s[0], "strerror", "code %d: '%s'", codes[i], s ? s : "(null)");
    }
}

/* Error bars through the public API: a submit of a good and an all-zero sample with bootstrap;
 * the good one has error bars (seed as asked, positive purity std), the failed one has none,
 * also when it comes after the good one on the same connection (the sample is reused). */
struct boot_batch {
    int seen, with, without, bad;
};

static int on_boot_result(void *ud, const qtomo_sample *s)
{
    struct boot_batch *b = ud;
    struct qtomo_uncertainty u;
    double sd = 0, lo = 0, hi = 0;

    b->seen++;
    for (size_t i = 0; i < qtomo_sample_count(s); i++) {
        int r = qtomo_sample_uncertainty(s, i, &u);

        if (qtomo_sample_status(s, i, NULL) != 0) {
            b->without += r == -ENOENT;
            b->bad += r != -ENOENT;
            continue;
        }
        b->with += r == 0;
        if (r != 0 || u.resamples != 40 || u.seed != 99 || !u.kind || strcmp(u.kind, "data") != 0 ||
            qtomo_sample_error_bar(s, i, "purity", 0, &sd, &lo, &hi) != 0 || !(sd > 0) ||
            !(lo <= hi) || qtomo_sample_error_bar(s, i, "eigenvalues", 3, &sd, NULL, NULL) != 0 ||
            qtomo_sample_error_bar(s, i, "eigenvalues", 4, &sd, NULL, NULL) != -ENOENT ||
            qtomo_sample_error_bar(s, i, "gap", 0, &sd, NULL, NULL) != -ENOENT)
            b->bad++;
    }
    return 0;
}

static void check_bootstrap(qtomo_conn *c, const double *v)
{
    struct qtomo_totals t;
    struct qtomo_error e;
    struct boot_batch b = {0};
    struct qtomo_callbacks cb = {on_boot_result, NULL, &b, NULL};
    qtomo_job *j = qtomo_job_new();
    double vals[3 * M];
    int r;

    CHECK(j != NULL, "bootstrap", "no job");
    if (!j)
        return;
    memcpy(vals, v, M * sizeof(double));
    memset(vals + M, 0, M * sizeof(double)); /* a zero sample: every estimate fails */
    memcpy(vals + 2 * M, v, M * sizeof(double));
    CHECK(qtomo_job_set_bootstrap(j, 1, NULL, 99, 0, 0) == -EINVAL, "bootstrap", "N = 1");
    CHECK(qtomo_job_set_bootstrap(j, 40, "jackknife", 99, 0, 0) == -EINVAL, "bootstrap", "kind");
    CHECK(qtomo_job_set_bootstrap(j, 40, NULL, 99, 1.0, 0) == -EINVAL, "bootstrap", "C = 1");
    CHECK(qtomo_job_set_bootstrap(j, 40, NULL, 99, 0, 0) == 0, "bootstrap", "set");
    clear_err(&e);
    r = qtomo_submit(c, j, vals, M, 3, 0, &cb, &t, &e);
    CHECK(r == 0, "bootstrap", "submit: %d %s", r, e.message);
    CHECK(b.seen == 3 && b.bad == 0 && b.with == 4 && b.without == 2, "bootstrap",
          "seen %d, with error bars %d, failed without %d, bad %d", b.seen, b.with, b.without,
          b.bad);
    qtomo_job_free(j);
}

int main(int argc, char **argv)
{
    struct qtomo_server_info si;
    struct expect ex[2];
    struct qtomo_error e;
    double v[M * NCOL];
    char custom_id[64] = "";
    qtomo_conn *c = NULL;
    unsigned max_batch;
    int r;

    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: client_check SOCKET DATA_DIR EXPECT_FILE MAX_BATCH [CHECK]\n");
        return 2;
    }
    max_batch = (unsigned)strtoul(argv[4], NULL, 10);
    if (read_example(argv[2], v) < 0 || read_expect(argv[3], ex, 2) < 0)
        return 2;
    if (argc == 5) {
        check_strerror();
        check_job_options();
        check_connect_errors(argv[1]);
    }

    clear_err(&e);
    r = qtomo_connect(&c, argv[1], "client_check/1", 60000, &e);
    if (r < 0) {
        fprintf(stderr, "client_check: FAIL connect %s: %d %s\n", argv[1], r, e.message);
        return 1;
    }
    qtomo_server_info(c, &si);
    CHECK(si.proto_major == 1, "server_info", "protocol %u.%u", si.proto_major, si.proto_minor);
    CHECK(strncmp(si.server, "qtomod/", 7) == 0, "server_info", "server '%s'", si.server);
    CHECK(si.workers == 2, "server_info", "workers %u", si.workers);
    CHECK(si.max_batch == max_batch && max_batch < N_BATCH, "server_info",
          "max_batch %u, the daemon was started with %u (must be < %d to split the batch)",
          si.max_batch, max_batch, N_BATCH);
    CHECK(si.max_frame >= 4096 && si.max_dim >= 64 && si.max_inflight >= 2 && si.max_item_ms > 0,
          "server_info", "limits frame %u dim %u inflight %u item_ms %u", si.max_frame, si.max_dim,
          si.max_inflight, si.max_item_ms);
    CHECK(qtomo_fd(c) >= 0, "fd", "%d", qtomo_fd(c));
    qtomo_set_timeout(c, 60000);
    if (argc == 6) {
        /* One check on its own (its failure must not hide the others'). */
        if (strcmp(argv[5], "target-refused") == 0) {
            check_target_refused(c, v);
        } else if (strcmp(argv[5], "design-after-target") == 0) {
            check_design_after_target(c, v);
        } else if (strcmp(argv[5], "bootstrap") == 0) {
            check_bootstrap(c, v);
        } else {
            fprintf(stderr, "client_check: unknown check '%s'\n", argv[5]);
            qtomo_close(c);
            return 2;
        }
        qtomo_close(c);
        if (failures)
            return 1;
        printf("client_check: %s passed\n", argv[5]);
        return 0;
    }

    check_reconstruct(c, v, ex);
    check_submit(c, v);
    check_custom(c, custom_id);
    check_admin(c, custom_id);
    qtomo_close(c);
    qtomo_close(NULL);
    if (failures) {
        fprintf(stderr, "client_check: %d check(s) failed\n", failures);
        return 1;
    }
    printf("client_check: all checks passed\n");
    return 0;
}

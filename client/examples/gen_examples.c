/* Generates the bundled example data (client/examples/data/) from known states, with fixed
 * seeds, so the examples are reproducible: `gen_examples DIR` writes the files, and
 * `gen_examples --check DIR` verifies that DIR holds exactly what this program writes. */
#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_rng.h"

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) QT_PRINTF(2, 3);

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len)
            break;
        b->cap = b->cap * 2 + (size_t)n + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    b->len += (size_t)n;
}

/* Bell state k of two qubits in the origin's Bell order (Phi+, Psi+, Phi-, Psi-), mixed with
 * white noise: v |B_k><B_k| + (1 - v) I/4. */
static void bell_state(int k, double v, double complex *rho)
{
    double complex psi[4] = {0};
    const double s = 1.0 / sqrt(2.0);

    if (k == 0 || k == 2) {
        psi[0] = s;
        psi[3] = k == 0 ? s : -s;
    } else {
        psi[1] = s;
        psi[2] = k == 1 ? s : -s;
    }
    for (size_t j = 0; j < 4; j++)
        for (size_t i = 0; i < 4; i++)
            rho[i + 4 * j] = v * psi[i] * conj(psi[j]) + (i == j ? (1.0 - v) / 4.0 : 0.0);
}

/* One CSV: rows = outcomes, columns = samples (integer counts). */
static void write_csv(struct buf *b, const struct qt_design *des, size_t ns, const double *Y)
{
    for (size_t a = 0; a < des->m; a++)
        for (size_t s = 0; s < ns; s++)
            put(b, "%.0f%s", Y[a + des->m * s], s + 1 < ns ? "," : "\n");
}

static struct qt_design *design(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    if (qt_design_new(kind, d, &des, NULL) < 0)
        abort();
    return des;
}

/* bell_nopovm_d4.csv: the four Bell states at visibility 0.96, 20000 counts each, in the
 * MATLAB-legacy nopovm design that the lab data uses. */
static void gen_bell(struct buf *b, struct qt_ws *ws)
{
    struct qt_design *des = design(QT_DESIGN_NOPOVM, 4);
    struct qt_rng rng;
    double complex rho[16];
    double Y[16 * 4];

    qt_rng_seed(&rng, 20261122);
    for (int k = 0; k < 4; k++) {
        bell_state(k, 0.96, rho);
        if (qt_rng_simulate(&rng, des, ws, rho, 20000, Y + 16 * k) < 0)
            abort();
    }
    write_csv(b, des, 4, Y);
    qt_design_free(des);
}

/* mub_d3.csv: three random pure qutrit states, 3000 counts per basis. */
static void gen_mub(struct buf *b, struct qt_ws *ws)
{
    struct qt_design *des = design(QT_DESIGN_MUB, 3);
    struct qt_rng rng;
    double complex rho[9];
    double Y[12 * 3];

    qt_rng_seed(&rng, 3003);
    for (int s = 0; s < 3; s++) {
        qt_rng_state(&rng, 3, 1, rho);
        if (qt_rng_simulate(&rng, des, ws, rho, 3000, Y + 12 * s) < 0)
            abort();
    }
    write_csv(b, des, 3, Y);
    qt_design_free(des);
}

/* pauli_2q.csv: two qubits, 1000 shots per setting: Phi+ at visibility 0.9, the product state
 * |0>|+>, and a random rank-2 state. */
static void gen_pauli(struct buf *b, struct qt_ws *ws)
{
    struct qt_design *des = design(QT_DESIGN_PAULI, 4);
    struct qt_rng rng;
    double complex rho[16] = {0};
    double Y[36 * 3];

    qt_rng_seed(&rng, 1000);
    bell_state(0, 0.9, rho);
    if (qt_rng_simulate(&rng, des, ws, rho, 1000, Y) < 0)
        abort();
    memset(rho, 0, sizeof(rho));
    for (size_t i = 0; i < 2; i++) /* |0>|+> = (|00> + |01>)/sqrt2 */
        for (size_t j = 0; j < 2; j++)
            rho[i + 4 * j] = 0.5;
    if (qt_rng_simulate(&rng, des, ws, rho, 1000, Y + 36) < 0)
        abort();
    qt_rng_state(&rng, 4, 2, rho);
    if (qt_rng_simulate(&rng, des, ws, rho, 1000, Y + 72) < 0)
        abort();
    write_csv(b, des, 3, Y);
    qt_design_free(des);
}

/* calib_pauli_1q.csv: a detector calibration, the qubit of the README's detector example
 * (efficiencies 0.92 and 0.81, crosstalk 2-3 %) measured in the pauli design on the six states
 * of calib_states_1q.json, about 20000 photons per run with the run's source drifting by a few
 * per cent; Poisson counts (a binomial of 2^40 trials). */
static const char *const calib_states[] = {"0", "1", "+", "-", "r", "l"};

static void gen_calib(struct buf *b, struct qt_ws *ws)
{
    static const double eta[2] = {0.92, 0.81}, C[2][2] = {{0.98, 0.03}, {0.02, 0.97}};
    static const double drift[6] = {1.00, 0.97, 1.03, 1.01, 0.98, 1.02};
    const double h = 1.0 / sqrt(2.0);
    struct qt_design *des = design(QT_DESIGN_PAULI, 2);
    struct qt_rng rng;
    double Y[6 * 6], p[6];

    qt_rng_seed(&rng, 20261202);
    for (size_t j = 0; j < 6; j++) {
        double complex v[2], rho[4];
        char c = calib_states[j][0];

        v[0] = c == '0' ? 1.0 : c == '1' ? 0.0 : h;
        v[1] = c == '0' ? 0.0 : c == '1' ? 1.0 : c == '+' ? h : c == '-' ? -h : 0.0;
        if (c == 'r' || c == 'l')
            v[1] = (c == 'r' ? I : -I) * h;
        for (size_t q = 0; q < 2; q++)
            for (size_t r = 0; r < 2; r++)
                rho[r + 2 * q] = v[r] * conj(v[q]);
        if (qt_design_forward(des, ws, rho, p) < 0)
            abort();
        for (size_t g = 0; g < 3; g++)
            for (size_t a = 0; a < 2; a++) {
                double mu = 0.0, n = 1099511627776.0;

                for (size_t bb = 0; bb < 2; bb++)
                    mu += 20000.0 * drift[j] * C[a][bb] * eta[bb] * fmax(p[2 * g + bb], 0.0);
                Y[2 * g + a + 6 * j] = (double)qt_rng_binomial(&rng, (uint64_t)n, mu / n);
            }
    }
    write_csv(b, des, 6, Y);
    qt_design_free(des);
}

static void gen_calib_states(struct buf *b, struct qt_ws *ws)
{
    (void)ws;
    put(b, "[");
    for (size_t j = 0; j < 6; j++)
        put(b, "\"%s\"%s", calib_states[j], j + 1 < 6 ? ", " : "]\n");
}

static void gen_target(struct buf *b)
{
    put(b, "{\"ket\": {\"re\": [0.7071067811865476, 0, 0, 0.7071067811865476], "
           "\"im\": [0, 0, 0, 0]}}\n");
}

/* Writes (or, with check, compares) one generated file. Returns 0 when it matches. */
static int output(const char *dir, const char *name, const struct buf *b, int check)
{
    char path[4096];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!check) {
        f = fopen(path, "wb");
        if (!f || fwrite(b->p, 1, b->len, f) != b->len || fclose(f) != 0) {
            fprintf(stderr, "gen_examples: cannot write %s: %s\n", path, strerror(errno));
            return 1;
        }
        return 0;
    }
    f = fopen(path, "rb");
    char *have = malloc(b->len + 2);
    size_t n = f && have ? fread(have, 1, b->len + 1, f) : 0;
    int same = f && have && n == b->len && memcmp(have, b->p, b->len) == 0;

    if (f)
        fclose(f);
    free(have);
    if (!same)
        fprintf(stderr, "gen_examples: %s differs from what the generator writes\n", path);
    return !same;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*gen)(struct buf *, struct qt_ws *);
    } files[] = {{"bell_nopovm_d4.csv", gen_bell},
                 {"mub_d3.csv", gen_mub},
                 {"pauli_2q.csv", gen_pauli},
                 {"calib_pauli_1q.csv", gen_calib},
                 {"calib_states_1q.json", gen_calib_states}};
    struct qt_ws ws = QT_WS_INIT;
    int check = argc == 3 && strcmp(argv[1], "--check") == 0, bad = 0;
    const char *dir = argv[argc - 1];

    if (argc != 2 + check) {
        fprintf(stderr, "usage: gen_examples [--check] DIR\n");
        return 2;
    }
    for (size_t i = 0; i < QT_ARRAY_SIZE(files); i++) {
        struct buf b = {NULL, 0, 0};

        put(&b, "%s", "");
        files[i].gen(&b, &ws);
        bad |= output(dir, files[i].name, &b, check);
        free(b.p);
    }
    struct buf t = {NULL, 0, 0};
    put(&t, "%s", "");
    gen_target(&t);
    bad |= output(dir, "phi_plus.json", &t, check);
    free(t.p);
    qt_ws_done(&ws);
    return bad;
}

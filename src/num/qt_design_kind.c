/* The catalogue of built-in designs (qt_design_kind.h): names, supported dimensions, outcome
 * counts, inference from a row count. */
#include "qt_design_kind.h"

#include <math.h>
#include <strings.h>

#include "qt_gf.h"

static const char *const kind_names[_QT_DESIGN_KIND_MAX] = {"nopovm", "mub", "sic", "pauli",
                                                            "custom"};

int qt_design_kind_from_name(const char *name)
{
    for (int k = 0; k < _QT_DESIGN_KIND_MAX; k++)
        if (name && strcasecmp(name, kind_names[k]) == 0)
            return k;
    return QT_EDESIGN;
}

const char *qt_design_kind_name(enum qt_design_kind kind)
{
    return (unsigned)kind < _QT_DESIGN_KIND_MAX ? kind_names[kind] : "unknown";
}

unsigned qt_design_qubits(size_t d)
{
    unsigned n = 0;

    if (d == 0 || (d & (d - 1)) != 0)
        return 0;
    while ((size_t)1 << n < d)
        n++;
    return n;
}

static size_t pow6(unsigned e)
{
    size_t r = 1;

    while (e--)
        r *= 6;
    return r;
}

size_t qt_design_outcomes(enum qt_design_kind kind, size_t d)
{
    if (qt_design_check_dim(kind, d, NULL) < 0)
        return 0;
    switch (kind) {
    case QT_DESIGN_NOPOVM:
        return d * d;
    case QT_DESIGN_MUB:
        return d * (d + 1);
    case QT_DESIGN_SIC:
        return 4;
    case QT_DESIGN_PAULI:
        return pow6(qt_design_qubits(d));
    default:
        return 0;
    }
}

int qt_design_check_dim(enum qt_design_kind kind, size_t d, struct qt_diag *reterr)
{
    unsigned p, k;

    switch (kind) {
    case QT_DESIGN_NOPOVM:
        if (d < 2 || d > QT_DESIGN_MAX_DIM)
            return qt_diag_set(reterr, QT_EDIM, 0, 0, "nopovm needs 2 <= d <= %u, got d = %zu",
                               QT_DESIGN_MAX_DIM, d);
        return 0;
    case QT_DESIGN_MUB:
        if (d < 2 || d > QT_DESIGN_MAX_MUB_DIM || qt_gf_prime_power((unsigned)d, &p, &k) < 0)
            return qt_diag_set(reterr, QT_EDIM, 0, 0,
                               "mub needs a prime power 2 <= d <= %u, got d = %zu",
                               QT_DESIGN_MAX_MUB_DIM, d);
        return 0;
    case QT_DESIGN_SIC:
        if (d != 2)
            return qt_diag_set(reterr, QT_EDIM, 0, 0, "sic is implemented for d = 2 only, got %zu",
                               d);
        return 0;
    case QT_DESIGN_PAULI: {
        unsigned n = qt_design_qubits(d);

        if (n < 1 || n > QT_DESIGN_MAX_QUBITS)
            return qt_diag_set(reterr, QT_EDIM, 0, 0,
                               "pauli needs d = 2^n with 1 <= n <= %u qubits, got d = %zu",
                               QT_DESIGN_MAX_QUBITS, d);
        return 0;
    }
    case QT_DESIGN_CUSTOM:
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0, "custom designs come from a design file");
    default:
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0, "unknown design");
    }
}

int qt_design_infer(int kind, size_t rows, int *ret_kind, size_t *ret_d, struct qt_diag *reterr)
{
    size_t r = (size_t)llround(sqrt((double)rows));

    if (kind < 0) {
        if (r * r == rows && r >= 2) {
            kind = QT_DESIGN_NOPOVM;
        } else {
            size_t d = (size_t)floor(sqrt((double)rows));

            if (d >= 2 && d * (d + 1) == rows)
                kind = QT_DESIGN_MUB;
            else
                return qt_diag_set(reterr, QT_EDESIGN, 0, 0,
                                   "cannot infer the design from %zu rows: neither d^2 (nopovm) "
                                   "nor d(d+1) (mub); name the design",
                                   rows);
        }
    }
    for (size_t d = 2; d <= QT_DESIGN_MAX_D; d++) {
        size_t m = qt_design_outcomes((enum qt_design_kind)kind, d);

        if (m == rows) {
            *ret_kind = kind;
            *ret_d = d;
            return 0;
        }
    }
    if (kind == QT_DESIGN_CUSTOM)
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0, "custom designs need a design file");
    return qt_diag_set(reterr, QT_EDIM, 0, 0,
                       "%zu rows do not match any supported dimension of design '%s'", rows,
                       qt_design_kind_name((enum qt_design_kind)kind));
}

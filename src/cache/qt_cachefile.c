/* Projector cache file format: see FORMAT.md in this directory. */
#include "qt_cachefile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#    error "the projector cache maps little-endian files in place"
#endif

/* Header field offsets. */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_HSIZE = 12,
    H_FSIZE = 16,
    H_LIBVER = 24,
    H_KIND = 40,
    H_PINVKIND = 44,
    H_D = 48,
    H_M = 56,
    H_NGROUPS = 64,
    H_GROUPLEN = 72,
    H_RANK = 80,
    H_COND = 88,
    H_PINVCOLS = 96,
    H_NQUBITS = 104,
    H_FLAGS = 108,
    H_ID = 112,
    H_WH_DS = 176,
    H_WH_C = 184,
    H_WH_EIGMIN = 192,
    H_WH_EIGMAX = 200,
    H_WH_DEVABS = 208,
    H_WH_DEVFRO = 216,
    H_WH_MINEIG = 224,
    H_WH_VALID = 232,
    H_NSECT = 236,
    H_SECT = 240, /* QT_CF_MAX_SECTIONS x 32 bytes: id, elem size, offset, bytes, xxh3 */
    H_MIX_KIND = 752, /* 0, or 1 + the base design kind of a mixing structure */
    H_MIX_K = 760,    /* its group length */
};

enum {
    F_RANK1 = 1u << 0,
    F_POVM = 1u << 1,
    F_PINV_LOWER = 1u << 2,
    F_WHITEN = 1u << 3,
    F_WH_TRIVIAL = 1u << 4,
};

enum sect_id {
    S_GROUPS = 1,
    S_GROUP_SCALE,
    S_KETS,
    S_ELEMS,
    S_H,
    S_SV,
    S_PINV,
    S_WH_B,
    S_WH_HW,
    S_WH_KETS,
    S_WH_ELEMS,
    S_BACKGROUND,
    S_MIX,
    S_MIX_KETS,
    _S_MAX
};

struct sect {
    enum sect_id id;
    const void *data;
    uint64_t bytes;
};

const char *qt_cf_fault_name(enum qt_cf_fault f)
{
    static const char *const names[] = {"ok", "truncated", "foreign", "stale", "corrupt"};

    return (unsigned)f < QT_ARRAY_SIZE(names) ? names[f] : "corrupt";
}

static void put32(uint8_t *h, size_t off, uint32_t v)
{
    memcpy(h + off, &v, sizeof(v));
}

static void put64(uint8_t *h, size_t off, uint64_t v)
{
    memcpy(h + off, &v, sizeof(v));
}

static void putd(uint8_t *h, size_t off, double v)
{
    memcpy(h + off, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *h, size_t off)
{
    uint32_t v;

    memcpy(&v, h + off, sizeof(v));
    return v;
}

static uint64_t get64(const uint8_t *h, size_t off)
{
    uint64_t v;

    memcpy(&v, h + off, sizeof(v));
    return v;
}

static double getd(const uint8_t *h, size_t off)
{
    double v;

    memcpy(&v, h + off, sizeof(v));
    return v;
}

/* Multiplies with overflow checks; returns false on overflow. */
static bool mul(uint64_t *acc, uint64_t f)
{
    return !__builtin_mul_overflow(*acc, f, acc);
}

/* The byte size every section must have, from the header's scalars (0 when the product
 * overflows: no real section has that size). */
static uint64_t expected_bytes(enum sect_id id, uint64_t d, uint64_t m, uint64_t ng, uint64_t ds,
                               uint64_t pinv_cols, bool lower, uint64_t mixk)
{
    const uint64_t c16 = sizeof(double complex);
    uint64_t b = 1;
    bool ok = true;

    switch (id) {
    case S_GROUPS:
        ok = mul(&b, m) && mul(&b, sizeof(uint32_t));
        break;
    case S_GROUP_SCALE:
        ok = mul(&b, ng) && mul(&b, sizeof(double));
        break;
    case S_KETS:
        ok = mul(&b, d) && mul(&b, m) && mul(&b, c16);
        break;
    case S_ELEMS:
        ok = mul(&b, d) && mul(&b, d) && mul(&b, m) && mul(&b, c16);
        break;
    case S_H:
        ok = mul(&b, d) && mul(&b, d) && mul(&b, c16);
        break;
    case S_SV:
        ok = mul(&b, QT_MIN(m, d * d)) && mul(&b, sizeof(double));
        break;
    case S_PINV:
        ok = mul(&b, lower ? d * (d + 1) / 2 : d * d) && mul(&b, pinv_cols) && mul(&b, c16);
        break;
    case S_WH_B:
        ok = mul(&b, d) && mul(&b, ds) && mul(&b, c16);
        break;
    case S_WH_HW:
        ok = mul(&b, ds) && mul(&b, sizeof(double));
        break;
    case S_WH_KETS:
        ok = mul(&b, ds) && mul(&b, m) && mul(&b, c16);
        break;
    case S_WH_ELEMS:
        ok = mul(&b, ds) && mul(&b, ds) && mul(&b, m) && mul(&b, c16);
        break;
    case S_BACKGROUND:
        ok = mul(&b, m) && mul(&b, sizeof(double));
        break;
    case S_MIX:
        ok = mixk && mul(&b, m) && mul(&b, mixk) && mul(&b, sizeof(double));
        break;
    case S_MIX_KETS:
        ok = mul(&b, d) && mul(&b, m) && mul(&b, c16);
        break;
    default:
        ok = false;
    }
    return ok ? b : 0;
}

static size_t collect(const struct qt_design *des, struct sect *s)
{
    const struct qt_whiten *wh = des->whiten;
    bool lower = des->pinv_lower;
    uint64_t d = des->d, m = des->m, ng = des->n_groups, ds = wh ? wh->ds : 0;
    uint64_t mixk = des->mix_base ? des->mix_base->group_len : 0;
    size_t n = 0;

#define ADD(ID, PTR)                                                                             \
    do {                                                                                         \
        if (PTR)                                                                                 \
            s[n++] =                                                                             \
                (struct sect){ID, PTR, expected_bytes(ID, d, m, ng, ds, des->pinv_cols, lower, mixk)}; \
    } while (0)
    ADD(S_GROUPS, des->groups);
    ADD(S_GROUP_SCALE, des->group_scale);
    ADD(S_KETS, des->kets);
    ADD(S_ELEMS, des->elems);
    ADD(S_H, des->H);
    ADD(S_SV, des->sv);
    ADD(S_PINV, des->pinv);
    ADD(S_BACKGROUND, des->background);
    if (des->mix_base) {
        ADD(S_MIX, des->mix);
        ADD(S_MIX_KETS, des->mix_base->kets);
    }
    if (wh && !wh->trivial) {
        ADD(S_WH_B, wh->B);
        ADD(S_WH_HW, wh->hw);
        ADD(S_WH_KETS, wh->kets);
        ADD(S_WH_ELEMS, wh->elems);
    }
#undef ADD
    return n;
}

static uint64_t align_up(uint64_t x)
{
    return (x + QT_CF_ALIGN - 1) / QT_CF_ALIGN * QT_CF_ALIGN;
}

int qt_cf_size(const struct qt_design *des, uint64_t *ret_size)
{
    struct sect s[QT_CF_MAX_SECTIONS];
    size_t n = collect(des, s);
    uint64_t off = QT_CF_HEADER_SIZE;

    for (size_t i = 0; i < n; i++) {
        if (s[i].bytes == 0 || __builtin_add_overflow(off, s[i].bytes, &off))
            return QT_ETOOBIG;
        off = align_up(off);
    }
    *ret_size = off;
    return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t k = pwrite(fd, p, QT_MIN(len, (size_t)1 << 30), (off_t)off);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

int qt_cf_write(int fd, const struct qt_design *des)
{
    struct sect s[QT_CF_MAX_SECTIONS];
    size_t n = collect(des, s);
    const struct qt_whiten *wh = des->whiten;
    uint8_t h[QT_CF_HEADER_SIZE];
    uint64_t off = QT_CF_HEADER_SIZE, size;
    uint32_t flags = 0;
    int r;

    r = qt_cf_size(des, &size);
    if (r < 0)
        return r;
    memset(h, 0, sizeof(h));
    memcpy(h + H_MAGIC, QT_CF_MAGIC, sizeof(QT_CF_MAGIC));
    put32(h, H_VERSION, QT_CF_VERSION);
    put32(h, H_HSIZE, QT_CF_HEADER_SIZE);
    put64(h, H_FSIZE, size);
    (void)snprintf((char *)h + H_LIBVER, 16, "%s", QTOMO_VERSION);
    put32(h, H_KIND, (uint32_t)des->kind);
    put32(h, H_PINVKIND, (uint32_t)des->pinv_kind);
    put64(h, H_D, des->d);
    put64(h, H_M, des->m);
    put64(h, H_NGROUPS, des->n_groups);
    put64(h, H_GROUPLEN, des->group_len);
    put64(h, H_RANK, des->rank);
    putd(h, H_COND, des->cond);
    put64(h, H_PINVCOLS, des->pinv ? des->pinv_cols : 0);
    put32(h, H_NQUBITS, des->n_qubits);
    flags |= des->rank1 ? F_RANK1 : 0;
    flags |= des->povm ? F_POVM : 0;
    flags |= des->pinv_lower ? F_PINV_LOWER : 0;
    if (wh) {
        flags |= F_WHITEN | (wh->trivial ? F_WH_TRIVIAL : 0);
        put64(h, H_WH_DS, wh->ds);
        putd(h, H_WH_C, wh->C);
        putd(h, H_WH_EIGMIN, wh->eig_min_H);
        putd(h, H_WH_EIGMAX, wh->eig_max_H);
        putd(h, H_WH_DEVABS, wh->sum_dev_abs);
        putd(h, H_WH_DEVFRO, wh->sum_dev_fro);
        putd(h, H_WH_MINEIG, wh->min_eig_sample);
        put32(h, H_WH_VALID, wh->sum_valid);
    }
    put32(h, H_FLAGS, flags);
    if (des->mix_base) {
        put32(h, H_MIX_KIND, 1u + (uint32_t)des->mix_base->kind);
        put64(h, H_MIX_K, des->mix_base->group_len);
    }
    (void)snprintf((char *)h + H_ID, 64, "%s", des->id);
    put32(h, H_NSECT, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t e = H_SECT + 32 * i;

        put32(h, e, s[i].id);
        put64(h, e + 8, off);
        put64(h, e + 16, s[i].bytes);
        put64(h, e + 24, XXH3_64bits(s[i].data, s[i].bytes));
        r = write_all(fd, s[i].data, s[i].bytes, off);
        if (r < 0)
            return r;
        off = align_up(off + s[i].bytes);
    }
    put64(h, QT_CF_HEADER_SUM_OFF, XXH3_64bits(h, QT_CF_HEADER_SUM_OFF));
    r = write_all(fd, h, sizeof(h), 0);
    if (r < 0)
        return r;
    /* Pad to the declared size (the last section's alignment). */
    if (ftruncate(fd, (off_t)size) < 0)
        return -errno;
    return 0;
}

enum qt_cf_fault qt_cf_check(const void *buf, size_t buflen, uint64_t file_len, bool full,
                             struct qt_cf_info *info, struct qt_diag *reterr)
{
    size_t len = buflen;
    const uint8_t *h = buf;
    uint64_t d, m, ng, ds, pc, fsize, end = QT_CF_HEADER_SIZE, mixk;
    uint32_t kind, flags, n, mixkind;
    bool seen[_S_MAX] = {false};

    if (len < 8 || memcmp(h, QT_CF_MAGIC, sizeof(QT_CF_MAGIC)) != 0) {
        if (len < sizeof(QT_CF_MAGIC))
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%zu bytes, shorter than the magic",
                               len),
                   QT_CF_TRUNCATED;
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "no projector cache magic"), QT_CF_FOREIGN;
    }
    if (len < QT_CF_HEADER_SIZE)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%zu bytes, shorter than the header", len),
               QT_CF_TRUNCATED;
    if (get32(h, H_HSIZE) != QT_CF_HEADER_SIZE)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "header size %u, expected %u",
                           get32(h, H_HSIZE), QT_CF_HEADER_SIZE),
               QT_CF_FOREIGN;
    if (get64(h, QT_CF_HEADER_SUM_OFF) != XXH3_64bits(h, QT_CF_HEADER_SUM_OFF))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "header checksum mismatch"), QT_CF_CORRUPT;
    if (get32(h, H_VERSION) != QT_CF_VERSION)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "format version %u, this build reads %u",
                           get32(h, H_VERSION), QT_CF_VERSION),
               QT_CF_STALE;
    if (strncmp((const char *)h + H_LIBVER, QTOMO_VERSION, 16) != 0)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "built by qtomo %.15s, this is %s",
                           (const char *)h + H_LIBVER, QTOMO_VERSION),
               QT_CF_STALE;
    fsize = get64(h, H_FSIZE);
    if (file_len < fsize)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%llu bytes, header declares %llu",
                           (unsigned long long)file_len, (unsigned long long)fsize),
               QT_CF_TRUNCATED;
    if (file_len != fsize)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "%llu bytes, header declares %llu",
                           (unsigned long long)file_len, (unsigned long long)fsize),
               QT_CF_CORRUPT;
    if (full && buflen != file_len)
        return qt_diag_set(reterr, -EINVAL, 0, 0, "full check needs the whole file"), QT_CF_CORRUPT;
    kind = get32(h, H_KIND);
    d = get64(h, H_D);
    m = get64(h, H_M);
    ng = get64(h, H_NGROUPS);
    pc = get64(h, H_PINVCOLS);
    flags = get32(h, H_FLAGS);
    ds = (flags & F_WHITEN) && !(flags & F_WH_TRIVIAL) ? get64(h, H_WH_DS) : 0;
    n = get32(h, H_NSECT);
    mixkind = get32(h, H_MIX_KIND);
    mixk = mixkind ? get64(h, H_MIX_K) : 0;
    /* A mixing structure: a custom design over a pauli or mub base of the same size, whose
     * groups (the mixing blocks) are d outcomes each. */
    if (mixkind && (kind != QT_DESIGN_CUSTOM ||
                    (mixkind != 1u + QT_DESIGN_PAULI && mixkind != 1u + QT_DESIGN_MUB) ||
                    mixk != d || d > QT_DESIGN_MAX_DIM ||
                    qt_design_outcomes((enum qt_design_kind)(mixkind - 1), d) != m))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "mixing structure out of range"),
               QT_CF_CORRUPT;
    if (kind >= _QT_DESIGN_KIND_MAX || d < 2 || d > QT_DESIGN_MAX_D || m < 1 ||
        m > QT_DESIGN_MAX_OUTCOMES || ng < 1 || ng > m || ds > d || pc > m ||
        get32(h, H_PINVKIND) > QT_PINV_DENSE || n > QT_CF_MAX_SECTIONS ||
        memchr(h + H_ID, 0, 64) == NULL)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "header fields out of range"), QT_CF_CORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        size_t e = H_SECT + 32 * i;
        uint32_t id = get32(h, e);
        uint64_t off = get64(h, e + 8), bytes = get64(h, e + 16);

        if (id == 0 || id >= _S_MAX || seen[id] || off % QT_CF_ALIGN != 0 || off < end ||
            off > fsize || bytes == 0 ||
            bytes != expected_bytes((enum sect_id)id, d, m, ng, ds, pc, flags & F_PINV_LOWER,
                                    mixk) ||
            bytes > fsize - off)
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "section %u: bad id, offset or size", i),
                   QT_CF_CORRUPT;
        seen[id] = true;
        end = off + bytes;
        if (full && get64(h, e + 24) != XXH3_64bits(h + off, bytes))
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "section %u checksum mismatch", i),
                   QT_CF_CORRUPT;
    }
    if (!seen[S_GROUPS] || !seen[S_H] || !seen[S_SV] ||
        (!seen[S_KETS] && !seen[S_ELEMS] && kind != QT_DESIGN_PAULI))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "required sections missing"), QT_CF_CORRUPT;
    if (seen[S_PINV] != (pc != 0) || (pc != 0 && pc != m))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0,
                           "inverse section does not match its column count"),
               QT_CF_CORRUPT;
    if (seen[S_MIX] != (mixkind != 0) ||
        seen[S_MIX_KETS] != (mixkind == 1u + QT_DESIGN_MUB))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "mixing sections do not match the header"),
               QT_CF_CORRUPT;
    if (info) {
        info->kind = (enum qt_design_kind)kind;
        info->d = d;
        info->m = m;
        info->n_groups = ng;
        info->file_size = fsize;
        memcpy(info->id, h + H_ID, 64);
        memcpy(info->version, h + H_LIBVER, 15);
        info->version[15] = '\0';
    }
    return QT_CF_OK;
}

int qt_cf_view(const void *buf, size_t len, struct qt_design *des, struct qt_whiten *wh,
               struct qt_design *mix, struct qt_diag *reterr)
{
    const uint8_t *h = buf;
    uint32_t flags = get32(h, H_FLAGS), n = get32(h, H_NSECT);
    const void *ptr[_S_MAX] = {NULL};

    (void)len; /* checked by qt_cf_check */
    for (uint32_t i = 0; i < n; i++) {
        size_t e = H_SECT + 32 * i;

        ptr[get32(h, e)] = h + get64(h, e + 8);
    }
    memset(des, 0, sizeof(*des));
    des->kind = (enum qt_design_kind)get32(h, H_KIND);
    des->pinv_kind = (enum qt_pinv_kind)get32(h, H_PINVKIND);
    des->d = get64(h, H_D);
    des->m = get64(h, H_M);
    des->n_groups = get64(h, H_NGROUPS);
    des->group_len = get64(h, H_GROUPLEN);
    des->n_qubits = get32(h, H_NQUBITS);
    des->rank1 = flags & F_RANK1;
    des->povm = flags & F_POVM;
    des->pinv_lower = flags & F_PINV_LOWER;
    des->rank = get64(h, H_RANK);
    des->cond = getd(h, H_COND);
    (void)snprintf(des->name, sizeof(des->name), "%s", qt_design_kind_name(des->kind));
    (void)snprintf(des->id, sizeof(des->id), "%s", (const char *)h + H_ID);
    des->groups = ptr[S_GROUPS];
    des->group_scale = ptr[S_GROUP_SCALE];
    des->kets = ptr[S_KETS];
    des->elems = ptr[S_ELEMS];
    des->H = ptr[S_H];
    des->sv = ptr[S_SV];
    des->pinv = ptr[S_PINV];
    des->pinv_cols = des->pinv ? get64(h, H_PINVCOLS) : 0;
    des->background = ptr[S_BACKGROUND];
    if (get32(h, H_MIX_KIND)) { /* checked by qt_cf_check */
        memset(mix, 0, sizeof(*mix));
        mix->kind = (enum qt_design_kind)(get32(h, H_MIX_KIND) - 1);
        mix->pinv_kind = mix->kind == QT_DESIGN_PAULI ? QT_PINV_PAULI : QT_PINV_FRAME;
        mix->d = des->d;
        mix->m = des->m;
        mix->group_len = des->d;
        mix->n_groups = des->m / des->d;
        while (mix->kind == QT_DESIGN_PAULI && ((size_t)1 << mix->n_qubits) < des->d)
            mix->n_qubits++;
        mix->rank1 = mix->povm = true;
        mix->kets = ptr[S_MIX_KETS];
        (void)snprintf(mix->name, sizeof(mix->name), "%s", qt_design_kind_name(mix->kind));
        (void)snprintf(mix->id, sizeof(mix->id), "%s", mix->name);
        des->mix_base = mix;
        des->mix = ptr[S_MIX];
    }
    /* Structural invariants the kernels index by. */
    if (des->group_len != 0 && des->group_len * des->n_groups != des->m)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "group length does not divide m");
    if (des->kind == QT_DESIGN_PAULI &&
        (des->n_qubits < 1 || des->n_qubits > QT_DESIGN_MAX_QUBITS ||
         ((size_t)1 << des->n_qubits) != des->d))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "pauli qubit count does not match d");
    if (des->pinv_kind == QT_PINV_DENSE && !des->pinv)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "dense inverse missing");
    if (des->povm && !des->group_scale)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "group scales missing");
    if (des->kind != QT_DESIGN_CUSTOM && des->m != qt_design_outcomes(des->kind, des->d))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "outcome count does not match the design");
    if (des->kind == QT_DESIGN_PAULI    ? des->pinv_kind != QT_PINV_PAULI
        : des->kind == QT_DESIGN_NOPOVM ? des->pinv_kind != QT_PINV_NOPOVM
        : des->kind == QT_DESIGN_MUB    ? des->pinv_kind != QT_PINV_FRAME
                                        : des->pinv_kind != QT_PINV_DENSE)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "inverse kind does not match the design");
    if (des->pinv_lower && des->pinv_kind != QT_PINV_FRAME)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "packed inverse on a non-frame design");
    if (des->kind != QT_DESIGN_PAULI &&
        (des->rank1 ? !des->kets || des->elems : !des->elems || des->kets))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "element sections do not match rank-1");
    if (des->kind != QT_DESIGN_CUSTOM && des->kind != QT_DESIGN_PAULI && !des->rank1)
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "built-in design without kets");
    if (des->background && (des->kind != QT_DESIGN_CUSTOM || des->n_groups != 1))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "background on a design with groups");
    for (size_t a = 0; des->background && a < des->m; a++)
        if (!(des->background[a] >= 0.0) || !isfinite(des->background[a]))
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "background %zu out of range", a);
    for (size_t a = 0; a < des->m; a++)
        if (des->groups[a] >= des->n_groups ||
            (des->group_len != 0 && des->groups[a] != a / des->group_len))
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "group id out of range at %zu", a);
    if (!(flags & F_WHITEN))
        return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "whitening missing");
    {
        memset(wh, 0, sizeof(*wh));
        wh->d = des->d;
        wh->m = des->m;
        wh->trivial = flags & F_WH_TRIVIAL;
        wh->ds = wh->trivial ? des->d : get64(h, H_WH_DS);
        wh->C = getd(h, H_WH_C);
        wh->eig_min_H = getd(h, H_WH_EIGMIN);
        wh->eig_max_H = getd(h, H_WH_EIGMAX);
        wh->sum_dev_abs = getd(h, H_WH_DEVABS);
        wh->sum_dev_fro = getd(h, H_WH_DEVFRO);
        wh->min_eig_sample = getd(h, H_WH_MINEIG);
        wh->sum_valid = get32(h, H_WH_VALID) != 0;
        /* The view's arrays are read-only; qt_whiten_done is never called on a view. */
        wh->B = (double complex *)(uintptr_t)ptr[S_WH_B];
        wh->hw = (double *)(uintptr_t)ptr[S_WH_HW];
        wh->kets = (double complex *)(uintptr_t)ptr[S_WH_KETS];
        wh->elems = (double complex *)(uintptr_t)ptr[S_WH_ELEMS];
        if (wh->trivial != des->povm ||
            (!wh->trivial && (wh->ds < 1 || !wh->B || !wh->hw ||
                              (des->rank1 ? !wh->kets || wh->elems : !wh->elems || wh->kets))))
            return qt_diag_set(reterr, QT_ECHECKSUM, 0, 0, "whitening sections missing");
        des->whiten = wh;
    }
    return 0;
}

#include "qd_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "num/qt_design_kind.h"

enum kind { K_S, K_U, K_O };

struct desc {
    const char *key;
    enum kind kind;
    size_t off;
    const char *def;
    unsigned long lo, hi;
    const char *help;
};

#define DESC_(k, t, f, d, l, h_, help) \
    {k, K_##t, offsetof(struct qd_conf, f), d, (unsigned long)(l), (unsigned long)(h_), help},

static const struct desc descs[] = {QD_CONF_OPTIONS(DESC_)};

#define N_DESCS (sizeof(descs) / sizeof(descs[0]))

static const struct desc *find(const char *key)
{
    for (size_t i = 0; i < N_DESCS; i++)
        if (strcmp(descs[i].key, key) == 0)
            return &descs[i];
    return NULL;
}

bool qd_conf_known(const char *key)
{
    return find(key) != NULL;
}

static int set(struct qd_conf *c, const struct desc *d, const char *value, char *err, size_t errlen)
{
    char *p = (char *)c + d->off, *end;
    unsigned long v;

    if (d->kind == K_S) {
        if (strlen(value) >= 256) {
            snprintf(err, errlen, "%s: longer than 255 bytes", d->key);
            return -ERANGE;
        }
        strcpy(p, value);
        return 0;
    }
    errno = 0;
    v = strtoul(value, &end, d->kind == K_O ? 8 : 10);
    if (!*value || *end || errno || value[0] == '-') {
        snprintf(err, errlen, "%s: '%s' is not %s", d->key, value,
                 d->kind == K_O ? "an octal mode" : "a non-negative integer");
        return -EINVAL;
    }
    if (v < d->lo || v > d->hi) {
        snprintf(err, errlen, "%s: %lu is outside [%lu, %lu]", d->key, v, d->lo, d->hi);
        return -ERANGE;
    }
    memcpy(p, &(uint32_t){(uint32_t)v}, sizeof(uint32_t));
    return 0;
}

void qd_conf_defaults(struct qd_conf *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_DESCS; i++)
        if (set(c, &descs[i], descs[i].def, err, sizeof(err)) < 0)
            abort(); /* the table's own defaults are valid (a unit test checks it too) */
}

int qd_conf_set(struct qd_conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct desc *d = find(key);

    if (!d) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -EINVAL;
    }
    return set(c, d, value, err, errlen);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

int qd_conf_load(struct qd_conf *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char line[1024], msg[256];
    unsigned lineno = 0;
    int r = 0;

    if (!f) {
        r = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return r;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%u: line longer than %zu bytes", path, lineno,
                     sizeof(line) - 2);
            r = -EINVAL;
            break;
        }
        s = trim(line);
        if (!*s || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
            r = -EINVAL;
            break;
        }
        *eq = '\0';
        r = qd_conf_set(c, trim(s), trim(eq + 1), msg, sizeof(msg));
        if (r < 0) {
            snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
            break;
        }
    }
    fclose(f);
    return r;
}

static int default_dir(char *out, const char *env, const char *home_rel, const char *root_dir,
                       const char *leaf)
{
    const char *base = getenv(env), *home = getenv("HOME");
    int n;

    if (geteuid() == 0)
        n = snprintf(out, 256, "%s%s", root_dir, leaf);
    else if (base && base[0] == '/')
        n = snprintf(out, 256, "%s/qtomo%s", base, leaf);
    else if (home && home[0] == '/' && home_rel)
        n = snprintf(out, 256, "%s/%s/qtomo%s", home, home_rel, leaf);
    else
        n = snprintf(out, 256, "/tmp/qtomo-%u%s", (unsigned)geteuid(), leaf);
    return n > 0 && n < 256 ? 0 : -ENAMETOOLONG;
}

int qd_conf_finish(struct qd_conf *c, char *err, size_t errlen)
{
    if (!c->socket[0] &&
        default_dir(c->socket, "XDG_RUNTIME_DIR", NULL, "/run/qtomo", "/qtomod.sock") < 0) {
        snprintf(err, errlen, "socket: default path too long");
        return -ENAMETOOLONG;
    }
    if (!c->cache_dir[0] &&
        default_dir(c->cache_dir, "XDG_CACHE_HOME", ".cache", "/var/cache/qtomo", "") < 0) {
        snprintf(err, errlen, "cache-dir: default path too long");
        return -ENAMETOOLONG;
    }
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        c->workers = n > 0 ? (uint32_t)(n < 256 ? n : 256) : 1;
    }
    if (c->max_sample_mb == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        uint64_t mb = pages > 0 && psz > 0 ? ((uint64_t)pages * (uint64_t)psz) >> 20 : 4096;

        mb /= (uint64_t)c->workers + c->interactive_workers;
        c->max_sample_mb = (uint32_t)(mb < 1 ? 1 : mb > (1u << 24) ? 1u << 24 : mb);
    }
    if (c->max_item_ms < c->item_timeout_ms) {
        snprintf(err, errlen, "item-timeout-ms (%u) exceeds max-item-ms (%u)", c->item_timeout_ms,
                 c->max_item_ms);
        return -EINVAL;
    }
    return 0;
}

int qd_conf_frame_advice(const struct qd_conf *c, char *buf, size_t len)
{
    static const enum qt_design_kind kinds[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB, QT_DESIGN_PAULI};
    size_t best_m = 0, best_d = 0;
    enum qt_design_kind best_k = QT_DESIGN_NOPOVM;

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (size_t d = 2; d <= c->max_dim && d <= QT_DESIGN_MAX_D; d++) {
            size_t m = qt_design_outcomes(kinds[k], d);

            if (m > best_m) {
                best_m = m;
                best_d = d;
                best_k = kinds[k];
            }
        }
    uint64_t need = 8 * (uint64_t)best_m + (64u << 10);
    if (need <= c->max_frame)
        return 0;
    snprintf(buf, len,
             "max-frame %u cannot hold one %s sample at d = %zu (%zu values): it needs at least "
             "%llu; such samples will be refused",
             c->max_frame, qt_design_kind_name(best_k), best_d, best_m, (unsigned long long)need);
    return 1;
}

void qd_conf_dump(const struct qd_conf *c, FILE *out)
{
    for (size_t i = 0; i < N_DESCS; i++) {
        const char *p = (const char *)c + descs[i].off;
        uint32_t v;

        if (descs[i].kind == K_S) {
            fprintf(out, "%s = %s\n", descs[i].key, p);
            continue;
        }
        memcpy(&v, p, sizeof(v));
        fprintf(out, descs[i].kind == K_O ? "%s = %04o\n" : "%s = %u\n", descs[i].key, v);
    }
}

void qd_conf_help(FILE *out)
{
    for (size_t i = 0; i < N_DESCS; i++) {
        char arg[64];

        snprintf(arg, sizeof(arg), "--%s %s", descs[i].key,
                 descs[i].kind == K_S   ? "S"
                 : descs[i].kind == K_O ? "MODE"
                                        : "N");
        fprintf(out, "  %-28s %s", arg, descs[i].help);
        if (descs[i].def[0])
            fprintf(out, " [%s]", descs[i].def);
        fputc('\n', out);
    }
}

/* Roff-escapes text for a man page. */
static void roff(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void qd_conf_man(FILE *out, bool cmdline)
{
    for (size_t i = 0; i < N_DESCS; i++) {
        fputs(".TP\n\\fB", out);
        if (cmdline)
            fputs("\\-\\-", out);
        roff(out, descs[i].key);
        fputs(cmdline ? "\\fR \\fI" : "\\fR = \\fI", out);
        fputs(descs[i].kind == K_S ? "TEXT" : descs[i].kind == K_O ? "MODE" : "N", out);
        fputs("\\fR\n", out);
        roff(out, descs[i].help);
        fputc('.', out);
        if (descs[i].def[0]) {
            fputs(" Default: ", out);
            roff(out, descs[i].def);
            fputs(".", out);
        }
        if (descs[i].kind == K_U)
            fprintf(out, " Range: %lu to %lu.", descs[i].lo, descs[i].hi);
        fputc('\n', out);
    }
}

/* Applies every --key VALUE of argv to c (the command line overrides the file). */
int qd_conf_apply_args(struct qd_conf *c, int argc, char **argv, bool strict)
{
    char err[256];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--worker") == 0 || strcmp(a, "--dump-config") == 0 ||
            strcmp(a, "--version") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            continue;
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || !qd_conf_known(a + 2)) {
            if (strict)
                fprintf(stderr, "qtomod: unknown argument '%s' (see qtomod --help)\n", a);
            return -EINVAL;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "qtomod: %s needs a value\n", a);
            return -EINVAL;
        }
        if (qd_conf_set(c, a + 2, argv[++i], err, sizeof(err)) < 0) {
            fprintf(stderr, "qtomod: %s\n", err);
            return -EINVAL;
        }
    }
    return 0;
}

/* Builds the configuration: defaults, the file, then the command line. */
int qd_conf_build(struct qd_conf *c, const char *path, int argc, char **argv, char *err,
                  size_t errlen)
{
    int r;

    qd_conf_defaults(c);
    if (path) {
        r = qd_conf_load(c, path, err, errlen);
        if (r < 0)
            return r;
    } else {
        r = qd_conf_load(c, QD_CONF_DEFAULT_PATH, err, errlen);
        if (r < 0 && r != -ENOENT)
            return r;
    }
    if (qd_conf_apply_args(c, argc, argv, false) < 0) {
        snprintf(err, errlen, "invalid command line");
        return -EINVAL;
    }
    return qd_conf_finish(c, err, errlen);
}

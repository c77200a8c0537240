/* The files of `qtomoctl reconstruct -o DIR`: crash-safe whole-file writes, the input's
 * SHA-256 (nettle) and --resume's scan of records.jsonl (jansson). summary.csv is
 * recon_summary.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/qt_json.h"
#include "num/qt_optdesc.h"
#include "recon.h"

void qctl_iso_now(char buf[40])
{
    struct timespec ts;
    struct tm tm;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    (void)gmtime_r(&ts.tv_sec, &tm);
    (void)strftime(buf, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int qctl_sha256_file(const char *path, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t dig[SHA256_DIGEST_SIZE], buf[65536];
    ssize_t n;
    int fd;

    hex[0] = '\0';
    if (strcmp(path, "-") == 0)
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    sha256_init(&ctx);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            (void)close(fd);
            return r;
        }
        sha256_update(&ctx, (size_t)n, buf);
    }
    (void)close(fd);
    sha256_digest(&ctx, sizeof(dig), dig);
    for (size_t i = 0; i < sizeof(dig); i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return 0;
}

int qctl_atomic_open(struct qctl_atomic *a, const char *dir, const char *name)
{
    *a = (struct qctl_atomic){.fd = -1};
    (void)snprintf(a->tmp, sizeof(a->tmp), "%s/.%s.tmp", dir, name);
    (void)snprintf(a->dst, sizeof(a->dst), "%s/%s", dir, name);
    (void)snprintf(a->dir, sizeof(a->dir), "%s", dir);
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (a->fd < 0) {
        int r = -errno;

        qctl_err("cannot write '%s': %s", a->tmp, strerror(errno));
        return r;
    }
    return 0;
}

void qctl_atomic_write(struct qctl_atomic *a, const void *data, size_t len)
{
    const char *p = data;

    for (size_t off = 0; off < len && a->err == 0;) {
        ssize_t n = write(a->fd, p + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            a->err = n < 0 ? -errno : -EIO; /* 0 for a regular file: never, but no endless loop */
        else
            off += (size_t)n;
    }
    a->written += len;
    /* Start the disk writes now and then, so that the fsync at the end waits only for the
     * last of them. Advice: errors show at the fsync. */
    if (a->err == 0 && a->written - a->synced >= QCTL_ATOMIC_WRITEBACK) {
        (void)sync_file_range(a->fd, (off_t)a->synced, (off_t)(a->written - a->synced),
                              SYNC_FILE_RANGE_WRITE);
        a->synced = a->written;
    }
}

int qctl_atomic_commit(struct qctl_atomic *a, int err)
{
    int r = err ? err : a->err, dfd;

    if (r == 0 && fsync(a->fd) != 0)
        r = -errno;
    if (close(a->fd) != 0 && r == 0)
        r = -errno;
    a->fd = -1;
    if (r == 0 && rename(a->tmp, a->dst) != 0)
        r = -errno;
    if (r < 0) {
        if (!err) /* the caller's own error is the caller's to print */
            qctl_err("cannot write '%s': %s", a->dst, strerror(-r));
        (void)unlink(a->tmp);
        return r;
    }
    dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        (void)close(dfd);
    }
    return 0;
}

int qctl_write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
    struct qctl_atomic a;
    int r = qctl_atomic_open(&a, dir, name);

    if (r < 0)
        return r;
    qctl_atomic_write(&a, data, len);
    return qctl_atomic_commit(&a, 0);
}

char *qctl_options_json(const struct recon *rc)
{
    struct qt_jw w;
    char *out = NULL;

    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "design");
    qt_jw_str(&w, rc->design_name);
    if (rc->design_id[0]) {
        qt_jw_key(&w, "design_id");
        qt_jw_str(&w, rc->design_id);
    }
    if (rc->detector_file) { /* only with --detector, so that older runs still --resume */
        qt_jw_key(&w, "detector");
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "path");
        qt_jw_str(&w, rc->detector_file);
        qt_jw_key(&w, "sha256");
        qt_jw_str(&w, rc->detector_sha256);
        qt_jw_key(&w, "id");
        if (rc->detector_id[0])
            qt_jw_str(&w, rc->detector_id);
        else
            qt_jw_null(&w); /* the identity model: no detector */
        qt_jw_obj_end(&w);
    }
    qt_jw_key(&w, "dim");
    qt_jw_int(&w, (int64_t)rc->d);
    qt_jw_key(&w, "columns");
    qt_jw_arr_begin(&w);
    qt_jw_int(&w, (int64_t)rc->first + 1);
    qt_jw_int(&w, (int64_t)rc->last + 1);
    qt_jw_arr_end(&w);
    qt_jw_key(&w, "methods");
    qt_jw_arr_begin(&w);
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (rc->methods[m])
            qt_jw_str(&w, qt_method_name((enum qt_method)m));
    qt_jw_arr_end(&w);
    for (size_t i = 0; i < qt_optdesc_count; i++) {
        const struct qt_optdesc *e = &qt_optdescs[i];
        double v = qt_optdesc_get(e, &rc->opts);

        qt_jw_key(&w, e->name);
        if (e->type == QT_OPT_FLAG)
            qt_jw_bool(&w, v != 0.0);
        else
            qt_jw_num(&w, v);
    }
    qt_jw_key(&w, "physical");
    qt_jw_str(&w, rc->opts.physical == QT_PHYS_SMOLIN ? "smolin" : "clip");
    qt_jw_key(&w, "bell");
    qt_jw_bool(&w, rc->bell);
    if (rc->spectral) { /* only when on, so that older runs still --resume */
        qt_jw_key(&w, "spectral");
        qt_jw_bool(&w, true);
    }
    if (rc->boot.resamples) {
        qt_jw_key(&w, "bootstrap");
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "resamples");
        qt_jw_int(&w, rc->boot.resamples);
        qt_jw_key(&w, "kind");
        qt_jw_str(&w, qt_resample_kind_name(rc->boot.kind));
        qt_jw_key(&w, "seed");
        qt_jw_int(&w, (int64_t)rc->boot.seed);
        qt_jw_key(&w, "confidence");
        qt_jw_num(&w, rc->boot.confidence);
        qt_jw_key(&w, "shots");
        qt_jw_int(&w, (int64_t)rc->boot.shots);
        qt_jw_obj_end(&w);
    }
    qt_jw_key(&w, "target");
    if (rc->target_profile) {
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "profile");
        qt_jw_str(&w, rc->target_profile);
        qt_jw_obj_end(&w);
    } else if (rc->target_file) {
        char hex[65];

        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "path");
        qt_jw_str(&w, rc->target_file);
        qt_jw_key(&w, "sha256");
        qt_jw_str(&w, qctl_sha256_file(rc->target_file, hex) == 0 ? hex : "");
        qt_jw_obj_end(&w);
    } else {
        qt_jw_null(&w);
    }
    qt_jw_obj_end(&w);
    if (w.err == 0)
        out = strdup(w.buf);
    qt_jw_done(&w);
    return out;
}

static json_t *load_json(const char *dir, const char *name)
{
    char path[4096];

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

int qctl_resume_seed(const char *dir, uint64_t *seed)
{
    char path[4096];
    json_t *run, *v;
    int r = -ENOENT;

    (void)snprintf(path, sizeof(path), "%s/run.json", dir);
    run = json_load_file(path, 0, NULL);
    v = json_object_get(json_object_get(json_object_get(run, "options"), "bootstrap"), "seed");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *seed = (uint64_t)json_integer_value(v);
        r = 0;
    }
    json_decref(run);
    return r;
}

int qctl_resume_scan(const struct recon *rc, const char *options_json, size_t *ret_done)
{
    char path[4096], *line = NULL;
    size_t cap = 0, done = 0, count = 0, cur = SIZE_MAX;
    off_t keep = 0, pos = 0;
    json_t *run = load_json(rc->outdir, "run.json"), *opts = NULL;
    ssize_t n;
    FILE *f;
    int ret = 0;

    *ret_done = 0;
    (void)snprintf(path, sizeof(path), "%s/records.jsonl", rc->outdir);
    f = fopen(path, "r+e");
    if (!f) {
        json_decref(run);
        if (errno == ENOENT)
            return 0; /* nothing to resume: a fresh run */
        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return QCTL_EXIT_USAGE;
    }
    /* The same input and options, or the records would mix two different runs. A run writes
     * run.json before its first record, so records without it cannot be checked. */
    if (!run) {
        int c = fgetc(f);

        if (c != EOF) {
            qctl_err("'%s' has records but no readable run.json: cannot check that they belong "
                     "to this input and these options",
                     rc->outdir);
            ret = QCTL_EXIT_USAGE;
            goto out;
        }
        rewind(f);
    } else {
        const char *sha = json_string_value(json_object_get(run, "input_sha256"));

        opts = json_loads(options_json, 0, NULL);
        if ((sha && *sha && rc->input_sha256[0] && strcmp(sha, rc->input_sha256) != 0) ||
            (opts && !json_equal(opts, json_object_get(run, "options")))) {
            qctl_err("'%s' holds a run of %s; --resume needs the same input and options "
                     "(see %s/run.json)",
                     rc->outdir, sha && strcmp(sha, rc->input_sha256) != 0
                                     ? "another input file" : "other options",
                     rc->outdir);
            ret = QCTL_EXIT_USAGE;
            goto out;
        }
    }
    /* Records are written in sample order, whole samples at a time; trust the longest prefix
     * of complete lines that holds every method of each sample. */
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *rec;
        json_int_t s;

        if (line[n - 1] != '\n')
            break; /* cut short by the interruption */
        rec = json_loadb(line, (size_t)n, 0, NULL);
        if (!rec || !json_is_integer(json_object_get(rec, "sample"))) {
            json_decref(rec);
            break;
        }
        s = json_integer_value(json_object_get(rec, "sample"));
        json_decref(rec);
        if (cur != SIZE_MAX && s >= 0 && (size_t)s == cur && count < rc->n_methods) {
            count++;
        } else if ((cur == SIZE_MAX && s == 0) ||
                   (cur != SIZE_MAX && s >= 0 && (size_t)s == cur + 1 &&
                    count == rc->n_methods)) {
            cur = (size_t)s;
            count = 1;
        } else {
            break;
        }
        pos += n;
        if (count == rc->n_methods) {
            done = cur + 1;
            keep = pos;
        }
    }
    if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0) {
        qctl_err("cannot truncate '%s': %s", path, strerror(errno));
        ret = QCTL_EXIT_FAILED;
        goto out;
    }
    *ret_done = done;
out:
    free(line);
    (void)fclose(f);
    json_decref(opts);
    json_decref(run);
    return ret;
}

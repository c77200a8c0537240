/* qtomo-mpi: qtomoctl reconstruct over MPI ranks, for clusters (README "Clusters").
 *
 *   mpirun -n R qtomo-mpi reconstruct FILE -o DIR [options of qtomoctl reconstruct]
 *
 * Rank 0 runs qtomoctl's reconstruct command itself (cmd_reconstruct.c: options, input,
 * --resume, the output writers) with a runner that hands chunks of samples out to the ranks
 * (self-scheduling) and writes their records in sample order. Every rank estimates exactly as
 * qtomoctl --local does (qctl_recon_chunk), so the files are the same bytes. Results travel as
 * msgpack result and uncertainty maps (proto/, the daemon's encoding: doubles bit for bit).
 *
 * Messages (MPI_BYTE, rank 0 <-> rank r):
 * Before them rank 0 broadcasts struct hdr: the run's size and seed and what it resolved
 * (struct run_digest); a rank that resolves anything else ends the job (MPI_Abort).
 *   TAG_READY  r -> 0  int32 0: the rank resolved the run as rank 0 did
 *   TAG_WORK   0 -> r  u64 s0, n, m, lo, hi; n bytes "column empty" (padded to 8); m x n
 *                      doubles: the samples s0 + [lo, hi) of the batch s0 + [0, n)
 *   TAG_RESULT r -> 0  msgpack [seconds, [[sample, ms, ok bits, failed bits, bin purities,
 *                      bin records text, bin summary.csv rows]...]]: the records formatted
 *   TAG_STOP   0 -> r  nothing more to do */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "qp.h"
#include "recon.h"

enum { TAG_READY = 1, TAG_WORK, TAG_RESULT, TAG_STOP };

#define QUEUE_DEPTH  2    /* chunks a rank holds: one it computes, one waiting */
#define CHUNK_MAX    4096 /* samples */
#define CHUNK_TARGET 0.25 /* seconds of work per chunk */

/* What a rank resolved from its own copies of the files and its own binary: rank 0 sends its
 * own, every rank compares, so that a node with a different target, design or detector file,
 * or another version of qtomo-mpi, cannot change records without a word. */
struct run_digest {
    char version[32];
    uint64_t args[2]; /* XXH3-128 of the reconstruct arguments */
    char design_id[64];
    uint64_t d, m;
    char detector_id[40];
    uint64_t target[2]; /* XXH3-128 of the d x d target, or 0 */
};

/* What rank 0 tells the others before the batch: go (1), or exit quietly (0). */
struct hdr {
    uint64_t go, rows, seed, has_seed;
    uint64_t first; /* the selection's first column (records name their column) */
    struct run_digest dig;
};

static double now_s(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: mpirun -n R qtomo-mpi [-q|-v] reconstruct FILE -o DIR [options]\n"
                 "       qtomo-mpi --help | --version | --gen-man\n\n"
                 "Reconstruct every sample of FILE over R MPI ranks: the batch of\n"
                 "`qtomoctl reconstruct --local`, with the same options and the same bytes\n"
                 "in records.jsonl and summary.csv, the same data in results.h5 (run.json\n"
                 "says \"mode\": \"mpi\").\n"
                 "Rank 0 reads FILE, writes every output and hands chunks of samples to the\n"
                 "ranks as they ask for more (it computes too); a chunk is sized to about\n"
                 "0.25 s of work from the measured time per sample, and shrinks near the\n"
                 "end; every rank inverts the same 64-sample batches as --local, so the\n"
                 "bits are --local's whatever the chunks. The ranks format the records;\n"
                 "rank 0 files them in sample order.\n"
                 "Each rank runs OpenBLAS on one thread and maps a built-in design from the\n"
                 "projector cache of its node (built once per node, under the cache's lock;\n"
                 "custom and detector designs are built in memory by every rank).\n\n"
                 "A rank that dies ends the job (MPI's default): run the same command with\n"
                 "--resume to finish it. --live, --local and the daemon options (-s, --timeout)\n"
                 "do not apply.\n\n"
                 "  -q, --quiet    no summary on stderr\n"
                 "  -v, --verbose  progress notes, and rank 0's dispatch statistics at the end\n"
                 "  --cache-dir DIR  the projector cache (default: $TMPDIR/qtomo-mpi-cache-UID,\n"
                 "                 /tmp without TMPDIR): a directory local to each node\n"
                 "  --no-cache     every rank builds the design in memory\n"
                 "  --json         one JSON record per line on stdout (without -o)\n\n"
                 "The options of qtomoctl reconstruct follow (--local and --live excepted).\n\n");
    qctl_reconstruct_usage(out);
    fprintf(out, "\nSlurm: packaging/slurm/qtomo-mpi.sbatch (installed under\n"
                 "/usr/share/doc/qtomo-mpi/examples).\n\n"
                 "Exit status: 0 every sample succeeded, 1 some failed, 2 bad invocation or\n"
                 "input; mpirun's own status when a rank was killed.\n");
}

/* qtomo-mpi(1): the usage as a man page (the build installs it). */
static void gen_man(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    printf(".TH QTOMO-MPI 1 \"\" \"qtomo %s\" \"User Commands\"\n"
           ".SH NAME\nqtomo-mpi \\- quantum state reconstruction of a batch over MPI ranks\n"
           ".SH SYNOPSIS\n.B mpirun \\-n \\fIR\\fR qtomo-mpi\n[\\fB\\-q\\fR|\\fB\\-v\\fR] "
           "\\fBreconstruct\\fR \\fIFILE\\fR \\fB\\-o\\fR \\fIDIR\\fR [\\fIOPTIONS\\fR]\n"
           ".SH DESCRIPTION\n.nf\n",
           QTOMO_VERSION);
    if (!f)
        return;
    usage(f);
    fclose(f);
    for (char *p = buf; p && *p; p++) {
        if (*p == '\\')
            fputs("\\e", stdout);
        else if ((*p == '.' || *p == '\'') && (p == buf || p[-1] == '\n'))
            printf("\\&%c", *p);
        else if (*p == '-')
            fputs("\\-", stdout);
        else
            putchar(*p);
    }
    printf(".fi\n.SH SEE ALSO\n\\fBqtomoctl\\fR(1), \\fBmpirun\\fR(1), \\fBsbatch\\fR(1)\n");
    free(buf);
}

/* Ends the whole job (every rank) with code. */
static void abort_job(int code)
{
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, code);
}

static void hash128(const void *p, size_t len, uint64_t out[2])
{
    XXH128_hash_t h = XXH3_128bits(p, len);

    out[0] = h.low64, out[1] = h.high64;
}

static void run_digest(const struct recon *rc, int argc, char **argv, struct run_digest *dg)
{
    XXH3_state_t *st = XXH3_createState();
    XXH128_hash_t h = {0, 0};

    memset(dg, 0, sizeof(*dg));
    (void)snprintf(dg->version, sizeof(dg->version), "%s", QTOMO_VERSION);
    if (st) {
        (void)XXH3_128bits_reset(st);
        for (int i = 0; i < argc; i++)
            (void)XXH3_128bits_update(st, argv[i], strlen(argv[i]) + 1);
        h = XXH3_128bits_digest(st);
        XXH3_freeState(st);
    }
    dg->args[0] = h.low64, dg->args[1] = h.high64;
    (void)snprintf(dg->design_id, sizeof(dg->design_id), "%s", rc->des->id);
    dg->d = rc->des->d;
    dg->m = rc->des->m;
    (void)snprintf(dg->detector_id, sizeof(dg->detector_id), "%s", rc->detector_id);
    if (rc->target)
        hash128(rc->target, rc->d * rc->d * sizeof(double complex), dg->target);
}

/* Whether a rank resolved the run as rank 0 did (root); if not, prints what differs. */
static bool digest_same(int rank, const struct run_digest *root, const struct run_digest *mine)
{
    if (strncmp(root->version, mine->version, sizeof(root->version)) != 0) {
        qctl_err("rank %d runs qtomo-mpi %.*s but rank 0 runs %.*s: install one version on "
                 "every node",
                 rank, (int)sizeof(mine->version), mine->version, (int)sizeof(root->version),
                 root->version);
        return false;
    }
    if (memcmp(root->args, mine->args, sizeof(root->args)) != 0) {
        qctl_err("rank %d was started with other arguments than rank 0", rank);
        return false;
    }
    if (strncmp(root->design_id, mine->design_id, sizeof(root->design_id)) != 0 ||
        root->d != mine->d || root->m != mine->m) {
        qctl_err("rank %d resolved the design as %.*s (d = %llu, %llu outcomes) but rank 0 as "
                 "%.*s (d = %llu, %llu outcomes): the design or detector file differs between "
                 "nodes",
                 rank, (int)sizeof(mine->design_id), mine->design_id, (unsigned long long)mine->d,
                 (unsigned long long)mine->m, (int)sizeof(root->design_id), root->design_id,
                 (unsigned long long)root->d, (unsigned long long)root->m);
        return false;
    }
    if (strncmp(root->detector_id, mine->detector_id, sizeof(root->detector_id)) != 0) {
        qctl_err("rank %d read another detector model than rank 0 (%.*s, rank 0 %.*s): the "
                 "--detector file differs between nodes",
                 rank, (int)sizeof(mine->detector_id),
                 mine->detector_id[0] ? mine->detector_id : "none", (int)sizeof(root->detector_id),
                 root->detector_id[0] ? root->detector_id : "none");
        return false;
    }
    if (memcmp(root->target, mine->target, sizeof(root->target)) != 0) {
        qctl_err("rank %d read another target state than rank 0: the --target file differs "
                 "between nodes",
                 rank);
        return false;
    }
    return true;
}

/* ---- the projector cache ---- */

/* The projector cache's default directory: node-local scratch ($TMPDIR, which Slurm sites
 * point at a node's local disk, else /tmp), one per user. */
static const char *default_cache_dir(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");

    (void)snprintf(buf, len, "%s/qtomo-mpi-cache-%u", tmp && *tmp == '/' ? tmp : "/tmp",
                   (unsigned)getuid());
    return buf;
}

static void on_cache_event(void *ud, const struct qt_cache_event *ev)
{
    const struct qctl_global *g = ud;

    if (ev->kind == QT_CACHE_QUARANTINED)
        qctl_err("projector cache: %s was damaged (%s); moved aside to %s and built again",
                 ev->name, ev->reason, ev->path);
    else if (ev->kind == QT_CACHE_BUILT)
        qctl_info(g, "projector cache: built %s (%llu bytes) in %.2f s", ev->name,
                  (unsigned long long)ev->bytes, ev->seconds);
}

/* Opens the cache in dir (NULL: none). A cache that cannot be opened is not fatal: the rank
 * builds its designs in memory, as --no-cache, and says so. */
static struct qt_cache *open_cache(struct qctl_global *g, const char *dir)
{
    struct qt_cache_config cfg = {.on_event = on_cache_event, .userdata = g};
    struct qt_cache *c = NULL;
    struct qt_diag dg = {0};
    int r;

    if (!dir)
        return NULL;
    r = qt_cache_open(dir, &cfg, &c, &dg);
    if (r < 0) {
        qctl_err("projector cache '%s': %s; building designs in memory", dir,
                 dg.msg[0] ? dg.msg : qt_strerror(r));
        return NULL;
    }
    return c;
}

/* After computing from a mapped design: the mapping still holds what was verified (a cache
 * file truncated or rewritten under it may have given wrong numbers: nothing of them leaves). */
static void check_mapping(const struct recon *rc, int rank)
{
    if (rc->des_map && qt_cache_map_changed(rc->des_map)) {
        qctl_err("rank %d: projector cache file %s changed while in use; ending the job (run it "
                 "again with --resume)",
                 rank, qt_cache_map_name(rc->des_map));
        abort_job(QCTL_EXIT_FAILED);
    }
}

/* ---- the ranks that compute (rank > 0) ---- */

struct work {
    uint64_t s0, n, m, lo, hi; /* the samples s0 + [lo, hi) of the columns s0 + [0, n) */
    bool *empty;
    double *Y;
};

/* A TAG_WORK message of the run whose design has m outcomes. */
static int work_decode(const char *buf, size_t len, size_t m, struct work *w)
{
    uint64_t h[5];
    size_t pad;

    if (len < sizeof(h))
        return -EPROTO;
    memcpy(h, buf, sizeof(h));
    w->s0 = h[0], w->n = h[1], w->m = h[2], w->lo = h[3], w->hi = h[4];
    /* n and m are bounded before their product is formed */
    if (w->n == 0 || w->n > CHUNK_MAX || w->m != m || m > SIZE_MAX / sizeof(double) / CHUNK_MAX ||
        w->lo >= w->hi || w->hi > w->n)
        return -EPROTO;
    pad = (w->n + 7) / 8 * 8;
    if (len != sizeof(h) + pad + w->n * w->m * sizeof(double))
        return -EPROTO;
    w->empty = malloc(w->n * sizeof(bool));
    w->Y = malloc(w->n * w->m * sizeof(double));
    if (!w->empty || !w->Y)
        return -ENOMEM;
    for (size_t i = 0; i < w->n; i++)
        w->empty[i] = buf[sizeof(h) + i] != 0;
    memcpy(w->Y, buf + sizeof(h) + pad, w->n * w->m * sizeof(double));
    return 0;
}

static void work_free(struct work *w)
{
    free(w->empty);
    free(w->Y);
}

/* Receives one message from rank 0 (blocking or not). Returns its tag, 0 when none waits
 * (nonblocking), with the bytes in *buf (malloc'd). */
static int recv_any(int src, bool block, char **buf, int *len)
{
    MPI_Status st;
    int flag = 1;

    if (block)
        MPI_Probe(src, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    else
        MPI_Iprobe(src, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag)
        return 0;
    MPI_Get_count(&st, MPI_BYTE, len);
    *buf = malloc(*len ? (size_t)*len : 1);
    if (!*buf) {
        qctl_err("out of memory receiving %d bytes from rank %d", *len, st.MPI_SOURCE);
        MPI_Abort(MPI_COMM_WORLD, QCTL_EXIT_FAILED);
    }
    MPI_Recv(*buf, *len, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return st.MPI_TAG | (st.MPI_SOURCE << 8);
}

/* The ranks format their records (the output stage's text: records.jsonl lines, summary.csv
 * rows) so that rank 0 only files them in order: formatting is most of the cost of writing a
 * record (README "Clusters", the efficiency model). */
struct pack_ctx {
    msgpack_packer pk;
    const struct recon *rc;
    struct qt_jw jw;
    struct qt_fmt_memo memo; /* jw's */
};

static void pack_bin(msgpack_packer *pk, const void *p, size_t len)
{
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, p, len);
}

/* [sample, ms, ok bits, failed bits, bin purities (_QT_METHOD_MAX doubles), bin text,
 *  bin summary rows] */
static int pack_sink(void *ud, size_t sample, const struct qt_result *const *res,
                     const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    struct pack_ctx *pc = ud;
    struct qctl_fmt f;
    int r = qctl_out_format(pc->rc, &pc->jw, sample, res, unc, n_res, &f);

    if (r < 0)
        return r;
    if (f.rows.err) { /* rank 0 could not tell rows were lost: fail the chunk instead */
        qctl_fmt_free(&f);
        qctl_err("out of memory formatting summary rows");
        return -ENOMEM;
    }
    msgpack_pack_array(&pc->pk, 7);
    msgpack_pack_uint64(&pc->pk, sample);
    msgpack_pack_double(&pc->pk, ms);
    msgpack_pack_uint32(&pc->pk, f.ok);
    msgpack_pack_uint32(&pc->pk, f.failed);
    pack_bin(&pc->pk, f.pur, sizeof(f.pur)); /* the same machine type on every rank */
    pack_bin(&pc->pk, f.text, f.len);
    pack_bin(&pc->pk, f.rows.p, f.rows.len);
    qctl_fmt_free(&f);
    return 0;
}

/* Holds at most QUEUE_DEPTH chunks: computes one while the next waits in MPI's buffers. The
 * results go out without waiting for rank 0 to take them (two buffers in turn): rank 0 reads
 * them between its own samples. */
static int compute_rank(struct recon *rc, int rank)
{
    struct qctl_chunk_run cr;
    msgpack_sbuffer sbs[2];
    MPI_Request sreq[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    struct pack_ctx pc = {.rc = rc};
    int cur = 0;
    struct work q[QUEUE_DEPTH + 1];
    size_t nq = 0;
    bool stop = false;
    int ret = 0;

    if (qctl_chunk_run_init(&cr, rc->des->d) < 0)
        return -1;
    qt_jw_init(&pc.jw);
    memset(&pc.memo, 0, sizeof(pc.memo));
    pc.jw.memo = &pc.memo;
    msgpack_sbuffer_init(&sbs[0]);
    msgpack_sbuffer_init(&sbs[1]);
    for (;;) {
        msgpack_sbuffer *sb = &sbs[cur];
        char *buf = NULL;
        int len = 0, t;

        /* Take what rank 0 sent; wait only when there is nothing to compute. */
        while (!stop && (t = recv_any(0, nq == 0, &buf, &len)) != 0) {
            if ((t & 0xff) == TAG_STOP) {
                stop = true;
            } else if ((t & 0xff) != TAG_WORK || nq == QUEUE_DEPTH ||
                       work_decode(buf, (size_t)len, rc->des->m, &q[nq]) < 0) {
                qctl_err("rank 0 sent a malformed or unexpected message (tag %d, %d bytes)",
                         t & 0xff, len);
                MPI_Abort(MPI_COMM_WORLD, QCTL_EXIT_FAILED);
            } else {
                nq++;
            }
            free(buf);
            buf = NULL;
        }
        if (nq == 0)
            break; /* stopped, nothing left */
        double t0 = now_s();
        MPI_Wait(&sreq[cur], MPI_STATUS_IGNORE); /* this buffer's last send */
        msgpack_sbuffer_clear(sb);
        msgpack_packer_init(&pc.pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pc.pk, 2);
        /* the chunk's seconds come first: packed after the records, patched in below */
        msgpack_pack_double(&pc.pk, 0.0);
        msgpack_pack_array(&pc.pk, q[0].hi - q[0].lo);
        if (qctl_recon_chunk_part(rc, &cr, q[0].Y, q[0].s0, q[0].n, q[0].lo, q[0].hi, q[0].empty,
                                  pack_sink, &pc) < 0 ||
            sb->data == NULL) {
            qctl_err("cannot compute samples %llu-%llu (see above): ending the job",
                     (unsigned long long)(q[0].s0 + q[0].lo + 1),
                     (unsigned long long)(q[0].s0 + q[0].hi));
            MPI_Abort(MPI_COMM_WORLD, QCTL_EXIT_FAILED);
        }
        check_mapping(rc, rank);
        {
            /* [2-array][0xcb f64 big-endian] */
            double secs = now_s() - t0;
            uint64_t bits;

            memcpy(&bits, &secs, sizeof(bits));
            for (int b = 0; b < 8; b++)
                sb->data[2 + b] = (char)(bits >> (56 - 8 * b));
        }
        MPI_Isend(sb->data, (int)sb->size, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD, &sreq[cur]);
        cur ^= 1;
        work_free(&q[0]);
        memmove(q, q + 1, --nq * sizeof(q[0]));
    }
    MPI_Waitall(2, sreq, MPI_STATUSES_IGNORE);
    qt_jw_done(&pc.jw);
    msgpack_sbuffer_destroy(&sbs[0]);
    msgpack_sbuffer_destroy(&sbs[1]);
    qctl_chunk_run_done(&cr);
    return ret;
}

/* A rank that cannot resolve the run as rank 0 did ends the job at once (MPI_Abort): rank 0
 * may by then be waiting for ranks, or have stopped handing out work. */
static int rank_main(int argc, char **argv, bool json, int rank, struct qt_cache *cache)
{
    struct recon rc = {0};
    struct hdr h;
    struct run_digest mine;
    int32_t status = 0;
    int ret = 0;

    MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!h.go)
        return 0; /* rank 0 said why */
    if (qctl_recon_parse(argc, argv, &rc, json) != 0) {
        status = -1;
    } else {
        rc.local = true;
        rc.cache = cache;
        rc.first = (size_t)h.first;
        rc.boot.seed = h.seed;
        rc.boot.has_seed = h.has_seed != 0;
        if (qctl_recon_prepare_design(&rc, (size_t)h.rows) < 0 || !rc.des)
            status = -1;
    }
    if (status == 0) {
        run_digest(&rc, argc, argv, &mine);
        if (!digest_same(rank, &h.dig, &mine))
            status = -1;
    }
    if (status != 0) {
        qctl_err("rank %d could not set up the run as rank 0 did (see above): ending the job",
                 rank);
        abort_job(QCTL_EXIT_USAGE);
    }
    MPI_Send(&status, sizeof(status), MPI_BYTE, 0, TAG_READY, MPI_COMM_WORLD);
    ret = compute_rank(&rc, rank);
    qctl_recon_done(&rc);
    return ret < 0 ? QCTL_EXIT_FAILED : 0;
}

/* ---- rank 0 ---- */

struct pending_send {
    MPI_Request req;
    char *buf;
};

/* A chunk: the samples s0 + [lo, hi) of the columns s0 + [0, n). */
struct span {
    size_t s0, n, lo, hi;
};

struct root {
    const struct qctl_global *g;
    struct recon *rc;
    struct qctl_out *out;
    int argc; /* the reconstruct command's words (run_digest) */
    char **argv;
    int nranks;
    bool started;      /* the header went out */
    size_t start;      /* the first sample of this run (--resume: where it goes on) */
    size_t next, n;    /* next sample to hand out, the selection's size */
    int *queued;       /* [rank]: chunks handed out and not yet back */
    struct span *owed; /* [rank * QUEUE_DEPTH + i]: those chunks, oldest first */
    bool *ready;       /* [rank]: sent TAG_READY */
    int not_ready;
    struct pending_send *ps;
    size_t nps, cps;
    double sec_per_sample; /* measured; 0 = not yet */
    int err;
    /* statistics (-v) */
    size_t chunks, samples_remote, samples_root;
    uint64_t bytes_work, bytes_result;
    double t_write, t_dispatch;
    double t_file; /* the part of t_write spent filing other ranks' formatted records */
};

/* The next chunk, from ro->next: about CHUNK_TARGET seconds of work at the measured rate, at
 * most half a share of what is left per rank (so that near the end no rank waits on a long
 * chunk). --local inverts batches of QCTL_LOCAL_CHUNK samples from the run's start (with
 * --bootstrap, single samples), and a batch's size can change a column's last bits; so a chunk
 * is either whole batches, or part of one batch: then its columns are the whole batch's (the
 * linear inversion runs over all of them) and only the part is estimated and reported. Parts
 * are what lets expensive samples (seconds each) be spread over ranks to the last one. */
static struct span next_span(const struct root *ro)
{
    size_t unit = ro->rc->boot.resamples ? 1 : QCTL_LOCAL_CHUNK;
    size_t left = ro->n - ro->next, off = (ro->next - ro->start) % unit, k, tail;
    struct span sp;

    if (ro->sec_per_sample <= 0.0)
        k = QT_MIN(unit, (size_t)8); /* the first chunks measure: small, the time is unknown */
    else
        k = (size_t)fmin((double)CHUNK_MAX, fmax(1.0, CHUNK_TARGET / ro->sec_per_sample));
    tail = (left + 2 * (size_t)ro->nranks - 1) / (2 * (size_t)ro->nranks);
    k = QT_MIN(k, QT_MAX(tail, (size_t)1));
    /* one MPI message counts bytes in an int: whole batches only while they fit in half */
    k = QT_MIN(k, QT_MAX(unit, (size_t)(INT_MAX / 2) / (ro->rc->tab.rows * sizeof(double))));
    if (off == 0 && k >= unit) {
        k = QT_MIN(k / unit * unit, left);
        sp = (struct span){ro->next, k, 0, k};
    } else {
        sp.s0 = ro->next - off;
        sp.n = QT_MIN(unit, ro->n - sp.s0);
        sp.lo = off;
        sp.hi = QT_MIN(off + k, sp.n);
    }
    return sp;
}

static void send_work(struct root *ro, int rank)
{
    const struct qt_table *t = &ro->rc->tab;
    struct span sp = next_span(ro);
    size_t k = sp.n, m = t->rows, pad = (k + 7) / 8 * 8;
    uint64_t h[5] = {sp.s0, k, m, sp.lo, sp.hi};
    size_t len = sizeof(h) + pad + k * m * sizeof(double);
    size_t c0 = ro->rc->first + sp.s0;
    char *buf = len <= INT_MAX ? calloc(1, len) : NULL;

    if (!buf || (ro->nps == ro->cps &&
                 !(ro->ps = realloc(ro->ps, (ro->cps = ro->cps * 2 + 8) * sizeof(*ro->ps))))) {
        qctl_err("out of memory handing out samples");
        abort_job(QCTL_EXIT_FAILED);
    }
    memcpy(buf, h, sizeof(h));
    for (size_t i = 0; i < k; i++)
        buf[sizeof(h) + i] = (char)qt_table_col_empty(t, c0 + i);
    memcpy(buf + sizeof(h) + pad, t->v + m * c0, k * m * sizeof(double));
    ro->ps[ro->nps].buf = buf;
    MPI_Isend(buf, (int)len, MPI_BYTE, rank, TAG_WORK, MPI_COMM_WORLD, &ro->ps[ro->nps].req);
    ro->nps++;
    ro->next = sp.s0 + sp.hi;
    ro->owed[(size_t)rank * QUEUE_DEPTH + (size_t)ro->queued[rank]] = sp;
    ro->queued[rank]++;
    ro->chunks++;
    ro->bytes_work += len;
}

/* Frees the buffers of the sends that completed. */
static void reap_sends(struct root *ro)
{
    size_t j = 0;

    for (size_t i = 0; i < ro->nps; i++) {
        int done = 0;

        MPI_Test(&ro->ps[i].req, &done, MPI_STATUS_IGNORE);
        if (done)
            free(ro->ps[i].buf);
        else
            ro->ps[j++] = ro->ps[i];
    }
    ro->nps = j;
}

/* Keeps a rank's queue full: two chunks, or one near the end, where a waiting chunk could be
 * one that another rank would have finished sooner. */
static void top_up(struct root *ro, int rank)
{
    size_t unit = ro->rc->boot.resamples ? 1 : QCTL_LOCAL_CHUNK;

    while (!ro->err && !qctl_recon_interrupted() && ro->ready[rank] && ro->next < ro->n) {
        bool tail = ro->n - ro->next <= 2 * (size_t)ro->nranks * unit;

        if (ro->queued[rank] >= (tail ? 1 : QUEUE_DEPTH))
            break;
        send_work(ro, rank);
    }
}

static void note_time(struct root *ro, double secs, size_t n)
{
    double s = secs / (double)(n ? n : 1);

    ro->sec_per_sample = ro->sec_per_sample > 0.0 ? 0.7 * ro->sec_per_sample + 0.3 * s : s;
}

static int write_sample(struct root *ro, size_t sample, const struct qt_result *const *res,
                        const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    double t0 = now_s();
    int r = qctl_out_sample_unc(ro->out, sample, res, unc, n_res, ms);

    ro->t_write += now_s() - t0;
    if (r < 0)
        ro->err = r;
    return r;
}

/* One rank's chunk of formatted records: checks and files them. */
static void take_results(struct root *ro, int src, const char *buf, size_t len)
{
    msgpack_unpacked up;
    const msgpack_object *o, *a;
    struct qt_diag dg = {0};
    struct span sp;
    size_t off = 0;
    int r = QT_EPARSE;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        goto bad;
    o = &up.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_FLOAT64 ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
        goto bad;
    a = &o->via.array.ptr[1];
    /* the records of the oldest chunk this rank holds, every sample once and in order */
    sp = ro->owed[(size_t)src * QUEUE_DEPTH];
    if (a->via.array.size != sp.hi - sp.lo) {
        (void)snprintf(dg.msg, sizeof(dg.msg), "%u records for a chunk of %zu samples",
                       a->via.array.size, sp.hi - sp.lo);
        goto bad;
    }
    note_time(ro, o->via.array.ptr[0].via.f64, a->via.array.size);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *s = &a->via.array.ptr[i], *e;
        struct qctl_fmt f = {0};
        uint64_t sample;
        double t0;

        if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size != 7)
            goto bad;
        e = s->via.array.ptr;
        if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[1].type != MSGPACK_OBJECT_FLOAT64 ||
            e[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            e[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[4].type != MSGPACK_OBJECT_BIN ||
            e[5].type != MSGPACK_OBJECT_BIN || e[6].type != MSGPACK_OBJECT_BIN ||
            e[4].via.bin.size != sizeof(f.pur) || e[2].via.u64 >> _QT_METHOD_MAX ||
            e[3].via.u64 >> _QT_METHOD_MAX || e[5].via.bin.size == 0)
            goto bad;
        sample = e[0].via.u64;
        if (sample != sp.s0 + sp.lo + i) {
            (void)snprintf(dg.msg, sizeof(dg.msg), "record %u is of sample %llu, not %zu", i,
                           (unsigned long long)sample + 1, sp.s0 + sp.lo + i + 1);
            goto bad;
        }
        t0 = now_s();
        f.ok = (uint32_t)e[2].via.u64;
        f.failed = (uint32_t)e[3].via.u64;
        memcpy(f.pur, e[4].via.bin.ptr, sizeof(f.pur));
        f.len = e[5].via.bin.size;
        f.text = malloc(f.len);
        if (f.text)
            memcpy(f.text, e[5].via.bin.ptr, f.len);
        qctl_buf_put(&f.rows, e[6].via.bin.ptr, e[6].via.bin.size);
        if (!f.text || f.rows.err) {
            qctl_err("out of memory");
            abort_job(QCTL_EXIT_FAILED);
        }
        r = qctl_out_put(ro->out, sample, &f, e[1].via.f64);
        ro->t_write += now_s() - t0;
        ro->t_file += now_s() - t0;
        if (r < 0) {
            ro->err = r;
            break;
        }
        ro->samples_remote++;
    }
    msgpack_unpacked_destroy(&up);
    return;
bad:
    msgpack_unpacked_destroy(&up);
    qctl_err("rank %d sent undecodable results (%zu bytes): %s", src, len,
             dg.msg[0] ? dg.msg : qt_strerror(r));
    abort_job(QCTL_EXIT_FAILED);
}

/* Handles what the ranks sent: readiness and results, each answered with more work. With
 * block, waits for one message first. */
static void serve(struct root *ro, bool block)
{
    char *buf;
    int len, t;

    while ((t = recv_any(MPI_ANY_SOURCE, block, &buf, &len)) != 0) {
        double t0 = now_s(), tw = ro->t_write;
        int src = t >> 8;

        block = false;
        ro->bytes_result += (uint64_t)len;
        if ((t & 0xff) == TAG_READY && len == sizeof(int32_t) && !ro->ready[src]) {
            int32_t st;

            memcpy(&st, buf, sizeof(st));
            if (st != 0) {
                qctl_err("rank %d could not set up the run (its message is above): ending the "
                         "job",
                         src);
                abort_job(QCTL_EXIT_USAGE);
            }
            ro->ready[src] = true;
            ro->not_ready--;
            ro->bytes_result -= (uint64_t)len;
        } else if ((t & 0xff) == TAG_RESULT && ro->queued[src] > 0) {
            struct span *ow = ro->owed + (size_t)src * QUEUE_DEPTH;

            take_results(ro, src, buf, (size_t)len);
            ro->queued[src]--;
            memmove(ow, ow + 1, (size_t)ro->queued[src] * sizeof(*ow));
        } else {
            qctl_err("rank %d sent an unexpected message (tag %d, %d bytes)", src, t & 0xff, len);
            abort_job(QCTL_EXIT_FAILED);
        }
        free(buf);
        top_up(ro, src);
        reap_sends(ro);
        ro->t_dispatch += now_s() - t0 - (ro->t_write - tw);
    }
}

/* Some rank holds chunks whose results have not come back. */
static bool chunks_out(const struct root *ro)
{
    for (int r = 1; r < ro->nranks; r++)
        if (ro->queued[r])
            return true;
    return false;
}

/* Rank 0's own samples: written at once, and the other ranks served between them. */
static int root_sink(void *ud, size_t sample, const struct qt_result *const *res,
                     const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    struct root *ro = ud;
    int r;

    check_mapping(ro->rc, 0); /* one fstat: computed from what was verified */
    r = write_sample(ro, sample, res, unc, n_res, ms);

    ro->samples_root++;
    if (r == 0 && ro->nranks > 1)
        serve(ro, false);
    return r;
}

/* A chunk on rank 0 itself. */
static int root_chunk(struct root *ro, struct qctl_chunk_run *cr, struct span sp)
{
    const struct qt_table *t = &ro->rc->tab;
    size_t c0 = ro->rc->first + sp.s0, k = sp.n;
    bool *empty = malloc(k * sizeof(bool));
    int r;

    if (!empty) {
        qctl_err("out of memory");
        return -1;
    }
    for (size_t i = 0; i < k; i++)
        empty[i] = qt_table_col_empty(t, c0 + i);
    r = qctl_recon_chunk_part(ro->rc, cr, t->v + t->rows * c0, sp.s0, k, sp.lo, sp.hi, empty,
                              root_sink, ro);
    free(empty);
    return r;
}

static int root_run(struct recon *rc, struct qctl_out *out, size_t start, void *ud)
{
    struct root *ro = ud;
    struct qctl_chunk_run cr;
    struct hdr h = {.go = 1,
                    .rows = rc->tab.rows,
                    .seed = rc->boot.seed,
                    .has_seed = rc->boot.has_seed,
                    .first = rc->first};
    double t_all = now_s();
    int ret = 0;

    ro->rc = rc;
    ro->out = out;
    ro->started = true;
    run_digest(rc, ro->argc, ro->argv, &h.dig);
    MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
    ro->n = rc->last - rc->first + 1;
    ro->start = ro->next = start;
    ro->not_ready = ro->nranks - 1;
    if (qctl_chunk_run_init(&cr, rc->des->d) < 0)
        abort_job(QCTL_EXIT_FAILED);
    for (;;) {
        if (ro->nranks > 1)
            serve(ro, false);
        if (ro->err || qctl_recon_interrupted()) {
            ret = -1;
            if (!chunks_out(ro))
                break;       /* a rank not yet ready takes the stop when it is */
            serve(ro, true); /* what is under way still reaches the files */
        } else if (ro->next < ro->n) {
            struct span sp = next_span(ro);
            double t0 = now_s();

            ro->next = sp.s0 + sp.hi;
            if (root_chunk(ro, &cr, sp) < 0 && !ro->err)
                ro->err = -EIO;
            note_time(ro, now_s() - t0, sp.hi - sp.lo);
        } else if (ro->not_ready || chunks_out(ro)) {
            serve(ro, true);
        } else {
            break;
        }
    }
    for (int r = 1; r < ro->nranks; r++)
        MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD);
    for (size_t i = 0; i < ro->nps; i++) {
        MPI_Wait(&ro->ps[i].req, MPI_STATUS_IGNORE);
        free(ro->ps[i].buf);
    }
    ro->nps = 0;
    t_all = now_s() - t_all;
    qctl_info(ro->g,
              "qtomo-mpi: %d ranks, %zu chunks to other ranks (%zu samples), %zu samples on "
              "rank 0; %.3f s; rank 0 wrote for %.3f s, dispatched for %.3f s; %.0f bytes of "
              "work and %.0f bytes of results per remote sample; filed other ranks' records "
              "for %.3f s",
              ro->nranks, ro->chunks, ro->samples_remote, ro->samples_root, t_all, ro->t_write,
              ro->t_dispatch,
              ro->samples_remote ? (double)ro->bytes_work / (double)ro->samples_remote : 0.0,
              ro->samples_remote ? (double)ro->bytes_result / (double)ro->samples_remote : 0.0,
              ro->t_file);
    qctl_chunk_run_done(&cr);
    return ret;
}

/* ---- main ---- */

/* Before MPI_Init: whether this process is the job's first task (rank 0), from what mpirun
 * (OpenMPI), srun (Slurm) or a PMIx/PMI launcher put in the environment; true when none did. */
static bool first_task(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID",
                                       "PMI_RANK"};

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);

        if (v && *v)
            return strcmp(v, "0") == 0;
    }
    return true;
}

/* The options before "reconstruct". Returns the index of the command, or -1 (printed) with
 * *code the exit code. */
static int parse_global(int argc, char **argv, struct qctl_global *g, const char **cache_dir,
                        int *code)
{
    int i;

    *code = QCTL_EXIT_USAGE;
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            g->verbosity = -1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            g->verbosity = 1;
        } else if (strcmp(a, "--json") == 0) {
            g->json = true;
        } else if (strcmp(a, "--no-cache") == 0) {
            *cache_dir = NULL;
        } else if (strcmp(a, "--cache-dir") == 0 || strncmp(a, "--cache-dir=", 12) == 0) {
            *cache_dir = a[11] == '=' ? a + 12 : i + 1 < argc ? argv[++i] : NULL;
            if (!*cache_dir || !**cache_dir) {
                qctl_err("--cache-dir needs a directory");
                return -1;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *code = QCTL_EXIT_OK;
            return -2;
        } else if (strcmp(a, "--gen-man") == 0) {
            gen_man();
            *code = QCTL_EXIT_OK;
            return -1;
        } else if (strcmp(a, "--version") == 0) {
            printf("qtomo-mpi %s\n", QTOMO_VERSION);
            *code = QCTL_EXIT_OK;
            return -1;
        } else if (strcmp(a, "-s") == 0 || strncmp(a, "--socket", 8) == 0 ||
                   strncmp(a, "--timeout", 9) == 0) {
            qctl_err("%s: qtomo-mpi talks to no daemon (its ranks compute); drop it", a);
            return -1;
        } else {
            qctl_err("unknown option '%s' (qtomo-mpi [-q|-v] reconstruct FILE -o DIR ...)", a);
            return -1;
        }
    }
    if (i >= argc) {
        qctl_err("no command: qtomo-mpi [-q|-v] reconstruct FILE -o DIR [options]");
        return -1;
    }
    if (strcmp(argv[i], "reconstruct") != 0) {
        qctl_err("unknown command '%s': qtomo-mpi runs 'reconstruct' only", argv[i]);
        return -1;
    }
    return i;
}

int main(int argc, char **argv)
{
    struct qctl_global g = {.argv0 = argv};
    struct root ro = {.g = &g};
    struct qctl_recon_runner runner = {"mpi", root_run, &ro, NULL};
    char dirbuf[4096];
    const char *cache_dir = default_cache_dir(dirbuf, sizeof(dirbuf));
    int rank = 0, code = 0, cmd;

    qctl_progname = "qtomo-mpi";
    cmd = parse_global(argc, argv, &g, &cache_dir, &code);
    /* Before MPI_Init: one BLAS thread per rank; it may re-execute this program with
     * OPENBLAS_CORETYPE set, which only a process that has not joined the job may do. */
    if (cmd >= 0)
        qctl_blas_env(&g);
    if (cmd < 0 && !first_task())
        return code; /* every rank parsed the same words; rank 0 says what was wrong */
    if (cmd == -2) {
        usage(stdout);
        return code;
    }
    if (cmd < 0)
        return code;
    /* Funneled: rank 0's output stage runs a thread of its own (records.jsonl's writes and
     * fdatasyncs, client/ctl/writer.c), which never calls MPI. */
    int provided;

    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ro.nranks);
    runner.cache = open_cache(&g, cache_dir);
    if (rank != 0) {
        code = rank_main(argc - cmd, argv + cmd, g.json, rank, runner.cache);
        qt_cache_close(runner.cache);
        MPI_Finalize();
        return code;
    }
    ro.queued = calloc((size_t)ro.nranks, sizeof(int));
    ro.owed = calloc((size_t)ro.nranks * QUEUE_DEPTH, sizeof(struct span));
    ro.ready = calloc((size_t)ro.nranks, sizeof(bool));
    if (!ro.queued || !ro.owed || !ro.ready) {
        qctl_err("out of memory");
        MPI_Abort(MPI_COMM_WORLD, QCTL_EXIT_FAILED);
    }
    ro.argc = argc - cmd;
    ro.argv = argv + cmd;
    code = qctl_reconstruct_run(argc - cmd, argv + cmd, &g, &runner);
    if (!ro.started) {
        struct hdr h = {0}; /* --help, or it could not start (printed) */

        MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    free(ro.queued);
    free(ro.owed);
    free(ro.ready);
    free(ro.ps);
    qt_cache_close(runner.cache);
    MPI_Finalize();
    return code;
}

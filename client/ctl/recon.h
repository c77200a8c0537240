/* qtomoctl reconstruct: the resolved run (input, design, options) and its output stage, shared
 * by the command (cmd_reconstruct.c), the output writers (recon_out.c) and the files of an
 * output directory (recon_files.c). */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/qt_ws.h"
#include "cache/qt_cache.h"
#include "io/qt_csv.h"
#include "io/qt_record.h"
#include "num/qt_bootstrap.h"
#include "num/qt_design.h"
#include "num/qt_detector.h"
#include "num/qt_estimate.h"
#include "num/qt_uncert.h"
#include "plot_run.h"
#include "qctl.h"

struct recon {
    /* options */
    const char *file, *design, *design_file, *columns, *target_file, *outdir;
    const char *detector_file;  /* --detector */
    const char *target_profile; /* --target named a theory profile (num/qt_theory.h), not a file */
    size_t dim;
    bool local, json, bell, spectral, resume, live, hdf5;
    bool methods[_QT_METHOD_MAX];
    enum qt_method method_list[_QT_METHOD_MAX]; /* the n_methods chosen, in method order */
    size_t n_methods;
    struct qt_opts opts;
    struct qt_boot_req boot; /* --bootstrap and its options; seed chosen when not given */
    bool plots;              /* --plots: figures and report.html in -o DIR after the run */
    struct plot_sel plot_sel;
    /* resolved */
    struct qt_table tab;
    int kind; /* enum qt_design_kind */
    size_t d; /* 0 in --live when the design is inferred per sample */
    char design_name[16];
    char design_id[64]; /* custom designs */
    char *design_text;  /* custom: the file, for design.put */
    size_t design_len;
    const struct qt_design *des; /* local runs, and custom designs (parsed for checks and the id):
                                  * des_own, or in des_map */
    struct qt_design *des_own;
    double complex *target;
    size_t first, last; /* 0-based inclusive column range */
    char input_sha256[65];
    char detector_sha256[65]; /* --detector: the file's SHA-256 */
    char detector_id[40];     /* a model other than the identity: its id (records) */
    char *detector_text;      /* ... and the file, for detector.put (daemon runs) */
    size_t detector_len;
    char base_name[16];     /* ... and the design it was checked against */
    char base_id[64];       /* (custom: its id; rc->design_text stays its file) */
    char server[64];        /* daemon runs: the server's name and version */
    const char *mode;       /* run.json's "mode" when not "local" or "daemon" (qtomo-mpi: "mpi") */
    struct qt_cache *cache; /* qtomo-mpi: built-in designs come mapped from this cache */
    struct qt_cache_map *des_map; /* des lies in this mapping (des_own is NULL) */
};

/* ---- the command's stages (cmd_reconstruct.c), shared with qtomo-mpi (client/mpi) ---- */

/* Parses `reconstruct`'s arguments into rc (zeroed by the caller): the options, the default
 * methods, the method list. json: the global --json. Returns 0, 1 when --help was printed, or
 * -1 (printed). */
int qctl_recon_parse(int argc, char **argv, struct recon *rc, bool json);
/* Resolves the design for an input of `rows` rows (rc->local: built here), the --target and
 * the --detector. Returns 0 or -1 (printed). */
int qctl_recon_prepare_design(struct recon *rc, size_t rows);
/* Frees what parsing, reading and preparing allocated. */
void qctl_recon_done(struct recon *rc);
/* The built-in design (kind, d) as rc->des: mapped from rc->cache when there is one (built
 * there once per cache directory, under its lock), else built in memory. Returns 0 or -1
 * (printed). */
int qctl_recon_build_design(struct recon *rc, enum qt_design_kind kind, size_t d);
/* Frees or unmaps rc->des. */
void qctl_recon_drop_design(struct recon *rc);

struct qctl_out;

/* Who computes a batch other than the daemon or --local: qtomo-mpi's ranks. run computes the
 * samples [start, n) of the selection into out (through qctl_out_sample_unc, in any order);
 * it is called also when nothing is left to do. Returns 0 or -1 (printed). */
struct qctl_recon_runner {
    const char *mode; /* run.json's "mode" */
    int (*run)(struct recon *rc, struct qctl_out *out, size_t start, void *ud);
    void *ud;
    struct qt_cache *cache; /* built-in designs from this projector cache, or NULL */
};

/* The whole command: parse, read, resolve, prepare -o DIR (--resume), compute, finish the
 * outputs. runner NULL: qtomoctl reconstruct (the daemon, --local or --live); otherwise the
 * batch runs through runner (--local and --live are refused; the design is built here, as
 * for --local). Returns the exit code. */
int qctl_reconstruct_run(int argc, char **argv, struct qctl_global *g,
                         const struct qctl_recon_runner *runner);
/* SIGINT or SIGTERM arrived during the batch. */
bool qctl_recon_interrupted(void);

/* One sample's records, wherever they go: the output stage, or a message (qtomo-mpi). sample:
 * 0-based in the selection; unc[k] for res[k] or NULL; ms: its compute time. Returns 0 or a
 * negative error, which stops the chunk (the sink printed why). */
typedef int (*qctl_sample_sink)(void *ud, size_t sample, const struct qt_result *const *res,
                                const struct qt_uncertainty *const *unc, size_t n_res, double ms);

/* Samples per batched linear inversion in process. A batch's size can change the last bits of
 * its GEMM, so whoever splits a run (qtomo-mpi) starts its chunks at multiples of it from the
 * run's first sample, as --local does. */
#define QCTL_LOCAL_CHUNK 64

/* The scratch of in-process estimation: workspace, records of empty columns, error bars. */
struct qctl_chunk_run {
    struct qt_ws ws;
    struct qt_result empty[_QT_METHOD_MAX];
    struct qt_uncertainty unc[_QT_METHOD_MAX];
};

/* For designs of dimension d. Returns 0 or -1 (printed). */
int qctl_chunk_run_init(struct qctl_chunk_run *cr, size_t d);
void qctl_chunk_run_done(struct qctl_chunk_run *cr);
/* Estimates the samples [s0, s0 + n) of the selection, whose values are Y (rc->des->m x n,
 * column-major), exactly as --local does (qt_chunk_estimate on batches of QCTL_LOCAL_CHUNK
 * from s0; with --bootstrap each sample alone, then its error bars), and hands each sample's
 * records to sink in order. empty[i]:
 * the sample's column is empty (its records say so; NULL: none is). Stops early when
 * interrupted. Returns 0 or -1 (printed). */
int qctl_recon_chunk(const struct recon *rc, struct qctl_chunk_run *cr, const double *Y, size_t s0,
                     size_t n, const bool *empty, qctl_sample_sink sink, void *ud);
/* The same, but only the samples s0 + [lo, hi) reach the sink: each with the bits it gets in
 * the whole chunk (the linear batches still run over all of Y's columns). For splitting a
 * batch of expensive samples between ranks. */
int qctl_recon_chunk_part(const struct recon *rc, struct qctl_chunk_run *cr, const double *Y,
                          size_t s0, size_t n, size_t lo, size_t hi, const bool *empty,
                          qctl_sample_sink sink, void *ud);
/* The same for the samples [s0, s0 + n) of rc->tab, into the output stage. */
int qctl_recon_local_chunk(const struct recon *rc, struct qctl_chunk_run *cr, struct qctl_out *out,
                           size_t s0, size_t n);

/* ---- detector model (recon_detector.c) ---- */

/* --detector: parses the file against the run's design; a model other than the identity makes
 * the run's design its effective design (custom; the daemon builds the same one from the file
 * by detector.put). Returns 0 or -1 (printed). */
int qctl_recon_detector(struct recon *rc);

/* ---- output stage (recon_out.c) ---- */

/* Opens the output stage for samples [start, n) of the selection: records to stdout (a table,
 * or JSON lines with --json) or, with -o, to DIR/records.jsonl (appending after `start`
 * samples kept by --resume). Records are written in sample order whatever order they arrive
 * in. Returns 0 or an exit code (the error was printed). */
int qctl_out_open(struct qctl_out **ret, struct recon *rc, const struct qctl_global *g, size_t n,
                  size_t start);
/* One sample's results (n_res records, in method order); ms: its compute time (< 0 unknown).
 * Returns 0 or -errno when an output file cannot be written (printed). */
int qctl_out_sample(struct qctl_out *o, size_t sample, const struct qt_result *const *res,
                    size_t n_res, double ms);
/* The same with error bars: unc[k] for res[k], or NULL. */
int qctl_out_sample_unc(struct qctl_out *o, size_t sample, const struct qt_result *const *res,
                        const struct qt_uncertainty *const *unc, size_t n_res, double ms);

/* Records are written when every earlier sample's are (in sample order) and, by default,
 * flushed then: a reader of stdout or records.jsonl sees each sample as soon as it can be
 * written. A caller that delivers samples in quick bursts (a local linear run: QCTL_LOCAL_CHUNK
 * at a time) defers the flush to the end of each burst with qctl_out_defer_flush(o, true) and
 * calls qctl_out_flush there: one write per burst instead of one per sample (issue 19); a batch
 * through the daemon flushes at each progress callback (qctl_out_progress), which comes every
 * 250 ms whether results come or not. While deferred, a record that arrives QCTL_OUT_FLUSH_MS
 * or more after the last flush is flushed at once; qctl_out_finish flushes the rest. */
void qctl_out_defer_flush(struct qctl_out *o, bool defer);
/* Writes the records waiting in the stream's buffer. Returns 0 or -errno (printed once). */
int qctl_out_flush(struct qctl_out *o);
/* Output stream buffer for records (stdout when not a terminal, records.jsonl). */
#define QCTL_OUT_BUFFER   (1u << 16)
#define QCTL_OUT_FLUSH_MS 100
/* records.jsonl: bytes written between two starts of their disk writes (sync_file_range). */
#define QCTL_OUT_WRITEBACK (4 << 20)

/* A growable byte buffer (recon_summary.c); the first allocation failure sticks (err).
 * Zero-initialise. A buffer that its owner marks `large` (set before the first put; summary.csv's
 * rows, tens of MB on big runs) moves past 64 kB into its own mapping of 2 MiB or more, backed
 * by transparent huge pages where the kernel allows and grown by mremap: one page fault per
 * 2 MiB instead of 512, and no copy when it grows. Free it with qctl_buf_free only (p is not
 * malloc'd then), which zeroes the whole struct, `large` too. */
struct qctl_buf {
    char *p;
    size_t len, cap;
    bool err;
    bool large;  /* set by the owner */
    bool mapped; /* p is an mmap of cap bytes */
};

/* One sample's records as the output stage files them: formatted where they were computed (a
 * qtomo-mpi rank), so that rank 0 only files the text in order. */
struct qctl_fmt {
    char *text; /* the records.jsonl lines, or the table's rows (malloc'd) */
    size_t len;
    struct qctl_buf rows;       /* -o DIR: the summary.csv rows */
    double pur[_QT_METHOD_MAX]; /* purity of each method's record (NaN: none, or it failed) */
    uint32_t ok, failed;        /* bit m: method m's record succeeded / failed */
};

/* Formats the records (as qctl_out_sample_unc does) with jw as scratch: JSON lines, or table
 * rows when there is neither -o nor --json. Returns 0 or -ENOMEM (printed). */
int qctl_out_format(const struct recon *rc, struct qt_jw *jw, size_t sample,
                    const struct qt_result *const *res, const struct qt_uncertainty *const *unc,
                    size_t n_res, struct qctl_fmt *f);
/* Files a formatted sample (its buffers are taken: f is left empty). The same as
 * qctl_out_sample_unc otherwise. */
int qctl_out_put(struct qctl_out *o, size_t sample, struct qctl_fmt *f, double ms);
void qctl_fmt_free(struct qctl_fmt *f);
/* Progress from the daemon (done of total samples in this run). */
void qctl_out_progress(struct qctl_out *o, uint64_t done, uint64_t total);
/* Finishes: flushes and syncs records, writes summary.csv and run.json (temp + rename), prints
 * the summary. complete: every sample has its records. Returns the exit code. */
int qctl_out_finish(struct qctl_out *o, bool complete, double elapsed_ms);
void qctl_out_free(struct qctl_out *o);

/* ---- output directory files (recon_files.c) ---- */

/* SHA-256 of a file (hex, 64 chars + NUL); '-' is not hashable (stdin): "". */
int qctl_sha256_file(const char *path, char hex[65]);
/* Reads DIR/records.jsonl and returns how many leading samples have all n_methods records;
 * truncates what follows them (an interrupted run's partial lines). Checks run.json's input
 * hash and options against this run. Returns 0 or an exit code (printed). */
int qctl_resume_scan(const struct recon *rc, const char *options_json, size_t *ret_done);

/* ---- summary.csv (recon_summary.c) ---- */

void qctl_buf_put(struct qctl_buf *b, const void *s, size_t n);
void qctl_buf_free(struct qctl_buf *b);

/* Appends to rows the summary.csv row of one record: res with meta, whose qt_record_json text
 * is json (len bytes). The row comes from res itself, or from parsing json when a string in
 * it is not plain ASCII; either way it is the row qctl_summary_load makes of that text. memo
 * (or NULL): the one the record's numbers went through, so that most cells are copies. */
void qctl_summary_row(struct qctl_buf *rows, const struct qt_record_meta *meta,
                      const struct qt_result *res, const char *json, size_t len,
                      struct qt_fmt_memo *memo);
/* Appends the rows of the records in DIR/records.jsonl (lines that are not records are left
 * out). Returns 0 or a negative error (printed). */
int qctl_summary_load(struct qctl_buf *rows, const char *dir);
/* Writes DIR/summary.csv (temp + rename) from rows: the columns that some row fills. */
int qctl_summary_write(const char *dir, const struct qctl_buf *rows);
/* qctl_summary_write up to the commit: lays the table out into summary.csv's temporary file.
 * *a is open (a->fd >= 0) unless the file could not be created; the caller ends it with
 * qctl_atomic_commit(a, the result), which renames it, or drops it when given an error. Lets
 * the caller make records.jsonl durable meanwhile and before summary.csv takes its name.
 * Returns 0 or a negative error (printed). */
struct qctl_atomic;
int qctl_summary_stage(const char *dir, const struct qctl_buf *rows, struct qctl_atomic *a);
/* Writes DIR/summary.csv from DIR/records.jsonl (load, then write). */
int qctl_write_summary(const char *dir);

/* ---- HDF5 results (recon_h5.c) ---- */

/* Writes DIR/results.h5 from DIR/records.jsonl and DIR/run.json (DIR/.results.h5.tmp, fsync,
 * rename): rho, every metric, the error bars and the record index as datasets, the run as
 * attributes (layout: README.md). Lines that are not JSON objects are skipped. Returns 0 or a
 * negative error (printed). */
int qctl_write_h5(const char *dir);
/* Writes a whole file crash-safely: DIR/name.tmp, fsync, rename, fsync(DIR). */
int qctl_write_atomic(const char *dir, const char *name, const char *data, size_t len);
/* The same in pieces: open DIR/.name.tmp (0 or a negative error, printed), write (the first
 * error is kept; disk writes start every QCTL_ATOMIC_WRITEBACK bytes), then commit: fsync and
 * rename when neither err (the caller's) nor a write failed, else remove the temporary file.
 * Returns 0 or the negative error (printed unless it is err). */
#define QCTL_ATOMIC_WRITEBACK (1u << 20)
struct qctl_atomic {
    int fd, err;
    size_t written, synced;
    char tmp[4096], dst[4096], dir[4096];
};
int qctl_atomic_open(struct qctl_atomic *a, const char *dir, const char *name);
void qctl_atomic_write(struct qctl_atomic *a, const void *data, size_t len);
int qctl_atomic_commit(struct qctl_atomic *a, int err);
/* The options that decide the results, as JSON (for run.json and --resume's check). */
char *qctl_options_json(const struct recon *rc);
/* The bootstrap seed recorded in DIR/run.json (a resumed run keeps it): 0 and *seed, or
 * -ENOENT. */
int qctl_resume_seed(const char *dir, uint64_t *seed);
/* ISO 8601 UTC time now. */
void qctl_iso_now(char buf[40]);

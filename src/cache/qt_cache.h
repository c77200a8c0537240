/* The projector cache: one immutable, checksummed file per (design, d) in a directory, built
 * once by exactly one process and memory-mapped read-only by every process that reconstructs
 * samples of that design (the format is documented in src/cache/FORMAT.md).
 *
 * Concurrency model
 *  - Builders serialise on an exclusive lock per file (DIR/locks/<name>.lock); the first one
 *    builds into a temporary file in DIR, fsyncs it, verifies every checksum, renames it into
 *    place and fsyncs DIR. The others wait, then find the file.
 *  - Every mapping of a file holds an open file description with a lock on one "user slot" byte
 *    of the file (OFD locks, beyond the end of the file): that is the mapped-by count that list
 *    reports and that eviction respects, across processes.
 *  - Budget changes (adding a built file, evicting) serialise on DIR/locks/budget.lock.
 *  - Files are never modified after the rename; "last use" is the file's atime, set explicitly
 *    on every map.
 *
 * A struct qt_cache is not thread-safe (one per thread or external locking); nothing here logs.
 * Events the operator should hear about (a file built, a file moved aside, a file evicted)
 * are reported through the optional callback. All functions return 0 or a negative code
 * (QT_E* or -errno) and fill *reterr with a message naming the file and the reason.
 *
 * Budget: adding a file that would take the total over the budget first evicts the least
 * recently used entries that no process has mapped; a file larger than the whole budget is
 * QT_ETOOBIG, and a budget held entirely by mapped files is -ENOSPC. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"

struct qt_cache;
struct qt_cache_map;

enum qt_cache_event_kind {
    QT_CACHE_BUILT = 0,       /* a file was built (bytes, seconds) */
    QT_CACHE_QUARANTINED = 1, /* an untrusted file was moved aside (path = new name, reason) */
    QT_CACHE_EVICTED = 2,     /* a file was removed to make room (bytes) */
};

struct qt_cache_event {
    enum qt_cache_event_kind kind;
    const char *name;   /* file name in the cache directory */
    const char *path;   /* QUARANTINED: where the file now is */
    const char *reason; /* QUARANTINED: truncated, corrupt, foreign, stale version */
    uint64_t bytes;
    double seconds; /* BUILT: build time */
};

typedef void (*qt_cache_event_fn)(void *userdata, const struct qt_cache_event *ev);

struct qt_cache_config {
    uint64_t budget; /* bytes; 0: qt_cache_default_budget() */
    qt_cache_event_fn on_event;
    void *userdata;
};

/* One quarter of physical memory. */
uint64_t qt_cache_default_budget(void);

/* Opens (creating when missing, mode 0750 / files 0440) the cache directory dir.
 * cfg may be NULL. */
QT_NODISCARD int qt_cache_open(const char *dir, const struct qt_cache_config *cfg,
                               struct qt_cache **ret_cache, struct qt_diag *reterr);
/* Unmaps everything this handle still has mapped. NULL-safe. */
void qt_cache_close(struct qt_cache *c);

/* The file name of a (design id, d) entry: "<id>-d<d>.qtpc" (id: "nopovm", "mub", "sic",
 * "pauli" or "custom-<hash>"). Returns -EINVAL when the id is not a valid key. */
QT_NODISCARD int qt_cache_file_name(const char *id, size_t d, char *buf, size_t len);

/* Makes sure the file of a built-in design (kind, d) exists and can be trusted, building it
 * when missing or untrusted. For custom designs pass the validated design in custom (kind and
 * d are then taken from it). *ret_built (may be NULL) tells whether this call built it. */
QT_NODISCARD int qt_cache_ensure(struct qt_cache *c, enum qt_design_kind kind, size_t d,
                                 const struct qt_design *custom, bool *ret_built,
                                 struct qt_diag *reterr);

/* Maps the file for (id, d) read-only and returns a reference-counted handle (mapping the same
 * entry again from this handle returns the same mapping with one more reference). The file
 * must exist: call qt_cache_ensure first for built-ins. A file that fails the open checks
 * (size, header checksum, magic, versions, structure, and every section's checksum) is moved
 * aside and QT_ECHECKSUM returned: nothing is computed from content that was not verified
 * since the file was written. */
QT_NODISCARD int qt_cache_map(struct qt_cache *c, const char *id, size_t d,
                              struct qt_cache_map **ret_map, struct qt_diag *reterr);
/* Before each use of a kept mapping: when the file changed since its content was verified
 * (size, modification or change time), verifies it again; a shorter file is refused without
 * reading the mapping. 0 when it may be used; QT_ECHECKSUM when not (the file is moved aside:
 * unmap it and map again, which rebuilds a built-in). Changes that leave every time stamp and
 * the size alone (a fault in memory) are not seen. */
QT_NODISCARD int qt_cache_map_check(struct qt_cache_map *map, struct qt_diag *reterr);
/* Whether the file changed since its content was verified: after computing from a mapping,
 * true means the result may have been computed from pages the change took away (a truncated
 * file reads as zeros to the end of its last page and raises SIGBUS beyond) and must not be
 * used. One fstat: a different size or modification time is a change; a different change time
 * alone (every mapping sets the atime) verifies the content again. Nothing is moved aside. */
bool qt_cache_map_changed(struct qt_cache_map *map);
/* The mapped file's name in the cache directory. */
const char *qt_cache_map_name(const struct qt_cache_map *map);
/* The name of the cache file whose mapping by this process (any handle, kept or being
 * verified) contains addr, or NULL. Async-signal-safe: for a SIGBUS handler, to tell a cache
 * file truncated under its mapping from a fault of the program. */
const char *qt_cache_addr_file(const void *addr);
/* ensure (built-ins) + map, rebuilding once when the existing file was moved aside. */
QT_NODISCARD int qt_cache_get(struct qt_cache *c, enum qt_design_kind kind, size_t d,
                              struct qt_cache_map **ret_map, struct qt_diag *reterr);
/* The design inside a mapping: valid until the last qt_cache_unmap. */
const struct qt_design *qt_cache_map_design(const struct qt_cache_map *map);
/* Bytes of the mapped file. */
uint64_t qt_cache_map_bytes(const struct qt_cache_map *map);
/* Drops one reference; the last one unmaps. NULL-safe. */
void qt_cache_unmap(struct qt_cache_map *map);

struct qt_cache_entry {
    char name[96];   /* file name */
    char id[64];     /* design id */
    char design[16]; /* design kind name */
    size_t d, m;
    uint64_t bytes;
    int64_t last_use_ns; /* CLOCK_REALTIME nanoseconds */
    unsigned mapped_by;  /* open mappings, all processes */
};

/* Lists the entries (sorted by name); *ret_entries is malloc'd (free() it). Unreadable or
 * foreign files are listed with design "?" and d = 0. */
QT_NODISCARD int qt_cache_list(struct qt_cache *c, struct qt_cache_entry **ret_entries,
                               size_t *ret_n, struct qt_diag *reterr);

/* Total bytes of the entries. */
QT_NODISCARD int qt_cache_usage(struct qt_cache *c, uint64_t *ret_bytes, struct qt_diag *reterr);

/* Removes the entry for (id, d). -EBUSY when some process has it mapped, -ENOENT when there is
 * no such entry. */
QT_NODISCARD int qt_cache_evict(struct qt_cache *c, const char *id, size_t d,
                                struct qt_diag *reterr);

/* Verifies the size, header and every section checksum of the entry (id, d). Returns 0 when
 * it is intact; otherwise moves the file aside (reported as QUARANTINED; mappings that exist
 * keep their pages, new users get a rebuilt file) and returns QT_ECHECKSUM with the reason.
 * Opening checks only the header and structure (FORMAT.md), so damage inside a section of a
 * file that was intact when built is found here: run it periodically. */
QT_NODISCARD int qt_cache_verify(struct qt_cache *c, const char *id, size_t d,
                                 struct qt_diag *reterr);

/* Ensures every (kinds[i], dims[i]) and asks the kernel to read the files ahead. Stops at the
 * first error (index in *ret_failed when not NULL). */
QT_NODISCARD int qt_cache_warm(struct qt_cache *c, size_t n, const enum qt_design_kind *kinds,
                               const size_t *dims, size_t *ret_failed, struct qt_diag *reterr);

/* The projector cache file format (src/cache/FORMAT.md): serialising a design into a file
 * image, and checking and viewing a mapped image as a design. No I/O policy here beyond
 * writing to a given descriptor. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"
#include "num/qt_whiten.h"

#define QT_CF_MAGIC          "QTOMOPC"
#define QT_CF_VERSION        1u
#define QT_CF_HEADER_SIZE    1024u
#define QT_CF_ALIGN          64u
#define QT_CF_MAX_SECTIONS   16u
#define QT_CF_HEADER_SUM_OFF 1016u

/* Why a file is not trusted (the reason names files moved aside). */
enum qt_cf_fault {
    QT_CF_OK = 0,
    QT_CF_TRUNCATED,
    QT_CF_FOREIGN, /* not a qtomo projector cache file (magic, byte order, header size) */
    QT_CF_STALE,   /* another format or library version */
    QT_CF_CORRUPT, /* a checksum or the structure does not match */
};

const char *qt_cf_fault_name(enum qt_cf_fault f);

/* The parsed, checked header. */
struct qt_cf_info {
    enum qt_design_kind kind;
    size_t d, m, n_groups;
    uint64_t file_size;
    char id[64];
    char version[16];
};

/* Layout of a design's file: total bytes. Returns 0 or QT_ETOOBIG. */
QT_NODISCARD int qt_cf_size(const struct qt_design *des, uint64_t *ret_size);

/* Writes the file image of des to fd at offset 0 (pwrite; the caller fsyncs). Returns 0 or
 * -errno. */
QT_NODISCARD int qt_cf_write(int fd, const struct qt_design *des);

/* Checks a file of file_len bytes from its first buflen bytes in buf: the header (buflen may be
 * shorter than the header: truncated) and the structure it declares against file_len. With
 * full, buf must hold the whole file (buflen == file_len) and every section checksum is checked
 * too. Fills *info (may be NULL) on success. Never reads outside [buf, buf + buflen). */
enum qt_cf_fault qt_cf_check(const void *buf, size_t buflen, uint64_t file_len, bool full,
                             struct qt_cf_info *info, struct qt_diag *reterr);

/* Builds a design view over a checked image (qt_cf_check passed): des and wh point into buf,
 * and so does mix, the map-only base view of a mixing structure (qt_design.mix_base), when the
 * file has one (des->mix_base then points to mix),
 * which must stay mapped while they are used. Also checks the group ids (an out-of-range id
 * would index out of bounds later). Returns 0 or QT_ECHECKSUM. */
QT_NODISCARD int qt_cf_view(const void *buf, size_t len, struct qt_design *des,
                            struct qt_whiten *wh, struct qt_design *mix, struct qt_diag *reterr);

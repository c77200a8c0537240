/* Requests for the request-checking tests and fuzz target: a valid request of every client
 * method, and semantic mutations of its params map (a value replaced by another type, shape or
 * extreme, a key removed, duplicated or unknown) driven by a byte string. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp.h"

#define QT_REQGEN_ID      7u
#define QT_REQGEN_BUSY_ID 99u /* qt_reqgen_id_busy says this id is in flight */

/* Packs a valid request of method m (a client request) as one frame into w. The custom design
 * is "c0ffee" with d = 2, 4 outcomes. Returns 0 or -EINVAL for a method clients do not send. */
int qt_reqgen_valid(enum qp_method m, struct qp_writer *w);

/* The number of value variants qt_reqgen_mutate knows. */
#define QT_REQGEN_VARIANTS 24

/* Decodes the frame body, applies ops to its params map, and packs the result as one frame
 * into out. Two bytes an op: the entry, then the variant of the value. Entry 0x00-0xbf: replace
 * that entry's value; 0xc0-0xcf: add a known field name (qt_reqgen.c's list); 0xd0-0xdf: add an
 * unknown key; 0xe0-0xef: duplicate an entry's key; 0xf0-0xfe: remove an entry; 0xff: change
 * the envelope (type, id or method). Returns 0 or a negative error. */
int qt_reqgen_mutate(const uint8_t *body, size_t len, const uint8_t *ops, size_t nops,
                     struct qp_writer *out);

/* The checkers' view of the world in these tests: one uploaded custom design, "c0ffee" with
 * d = 2 and 4 outcomes (qd_check_env.find_custom), and one id in flight (qd_peer.id_busy). */
int qt_reqgen_find_custom(void *ud, const char *id, size_t d, size_t m, size_t *ret_d);
bool qt_reqgen_id_busy(void *ud, uint32_t id);

/* Logging of qtomod: one line per event on stderr, with a <N> priority prefix when stderr is
 * the journal (JOURNAL_STREAM matches it) and an RFC 3339 timestamp otherwise. */
#pragma once

#include "base/compiler.h"

enum { QD_LOG_ERR = 3, QD_LOG_WARNING = 4, QD_LOG_NOTICE = 5, QD_LOG_INFO = 6, QD_LOG_DEBUG = 7 };

/* Decides the format from the environment; role is "qtomod" or "qtomod-worker". */
void qd_log_init(const char *role, int max_level);
void qd_log_set_level(int max_level);
void qd_log(int level, const char *fmt, ...) QT_PRINTF(2, 3);

#define qd_err(...)    qd_log(QD_LOG_ERR, __VA_ARGS__)
#define qd_warn(...)   qd_log(QD_LOG_WARNING, __VA_ARGS__)
#define qd_notice(...) qd_log(QD_LOG_NOTICE, __VA_ARGS__)
#define qd_info(...)   qd_log(QD_LOG_INFO, __VA_ARGS__)
#define qd_debug(...)  qd_log(QD_LOG_DEBUG, __VA_ARGS__)

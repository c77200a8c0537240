/* Stable public status codes: the only error numbers that leave the process (JSON records,
 * the wire protocol, qtomoctl output). Append-only; never renumber. JSON-RPC's codes plus the
 * server range -32000..-32099 and LSP's "request cancelled". Internal -errno / QT_E* values are
 * mapped here and nowhere else. */
#pragma once

enum qt_status_code {
    QT_ST_OK = 0,
    QT_ST_PARSE_ERROR = -32700,          /* unreadable message body */
    QT_ST_INVALID_REQUEST = -32600,      /* not a valid request shape */
    QT_ST_METHOD_NOT_FOUND = -32601,     /* unknown method */
    QT_ST_INVALID_PARAMS = -32602,       /* bad design, dimension, option or method */
    QT_ST_INTERNAL = -32603,             /* a bug or resource failure on our side */
    QT_ST_BUSY = -32001,                 /* queue full; retry later */
    QT_ST_TIMEOUT = -32002,              /* the item passed its deadline */
    QT_ST_WORKER_CRASHED = -32003,       /* the item crashed two workers */
    QT_ST_NOT_FOUND = -32004,            /* unknown request, design or cache entry */
    QT_ST_PERMISSION_DENIED = -32005,    /* admin method from a non-admin peer */
    QT_ST_SHUTTING_DOWN = -32006,        /* the server is stopping */
    QT_ST_TOO_LARGE = -32007,            /* a size limit was exceeded */
    QT_ST_INVALID_SAMPLE = -32008,       /* the sample's values cannot be used */
    QT_ST_UNSUPPORTED_PROTOCOL = -32010, /* protocol major version mismatch */
    QT_ST_CANCELLED = -32800,            /* cancelled by the client */
};

/* Maps a -errno or QT_E* value to its public status code (0 maps to QT_ST_OK). */
int qt_status_from_err(int err);

/* Compiler helpers shared by every module: attributes and small macros.
 * Header-only; include it first from any project header that needs it. */
#pragma once

#define QT_NODISCARD     __attribute__((warn_unused_result))
#define QT_PRINTF(a, b)  __attribute__((format(printf, a, b)))
#define QT_UNUSED        __attribute__((unused))
#define QT_LIKELY(x)     __builtin_expect(!!(x), 1)
#define QT_UNLIKELY(x)   __builtin_expect(!!(x), 0)
#define QT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define QT_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define QT_MAX(a, b)     ((a) > (b) ? (a) : (b))

/* Function multi-versioning for hot numerical kernels: the loader picks the AVX-512, AVX2 or
 * baseline body from CPUID, so binaries stay portable and run under valgrind (which reports no
 * AVX-512). Only for leaf kernels that take no vector types by value. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#    define QT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#    define QT_CLONES
#endif

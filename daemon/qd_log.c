#include "qd_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *role;
    int max_level;
    bool journal;
} lg = {"qtomod", QD_LOG_INFO, false};

static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void qd_log_init(const char *role, int max_level)
{
    lg.role = role;
    lg.max_level = max_level;
    lg.journal = stderr_is_journal();
}

void qd_log_set_level(int max_level)
{
    lg.max_level = max_level;
}

void qd_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"EMERG", "ALERT", "CRIT",   "ERROR",
                                        "WARN",  "NOTICE", "INFO", "DEBUG"};
    char line[2048];
    int n = 0;
    va_list ap;

    if (level > lg.max_level)
        return;
    if (lg.journal) {
        n = snprintf(line, sizeof(line), "<%d>", level);
    } else {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, lg.role, (int)getpid(),
                     names[level & 7]);
    }
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so that lines of the supervisor and its workers never interleave. */
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

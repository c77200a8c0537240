/* Unit tests for qtomoctl's background file writer (client/ctl/writer.c): the bytes put are the
 * file's bytes, in order, through a full ring, flushes, pieces larger than the ring and
 * fdatasyncs; a slow reader holds the producer back without losing a byte; a flush reaches the
 * reader before the writer stops; a failing write or fdatasync is returned by the calls that
 * follow and by stop, also to a producer waiting for room; the final fsync runs even after
 * no write; stopping an unused writer, or NULL, is fine. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qt_test.h"
#include "writer.h"

/* Byte i of the stream: a pattern that a lost, repeated or reordered piece would break. */
static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* Puts total bytes of the pattern in pieces of 1 byte to 1.5 rings, flushing now and then. */
static void put_stream(struct qctl_writer *w, size_t total, uint64_t seed)
{
    static unsigned char piece[QCTL_WRITER_RING * 3 / 2];
    size_t at = 0;

    while (at < total) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t n = (seed >> 40) % 8 == 0 ? sizeof(piece) : 1 + (size_t)(seed >> 33) % 100000;

        if (n > total - at)
            n = total - at;
        for (size_t i = 0; i < n; i++)
            piece[i] = pat(at + i);
        assert_int_equal(qctl_writer_put(w, piece, n), 0);
        at += n;
        if ((seed >> 20) % 5 == 0)
            assert_int_equal(qctl_writer_flush(w), 0);
    }
}

static void check_stream(const unsigned char *p, size_t len, size_t from)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != pat(from + i))
            fail_msg("byte %zu of the stream is wrong", from + i);
}

static void bytes_in_order(void **state)
{
    char path[] = "/tmp/qtomo-test-writer.XXXXXX";
    int fd = mkstemp(path);
    const size_t total = 3 * QCTL_WRITER_RING + 12345;
    struct qctl_writer *w;
    unsigned char *back = malloc(total + 1);

    (void)state;
    assert_true(fd >= 0);
    assert_non_null(back);
    assert_int_equal(qctl_writer_start(&w, fd, 256 << 10), 0);
    put_stream(w, total, 2026);
    qctl_writer_end(w);
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(pread(fd, back, total + 1, 0), (ssize_t)total);
    check_stream(back, total, 0);
    free(back);
    assert_int_equal(close(fd), 0);
    assert_int_equal(unlink(path), 0);
}

struct reader {
    int fd;
    size_t got;
    int bad; /* the first wrong byte + 1, or 0 */
};

/* Reads the pipe to its end in small pieces, yielding between them: slower than the writer. */
static void *slow_reader(void *arg)
{
    struct reader *r = arg;
    unsigned char buf[4096];
    ssize_t k;

    while ((k = read(r->fd, buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < k && !r->bad; i++)
            if (buf[i] != pat(r->got + (size_t)i))
                r->bad = (int)(r->got + (size_t)i) + 1;
        r->got += k > 0 ? (size_t)k : 0;
        sched_yield();
    }
    return NULL;
}

static void slow_reader_holds_back(void **state)
{
    int p[2];
    pthread_t th;
    struct reader r = {0};
    struct qctl_writer *w;
    const size_t total = 3 * QCTL_WRITER_RING + 777; /* the ring, thrice */

    (void)state;
    assert_int_equal(pipe(p), 0);
    r.fd = p[0];
    assert_int_equal(pthread_create(&th, NULL, slow_reader, &r), 0);
    assert_int_equal(qctl_writer_start(&w, p[1], 0), 0); /* a pipe: no fdatasync */
    put_stream(w, total, 7);
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.got, total);
    assert_int_equal(close(p[0]), 0);
}

/* What a flush hands over reaches the file while the writer lives (a reader of records.jsonl
 * sees each burst); what is only put does not have to. */
static void flush_reaches_reader(void **state)
{
    int p[2];
    struct qctl_writer *w;
    char buf[64];

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(qctl_writer_start(&w, p[1], 0), 0);
    for (int round = 0; round < 3; round++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "record %d\n", round);

        assert_int_equal(qctl_writer_put(w, line, (size_t)n), 0);
        assert_int_equal(qctl_writer_flush(w), 0);
        assert_int_equal(read(p[0], buf, sizeof(buf)), n); /* blocks until written */
        assert_memory_equal(buf, line, (size_t)n);
    }
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(close(p[0]), 0);
}

/* Waits, generously, for the writer's thread to meet an error. */
static int wait_error(struct qctl_writer *w)
{
    struct timespec t0, t;

    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    while (qctl_writer_error(w) == 0) {
        (void)clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60)
            fail_msg("no error from the writer after 60 s");
        sched_yield();
    }
    return qctl_writer_error(w);
}

/* /dev/full: every write fails with ENOSPC. The producer learns it within a few buffers, and
 * every call after it says so. */
static void failing_write(void **state)
{
    int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
    struct qctl_writer *w;
    static char piece[4096];
    size_t put = 0;
    int r = 0;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(qctl_writer_start(&w, fd, 1 << 20), 0);
    while (r == 0 && put < (size_t)64 << 20) {
        r = qctl_writer_put(w, piece, sizeof(piece));
        put += sizeof(piece);
        if (put % (QCTL_WRITER_RING / 8) == 0 && r == 0)
            r = qctl_writer_flush(w);
    }
    if (r == 0)
        r = wait_error(w);
    assert_int_equal(r, -ENOSPC);
    assert_int_equal(qctl_writer_put(w, piece, 1), -ENOSPC);
    assert_int_equal(qctl_writer_flush(w), -ENOSPC);
    assert_int_equal(qctl_writer_stop(w), -ENOSPC);
    assert_int_equal(close(fd), 0);
}

/* A write that succeeds and an fdatasync that fails (a pipe has none: EINVAL). */
static void failing_sync(void **state)
{
    int p[2];
    struct qctl_writer *w;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(qctl_writer_start(&w, p[1], 1), 0);
    assert_int_equal(qctl_writer_put(w, "x\n", 2), 0);
    int r = qctl_writer_flush(w); /* the thread may have written and failed already */

    assert_true(r == 0 || r == -EINVAL);
    assert_int_equal(wait_error(w), -EINVAL);
    assert_int_equal(qctl_writer_put(w, "y\n", 2), -EINVAL);
    assert_int_equal(qctl_writer_stop(w), -EINVAL);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(close(p[0]), 0);
}

/* The final fsync runs even when nothing was written (a --resume's truncation must reach the
 * disk): on a file it succeeds, on a descriptor that cannot sync it is the error; with
 * sync_every 0 there is none at all. */
static void final_sync(void **state)
{
    char path[] = "/tmp/qtomo-test-writer.XXXXXX";
    int fd = mkstemp(path), p[2];
    struct qctl_writer *w;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(qctl_writer_start(&w, fd, 1), 0);
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(qctl_writer_start(&w, -1, 1), 0); /* nothing written, still synced */
    assert_int_equal(qctl_writer_stop(w), -EBADF);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(qctl_writer_start(&w, p[1], SIZE_MAX), 0); /* the final fsync only */
    assert_int_equal(qctl_writer_put(w, "x\n", 2), 0);
    assert_int_equal(qctl_writer_stop(w), -EINVAL);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(close(p[0]), 0);
}

/* The reader goes away while the producer waits for room in a full ring: the write fails with
 * EPIPE (the thread takes no SIGPIPE), the producer is let go and told. */
static void reader_gone_while_full(void **state)
{
    int p[2];
    struct qctl_writer *w;
    static char piece[1 << 16];
    size_t put = 0;
    int r = 0;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(qctl_writer_start(&w, p[1], 0), 0);
    while (r == 0 && put < 4 * QCTL_WRITER_RING) { /* more than the ring: waits for room */
        r = qctl_writer_put(w, piece, sizeof(piece));
        put += sizeof(piece);
    }
    if (r == 0)
        r = wait_error(w);
    assert_int_equal(r, -EPIPE);
    assert_int_equal(qctl_writer_stop(w), -EPIPE);
    assert_int_equal(close(p[1]), 0);
}

static void stop_unused(void **state)
{
    struct qctl_writer *w;

    (void)state;
    assert_int_equal(qctl_writer_start(&w, -1, 0), 0); /* no syncs: nothing touches the fd */
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(qctl_writer_start(&w, -1, 0), 0);
    qctl_writer_end(w);
    qctl_writer_end(w); /* twice is harmless */
    assert_int_equal(qctl_writer_stop(w), 0);
    assert_int_equal(qctl_writer_stop(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_in_order),         cmocka_unit_test(slow_reader_holds_back),
        cmocka_unit_test(flush_reaches_reader),   cmocka_unit_test(failing_write),
        cmocka_unit_test(failing_sync),           cmocka_unit_test(final_sync),
        cmocka_unit_test(reader_gone_while_full), cmocka_unit_test(stop_unused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

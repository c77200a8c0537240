/* qtomoctl's background file writer (writer.h). */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/qt_mem.h"

struct qctl_writer {
    int fd;
    size_t sync_every;
    char *ring; /* QCTL_WRITER_RING bytes; byte i of the stream at i % QCTL_WRITER_RING */
    /* the producer's */
    /* Stream positions are 64-bit: a 32-bit size_t would wrap after 4 GiB of records. */
    uint64_t put;       /* bytes put */
    uint64_t handed;    /* bytes handed over */
    uint64_t done_seen; /* a past value of done: room the producer knows of without the lock */
    bool ended;
    /* the thread's */
    size_t since_sync;     /* bytes written since the last fdatasync */
    struct timespec wrote; /* when the last write ended */
    atomic_int err;        /* the first error, negative; read without the lock */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t work, room;
    /* under mu */
    uint64_t pub;  /* bytes handed over */
    uint64_t done; /* bytes written (or dropped after an error) */
    bool sleeping; /* the thread waits for work with none to do */
    bool now;      /* write without gathering: the producer waits for room, or ends */
    bool end;      /* nothing more comes */
};

static void set_err(struct qctl_writer *w, int r)
{
    int none = 0;

    (void)atomic_compare_exchange_strong(&w->err, &none, r);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes stream bytes [from, to) out of the ring and, every sync_every bytes, makes the file
 * durable. After an error, nothing more is written. */
static void drain(struct qctl_writer *w, uint64_t from, uint64_t to)
{
    while (from < to && !atomic_load_explicit(&w->err, memory_order_relaxed)) {
        size_t at = (size_t)(from % QCTL_WRITER_RING), n = QCTL_WRITER_RING - at;
        int r;

        n = n < to - from ? n : (size_t)(to - from);
        if ((r = write_all(w->fd, w->ring + at, n)) < 0)
            set_err(w, r);
        from += n;
        w->since_sync += n;
    }
    if (w->sync_every && w->since_sync >= w->sync_every &&
        !atomic_load_explicit(&w->err, memory_order_relaxed)) {
        w->since_sync = 0;
        if (fdatasync(w->fd) != 0 && errno != EINTR)
            set_err(w, -errno);
    }
}

static struct timespec add_ms(struct timespec t, long ms)
{
    t.tv_nsec += ms * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

static bool before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static void *writer_main(void *arg)
{
    struct qctl_writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (w->done == w->pub) {
            if (w->end)
                break;
            w->sleeping = true;
            pthread_cond_wait(&w->work, &w->mu);
            w->sleeping = false;
            continue;
        }
        /* A producer that flushes often (every burst of records) gets one write per
         * QCTL_WRITER_GATHER_MS: each wake-up of this thread costs the producer a futex call. */
        struct timespec t, until = add_ms(w->wrote, QCTL_WRITER_GATHER_MS);

        (void)clock_gettime(CLOCK_MONOTONIC, &t);
        if (!w->now && !w->end && before(t, until))
            (void)pthread_cond_timedwait(&w->work, &w->mu, &until);
        w->now = false;
        uint64_t from = w->done, to = w->pub;

        pthread_mutex_unlock(&w->mu);
        drain(w, from, to);
        (void)clock_gettime(CLOCK_MONOTONIC, &w->wrote);
        pthread_mutex_lock(&w->mu);
        w->done = to;
        pthread_cond_signal(&w->room);
    }
    pthread_mutex_unlock(&w->mu);
    /* The last is an fsync, the file's times with its data, even when nothing was written (a
     * --resume's truncation): the caller needs none of its own (on this VM's ext4 each fsync
     * costs a device flush, 3-4 ms, whatever is left to write). */
    if (w->sync_every && !atomic_load(&w->err) && fsync(w->fd) != 0)
        set_err(w, -errno);
    return NULL;
}

static void free_writer(struct qctl_writer *w)
{
    free(w->ring);
    free(w);
}

int qctl_writer_start(struct qctl_writer **wp, int fd, size_t sync_every)
{
    struct qctl_writer *w = calloc(1, sizeof(*w));
    pthread_condattr_t ca;
    sigset_t all, old;
    int r;

    *wp = NULL;
    /* Huge pages: the ring is filled once over, 4 kB pages would cost a fault each. */
    if (!w || !(w->ring = qt_alloc_huge(QCTL_WRITER_RING, 1))) {
        if (w)
            free_writer(w);
        return -ENOMEM;
    }
    w->fd = fd;
    w->sync_every = sync_every;
    if ((r = pthread_mutex_init(&w->mu, NULL)) != 0) {
        free_writer(w);
        return -r;
    }
    if ((r = pthread_condattr_init(&ca)) != 0)
        goto no_work;
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    r = pthread_cond_init(&w->work, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0)
        goto no_work;
    if ((r = pthread_cond_init(&w->room, NULL)) != 0)
        goto no_room;
    /* The thread takes no signal: SIGINT and SIGTERM go to the caller's thread, whose poll
     * they interrupt (qtomoctl's cancel); SIGPIPE and SIGXFSZ of its writes stay pending, and
     * the writes fail with EPIPE or EFBIG. */
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&w->th, NULL, writer_main, w);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r == 0) {
        *wp = w;
        return 0;
    }
    pthread_cond_destroy(&w->room);
no_room:
    pthread_cond_destroy(&w->work);
no_work:
    pthread_mutex_destroy(&w->mu);
    free_writer(w);
    return -r;
}

/* Hands over the bytes put; now: to be written at once. Wakes the thread when it sleeps (or
 * when now), and learns how far it has written. */
static void hand_over(struct qctl_writer *w, bool now)
{
    w->handed = w->put;
    pthread_mutex_lock(&w->mu);
    w->pub = w->put;
    w->now |= now;
    if (w->sleeping || now)
        pthread_cond_signal(&w->work);
    w->done_seen = w->done;
    pthread_mutex_unlock(&w->mu);
}

/* Waits until the ring has room, after handing over everything in it. */
static void wait_room(struct qctl_writer *w)
{
    w->handed = w->put;
    pthread_mutex_lock(&w->mu);
    w->pub = w->put;
    w->now = true;
    pthread_cond_signal(&w->work);
    while (w->put - w->done == QCTL_WRITER_RING)
        pthread_cond_wait(&w->room, &w->mu);
    w->done_seen = w->done;
    pthread_mutex_unlock(&w->mu);
}

int qctl_writer_put(struct qctl_writer *w, const void *p, size_t n)
{
    const char *s = p;

    while (n) {
        int r = atomic_load_explicit(&w->err, memory_order_relaxed);

        if (r)
            return r;
        if (w->put - w->done_seen == QCTL_WRITER_RING)
            wait_room(w);
        size_t at = (size_t)(w->put % QCTL_WRITER_RING);
        size_t k = QCTL_WRITER_RING - (size_t)(w->put - w->done_seen); /* room */

        k = k < QCTL_WRITER_RING - at ? k : QCTL_WRITER_RING - at; /* to the ring's end */
        k = k < n ? k : n;
        memcpy(w->ring + at, s, k);
        w->put += k;
        s += k;
        n -= k;
        if (w->put - w->handed >= QCTL_WRITER_RING / 4) /* written while the rest is put */
            hand_over(w, true);
    }
    return atomic_load_explicit(&w->err, memory_order_relaxed);
}

int qctl_writer_flush(struct qctl_writer *w)
{
    if (w->put != w->handed)
        hand_over(w, false);
    return atomic_load(&w->err);
}

int qctl_writer_error(struct qctl_writer *w)
{
    return atomic_load(&w->err);
}

void qctl_writer_end(struct qctl_writer *w)
{
    if (w->ended)
        return;
    w->ended = true;
    w->handed = w->put;
    pthread_mutex_lock(&w->mu);
    w->pub = w->put;
    w->end = true;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

int qctl_writer_stop(struct qctl_writer *w)
{
    int err;

    if (!w)
        return 0;
    qctl_writer_end(w);
    (void)pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->room);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->mu);
    err = atomic_load(&w->err);
    free_writer(w);
    return err;
}

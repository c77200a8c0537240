/* qtomoctl's background fdatasync (syncer.h). */
#include "syncer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct qctl_syncer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    bool want, stop; /* under mu */
    int err;         /* under mu: the first error, negative */
};

static void *syncer_main(void *arg)
{
    struct qctl_syncer *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->want && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->want)
            break; /* stopped, nothing asked */
        s->want = false;
        pthread_mutex_unlock(&s->mu);
        int r = fdatasync(s->fd) == 0 ? 0 : -errno;
        pthread_mutex_lock(&s->mu);
        if (r < 0 && r != -EINTR && s->err == 0)
            s->err = r;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int qctl_syncer_start(struct qctl_syncer **sp, int fd)
{
    struct qctl_syncer *s = calloc(1, sizeof(*s));
    int r;

    *sp = NULL;
    if (!s)
        return -ENOMEM;
    s->fd = fd;
    if ((r = pthread_mutex_init(&s->mu, NULL)) != 0) {
        free(s);
        return -r;
    }
    if ((r = pthread_cond_init(&s->cv, NULL)) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -r;
    }
    /* The thread takes no signal: SIGINT and SIGTERM go to the caller's thread, whose poll they
     * interrupt (qtomoctl's cancel). */
    sigset_t all, old;

    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&s->th, NULL, syncer_main, s);
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -r;
    }
    *sp = s;
    return 0;
}

int qctl_syncer_error(struct qctl_syncer *s)
{
    int err;

    pthread_mutex_lock(&s->mu);
    err = s->err;
    pthread_mutex_unlock(&s->mu);
    return err;
}

void qctl_syncer_kick(struct qctl_syncer *s)
{
    pthread_mutex_lock(&s->mu);
    s->want = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int qctl_syncer_stop(struct qctl_syncer *s)
{
    int err;

    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    (void)pthread_join(s->th, NULL);
    err = s->err;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return err;
}

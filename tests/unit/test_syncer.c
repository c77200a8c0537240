/* Unit tests for qtomoctl's background fdatasync (client/ctl/syncer.c): kicks while writing end
 * with the data intact and no error; an fdatasync that fails is seen while the thread runs and
 * reported by stop; stopping without a kick, or NULL, is fine. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qt_test.h"
#include "syncer.h"

static void kicks_while_writing(void **state)
{
    char path[] = "/tmp/qtomo-test-syncer.XXXXXX";
    int fd = mkstemp(path);
    struct qctl_syncer *s;
    char buf[4096], back[4096];

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(qctl_syncer_start(&s, fd), 0);
    assert_non_null(s);
    for (int i = 0; i < 64; i++) {
        memset(buf, 'a' + i % 26, sizeof(buf));
        assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        if (i % 4 == 0)
            qctl_syncer_kick(s);
    }
    qctl_syncer_kick(s);
    assert_int_equal(qctl_syncer_stop(s), 0);
    for (int i = 0; i < 64; i++) {
        memset(buf, 'a' + i % 26, sizeof(buf));
        assert_int_equal(pread(fd, back, sizeof(back), (off_t)i * 4096), (ssize_t)sizeof(back));
        assert_memory_equal(back, buf, sizeof(buf));
    }
    assert_int_equal(close(fd), 0);
    assert_int_equal(unlink(path), 0);
}

static void failure_is_reported(void **state)
{
    struct qctl_syncer *s;

    (void)state;
    assert_int_equal(qctl_syncer_start(&s, -1), 0); /* every fdatasync fails: EBADF */
    qctl_syncer_kick(s);
    /* Seen while the thread lives (the writer stops early on it): wait for it, generously. */
    struct timespec t0, t;

    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    while (qctl_syncer_error(s) == 0) {
        (void)clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60)
            fail_msg("no error from the syncer after 60 s");
        sched_yield();
    }
    assert_int_equal(qctl_syncer_error(s), -EBADF);
    qctl_syncer_kick(s);
    assert_int_equal(qctl_syncer_stop(s), -EBADF);
}

static void stop_without_kick(void **state)
{
    struct qctl_syncer *s;

    (void)state;
    assert_int_equal(qctl_syncer_start(&s, -1), 0);
    assert_int_equal(qctl_syncer_stop(s), 0); /* nothing asked: no fdatasync ran */
    assert_int_equal(qctl_syncer_stop(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kicks_while_writing),
        cmocka_unit_test(failure_is_reported),
        cmocka_unit_test(stop_without_kick),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

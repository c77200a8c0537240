/* SIGHUP coalescing (daemon/qd_reload.h): at most one reload every QD_RELOAD_MIN_MS, a burst
 * inside the window becomes one scheduled reload at its end, the admin request counts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "qd_reload.h"

static void test_first_signal_reloads_at_once(void **state)
{
    struct qd_reload r = {0};

    (void)state;
    assert_int_equal(qd_reload_signal(&r, 0), QD_RELOAD_NOW); /* also at time 0 */
    qd_reload_done(&r, 0);
    assert_false(qd_reload_due(&r, 5000));
    assert_int_equal(qd_reload_signal(&r, QD_RELOAD_MIN_MS), QD_RELOAD_NOW);
}

static void test_burst_is_one_scheduled_reload(void **state)
{
    struct qd_reload r = {0};
    unsigned reloads = 0;

    (void)state;
    /* a SIGHUP every 20 ms for 5 s, the tick every 100 ms */
    for (uint64_t t = 10000; t < 15000; t += 20) {
        enum qd_reload_action a = qd_reload_signal(&r, t);

        if (a == QD_RELOAD_NOW) {
            qd_reload_done(&r, t);
            reloads++;
        } else if (a == QD_RELOAD_DEFERRED) {
            assert_int_equal(r.due, r.last + QD_RELOAD_MIN_MS);
        }
        if (t % 100 == 0 && qd_reload_due(&r, t)) {
            qd_reload_done(&r, t);
            reloads++;
        }
    }
    assert_int_equal(reloads, 5); /* once a second, not 250 times */
    /* the last signals are not lost: their reload is still scheduled */
    assert_true(r.due > 0);
    assert_false(qd_reload_due(&r, r.due - 1));
    assert_true(qd_reload_due(&r, r.due));
}

static void test_admin_reload_takes_the_scheduled_ones_place(void **state)
{
    struct qd_reload r = {0};

    (void)state;
    qd_reload_done(&r, 100);
    assert_int_equal(qd_reload_signal(&r, 200), QD_RELOAD_DEFERRED);
    assert_int_equal(qd_reload_signal(&r, 300), QD_RELOAD_COALESCED);
    qd_reload_done(&r, 400); /* the admin request: it read the newest configuration */
    assert_false(qd_reload_due(&r, 100000));
    assert_int_equal(qd_reload_signal(&r, 500), QD_RELOAD_DEFERRED);
    assert_int_equal(r.due, 400 + QD_RELOAD_MIN_MS);
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_signal_reloads_at_once),
        cmocka_unit_test(test_burst_is_one_scheduled_reload),
        cmocka_unit_test(test_admin_reload_takes_the_scheduled_ones_place),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

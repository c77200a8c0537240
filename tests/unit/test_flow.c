/* Output flow control (daemon/qd_flow.c): a connection's own high-water mark and the total of all
 * connections' queued output stop it, with hysteresis; connections that read their results are
 * not stopped for those that do not. Also a simulated run: many non-readers and one reader, the
 * total stays within its limit plus what stopped connections can still be sent. */
#include <stdio.h>
#include <stdlib.h>

#include "qd_flow.h"
#include "qt_test.h"

#define MB (1u << 20)

static const struct qd_flow_limits L = {8 * MB, 64 * MB};

static void test_own_high_water(void **state)
{
    (void)state;
    assert_false(qd_flow_stopped(&L, 8 * MB, 8 * MB, 1, false));
    assert_true(qd_flow_stopped(&L, 8 * MB + 1, 8 * MB + 1, 1, false));
    /* Hysteresis: a stopped connection goes on only at half the mark. */
    assert_true(qd_flow_stopped(&L, 4 * MB + 1, 4 * MB + 1, 1, true));
    assert_false(qd_flow_stopped(&L, 4 * MB, 4 * MB, 1, true));
    assert_false(qd_flow_stopped(&L, 0, 0, 1, true));
}

static void test_total(void **state)
{
    (void)state;
    /* Over the total, a connection holding more than its share (64 MB / 16) stops... */
    assert_true(qd_flow_stopped(&L, 4 * MB + 1, 64 * MB + 1, 16, false));
    /* ...one holding less (a client that reads) does not. */
    assert_false(qd_flow_stopped(&L, 4 * MB, 64 * MB + 1, 16, false));
    assert_false(qd_flow_stopped(&L, 0, 1000 * MB, 16, false));
    /* The share has a floor. */
    assert_false(qd_flow_stopped(&L, QD_FLOW_MIN_SHARE, 65 * MB, 60000, false));
    assert_true(qd_flow_stopped(&L, QD_FLOW_MIN_SHARE + 1, 65 * MB, 60000, false));
    /* A stopped connection goes on when the total is back to 7/8 of the limit, */
    assert_true(qd_flow_stopped(&L, 3 * MB, 56 * MB + 1, 16, true));
    assert_false(qd_flow_stopped(&L, 3 * MB, 56 * MB, 16, true));
    /* or its own output to half its share. */
    assert_false(qd_flow_stopped(&L, 2 * MB, 200 * MB, 16, true));
    /* No total limit. */
    struct qd_flow_limits l0 = {8 * MB, 0};
    assert_false(qd_flow_stopped(&l0, 8 * MB, ~0ull, 1, false));
    assert_false(qd_flow_stopped(&l0, 2 * MB, ~0ull, 1, true));
}

/* 100 connections that never read and keep receiving results while not stopped (up to `late`
 * bytes more once stopped: the items already running), and one that reads everything at once:
 * the total stays below the limit plus every connection's late bytes, and the reader is never
 * stopped. */
static void test_simulated_non_readers(void **state)
{
    enum { N = 100 };

    const uint64_t step = 64 * 1024, late = 512 * 1024;
    uint64_t out[N + 1] = {0}, extra[N + 1] = {0}, total = 0, peak = 0;
    bool stopped[N + 1] = {false};

    (void)state;
    for (int round = 0; round < 20000; round++) {
        int k = round % (N + 1);

        if (!stopped[k] || extra[k] < late) { /* a result for connection k */
            extra[k] += stopped[k] ? step : 0;
            out[k] += step;
            total += step;
        }
        if (k == N) { /* the reader */
            total -= out[k];
            out[k] = 0;
        }
        for (int j = 0; j <= N; j++) {
            bool was = stopped[j];

            stopped[j] = qd_flow_stopped(&L, out[j], total, N + 1, was);
            if (!stopped[j])
                extra[j] = 0;
        }
        assert_false(stopped[N]);
        peak = total > peak ? total : peak;
    }
    assert_true(peak <= L.total + (N + 1) * (late + step));
    assert_true(total > L.total / 2); /* the non-readers did fill it */
}

static void test_input_reservations(void **state)
{
    (void)state;
    assert_true(qd_flow_input_fits(64 * MB, 0, 200 * MB)); /* none held: always */
    assert_true(qd_flow_input_fits(64 * MB, 10 * MB, 54 * MB));
    assert_false(qd_flow_input_fits(64 * MB, 10 * MB, 54 * MB + 1));
    assert_false(qd_flow_input_fits(64 * MB, 1, 65 * MB));
    assert_true(qd_flow_input_fits(0, 1000 * MB, 1000 * MB)); /* no limit */
    assert_false(qd_flow_input_fits(64 * MB, ~0ull, 1));
}

static void test_keep_frame_buffer(void **state)
{
    (void)state;
    assert_false(qd_flow_keep_frame_buffer(QD_TAKE_FRAME_BYTES, QD_TAKE_FRAME_BYTES - 1));
    assert_true(qd_flow_keep_frame_buffer(QD_TAKE_FRAME_BYTES + 64 * 1024, QD_TAKE_FRAME_BYTES));
    assert_true(qd_flow_keep_frame_buffer(60 * MB, 57 * MB)); /* grown for this frame */
    /* a buffer grown for an earlier 64 MB frame, then a 1 MB one read into it: copy */
    assert_false(qd_flow_keep_frame_buffer(64 * MB, 1 * MB + 100));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_keep_frame_buffer),     cmocka_unit_test(test_input_reservations),
    cmocka_unit_test(test_own_high_water),        cmocka_unit_test(test_total),
    cmocka_unit_test(test_simulated_non_readers),
};

QT_TEST_MAIN(tests)

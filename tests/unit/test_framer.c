/* The stream framer (proto/qp_framer.h): headers split byte by byte, many frames in one read,
 * an oversize or empty header refused before any allocation for its body, short reads without
 * reallocation, a large frame read in few reads and its memory given back, misuse refused, and
 * the bound on the buffer under random chunkings. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qp.h"
#include "qt_test.h"
#include "qt_test_diag.h"

#define MAXF QP_DEFAULT_MAX_FRAME

/* Appends one frame (header + body of len bytes, byte i of the body = seed + i) to out. */
static size_t put_frame(uint8_t *out, uint32_t len, uint8_t seed)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    for (uint32_t i = 0; i < len; i++)
        out[QP_HEADER_LEN + i] = (uint8_t)(seed + i);
    return QP_HEADER_LEN + (size_t)len;
}

/* One read of at most limit bytes from src[*pos..n) into the framer; returns the space it was
 * offered. */
static size_t read_once(struct qp_framer *f, const uint8_t *src, size_t n, size_t *pos,
                        size_t limit)
{
    uint8_t *dst;
    size_t room, k;

    assert_ok(qp_framer_space(f, 0, &dst, &room));
    k = QT_MIN(QT_MIN(room, limit), n - *pos);
    memcpy(dst, src + *pos, k);
    qp_framer_commit(f, k);
    *pos += k;
    return room;
}

static void check_body(const uint8_t *b, uint32_t len, uint32_t want, uint8_t seed)
{
    assert_int_equal(len, want);
    for (uint32_t i = 0; i < len; i++)
        assert_int_equal(b[i], (uint8_t)(seed + i));
}

static void header_split_byte_by_byte(void **state)
{
    uint8_t bytes[64];
    size_t n = put_frame(bytes, 20, 7);
    struct qp_framer f;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    qp_framer_init(&f);
    for (size_t i = 0; i < n; i++) {
        uint8_t *dst;
        size_t room;

        assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
        assert_ok(qp_framer_space(&f, 1, &dst, &room));
        assert_true(room >= 1);
        dst[0] = bytes[i];
        qp_framer_commit(&f, 1);
    }
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 20, 7);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_int_equal(qp_framer_pending(&f), 0);
    qp_framer_done(&f);
}

static void many_frames_in_one_read(void **state)
{
    uint8_t bytes[4096];
    size_t n = 0;
    struct qp_framer f;
    uint8_t *dst;
    size_t room;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    for (uint32_t i = 0; i < 50; i++)
        n += put_frame(bytes + n, 1 + i, (uint8_t)i);
    n += put_frame(bytes + n, 30, 99) - 10; /* and the start of one more */
    qp_framer_init(&f);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    assert_true(room >= n);
    memcpy(dst, bytes, n);
    qp_framer_commit(&f, n);
    for (uint32_t i = 0; i < 50; i++) {
        assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
        check_body(b, len, 1 + i, (uint8_t)i);
    }
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_int_equal(qp_framer_pending(&f), 24);
    qp_framer_consume(&f);
    assert_int_equal(qp_framer_pending(&f), 24);
    /* The rest of the last frame. */
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    assert_true(room >= 10);
    memcpy(dst, bytes + n, 10);
    qp_framer_commit(&f, 10);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 30, 99);
    qp_framer_done(&f);
}

/* A taken buffer keeps the bodies returned so far; the frames after them (whole or cut short)
 * come out of the new buffer. Nothing is taken before a frame was returned. */
static void take_keeps_bodies_and_moves_the_rest(void **state)
{
    uint8_t bytes[8192];
    size_t n = 0;
    struct qp_framer f;
    uint8_t *dst, *kept;
    size_t room;
    const uint8_t *b, *b1;
    uint32_t len, len1;

    (void)state;
    n += put_frame(bytes + n, 3000, 1);
    n += put_frame(bytes + n, 40, 2);
    n += put_frame(bytes + n, 100, 3) - 60;
    qp_framer_init(&f);
    assert_null(qp_framer_take(&f));
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    memcpy(dst, bytes, n);
    qp_framer_commit(&f, n);
    assert_null(qp_framer_take(&f));
    assert_int_equal(qp_framer_next(&f, MAXF, &b1, &len1), 1);
    kept = qp_framer_take(&f);
    assert_non_null(kept);
    check_body(b1, len1, 3000, 1); /* still valid: it lives in kept */
    assert_int_equal(qp_framer_pending(&f), n - (QP_HEADER_LEN + 3000));
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 40, 2);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    memcpy(dst, bytes + n, 60);
    qp_framer_commit(&f, 60);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 100, 3);
    check_body(b1, len1, 3000, 1);
    free(kept);
    qp_framer_done(&f);
}

/* A body exactly max_frame long passes, one byte more is refused from the header alone: the
 * buffer never grows for it, and the error sticks. */
static void oversize_header_refused_before_allocation(void **state)
{
    static const uint8_t ok_hdr[] = {0, 0, 0x10, 0x00};  /* 4096 = QP_MIN_MAX_FRAME */
    static const uint8_t big_hdr[] = {0, 0, 0x10, 0x01}; /* 4097 */
    static const uint8_t huge_hdr[] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t *hdrs[] = {big_hdr, huge_hdr};
    struct qp_framer f;
    uint8_t *dst;
    size_t room;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    for (size_t k = 0; k < 2; k++) {
        qp_framer_init(&f);
        assert_ok(qp_framer_space(&f, 16, &dst, &room));
        memcpy(dst, hdrs[k], QP_HEADER_LEN);
        qp_framer_commit(&f, QP_HEADER_LEN);
        assert_int_equal(f.cap, 16); /* only the read the caller asked for */
        assert_err(qp_framer_next(&f, QP_MIN_MAX_FRAME, &b, &len), QT_ETOOBIG);
        assert_err(qp_framer_next(&f, UINT32_MAX, &b, &len), QT_ETOOBIG);
        assert_err(qp_framer_space(&f, 16, &dst, &room), QT_ETOOBIG);
        assert_int_equal(f.cap, 16);
        qp_framer_done(&f);
    }
    qp_framer_init(&f);
    assert_ok(qp_framer_space(&f, 16, &dst, &room));
    memcpy(dst, ok_hdr, QP_HEADER_LEN);
    qp_framer_commit(&f, QP_HEADER_LEN);
    assert_int_equal(qp_framer_next(&f, QP_MIN_MAX_FRAME, &b, &len), 0);
    assert_ok(qp_framer_space(&f, 16, &dst, &room));
    assert_true(room >= QP_MIN_MAX_FRAME); /* the whole body fits in the next read */
    assert_true(f.cap <= QP_HEADER_LEN + QP_MIN_MAX_FRAME + 16);
    qp_framer_done(&f);
}

/* Short reads of a stream of small frames allocate once: the buffer grows by whole reads and
 * only when less than half a read is left, so it is not reallocated read after read. */
static void short_reads_allocate_once(void **state)
{
    uint8_t bytes[64 << 10];
    size_t n = 0, pos = 0, got = 0, growths = 0, cap = 0;
    struct qp_framer f;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    for (uint32_t i = 0; i < 200; i++)
        n += put_frame(bytes + n, 10 + (i * 37) % 290, (uint8_t)i);
    qp_framer_init(&f);
    while (pos < n) {
        (void)read_once(&f, bytes, n, &pos, 7);
        growths += f.cap != cap;
        cap = f.cap;
        while (qp_framer_next(&f, MAXF, &b, &len) == 1) {
            check_body(b, len, 10 + (uint32_t)(got * 37) % 290, (uint8_t)got);
            got++;
        }
    }
    assert_int_equal(got, 200);
    assert_int_equal(growths, 1);
    assert_int_equal(f.cap, QP_FRAMER_CHUNK);
    qp_framer_done(&f);
}

/* A zero length is not a frame (SCHEMA.md): QT_EPARSE, final, the next frame never read. */
static void empty_frame_refused(void **state)
{
    uint8_t bytes[64] = {0, 0, 0, 0};
    size_t n = QP_HEADER_LEN + put_frame(bytes + QP_HEADER_LEN, 3, 1);
    struct qp_framer f;
    uint8_t *dst;
    size_t room;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    qp_framer_init(&f);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    memcpy(dst, bytes, n);
    qp_framer_commit(&f, n);
    assert_err(qp_framer_next(&f, MAXF, &b, &len), QT_EPARSE);
    assert_err(qp_framer_next(&f, MAXF, &b, &len), QT_EPARSE);
    assert_err(qp_framer_space(&f, 0, &dst, &room), QT_EPARSE);
    qp_framer_done(&f);
    /* A framer that was done is as new. */
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    qp_framer_done(&f);
}

/* A 1 MiB frame arrives in two reads (space grows to the whole frame once the header is known)
 * and after it the buffer shrinks back to one chunk; not while the next large frame is
 * pending, though. */
static void large_frame_memory_given_back(void **state)
{
    const uint32_t big = 1u << 20;
    const size_t whole = QP_HEADER_LEN + (size_t)big;
    uint8_t *bytes = malloc(3 * whole);
    size_t n, pos = 0, room;
    struct qp_framer f;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    assert_non_null(bytes);
    n = put_frame(bytes, big, 3);
    n += put_frame(bytes + n, big, 4);
    n += put_frame(bytes + n, 5, 9);
    qp_framer_init(&f);
    assert_int_equal(read_once(&f, bytes, n, &pos, SIZE_MAX), QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    room = read_once(&f, bytes, n, &pos, SIZE_MAX);
    assert_int_equal(room, whole - QP_FRAMER_CHUNK); /* exactly the rest of the frame */
    assert_int_equal(f.cap, whole);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, big, 3);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    qp_framer_consume(&f);
    assert_int_equal(f.cap, QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_pending(&f), 0);

    /* The second large frame: a short read leaves 100 bytes of it, and the read after that
     * (one chunk) brings them and the start of the third frame. */
    (void)read_once(&f, bytes, n, &pos, SIZE_MAX);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    (void)read_once(&f, bytes, n, &pos, whole - QP_FRAMER_CHUNK - 100);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_int_equal(read_once(&f, bytes, n, &pos, 102), QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, big, 4);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    qp_framer_consume(&f);
    assert_int_equal(f.cap, QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_pending(&f), 2);
    (void)read_once(&f, bytes, n, &pos, SIZE_MAX);
    assert_int_equal(pos, n);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 5, 9);
    qp_framer_done(&f);
    free(bytes);
}

/* The shrink waits while a large frame is pending: its header came with the end of the frame
 * before it. */
static void no_shrink_while_large_frame_pending(void **state)
{
    const uint32_t big = 1u << 20;
    const size_t whole = QP_HEADER_LEN + (size_t)big;
    uint8_t *bytes = malloc(2 * whole);
    size_t n, pos = 0;
    struct qp_framer f;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    assert_non_null(bytes);
    n = put_frame(bytes, big, 3);
    n += put_frame(bytes + n, big, 4);
    qp_framer_init(&f);
    (void)read_once(&f, bytes, n, &pos, SIZE_MAX);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    (void)read_once(&f, bytes, n, &pos, whole - QP_FRAMER_CHUNK - 100);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    /* One chunk: the last 100 bytes of the first frame, then the second frame's start. */
    assert_int_equal(read_once(&f, bytes, n, &pos, SIZE_MAX), QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, big, 3);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    qp_framer_consume(&f);
    assert_true(f.cap > 4 * (size_t)QP_FRAMER_CHUNK); /* the second frame needs it again */
    assert_int_equal(qp_framer_pending(&f), QP_FRAMER_CHUNK - 100);
    (void)read_once(&f, bytes, n, &pos, SIZE_MAX);
    assert_int_equal(pos, n);
    assert_true(f.cap <= whole + QP_FRAMER_CHUNK);
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, big, 4);
    qp_framer_consume(&f);
    assert_int_equal(f.cap, QP_FRAMER_CHUNK);
    qp_framer_done(&f);
    free(bytes);
}

/* Space while a header or a frame waits to be taken out would grow the buffer unchecked. */
static void space_before_next_refused(void **state)
{
    uint8_t bytes[32];
    size_t n = put_frame(bytes, 8, 0);
    struct qp_framer f;
    uint8_t *dst;
    size_t room;
    const uint8_t *b;
    uint32_t len;

    (void)state;
    qp_framer_init(&f);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    memcpy(dst, bytes, QP_HEADER_LEN);
    qp_framer_commit(&f, QP_HEADER_LEN);
    assert_err(qp_framer_space(&f, 0, &dst, &room), -EBUSY); /* unchecked header */
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 0);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    memcpy(dst, bytes + QP_HEADER_LEN, n - QP_HEADER_LEN);
    qp_framer_commit(&f, n - QP_HEADER_LEN);
    assert_err(qp_framer_space(&f, 0, &dst, &room), -EBUSY); /* whole frame waiting */
    assert_int_equal(qp_framer_next(&f, MAXF, &b, &len), 1);
    check_body(b, len, 8, 0);
    assert_ok(qp_framer_space(&f, 0, &dst, &room));
    assert_int_equal(qp_framer_pending(&f), 0);
    qp_framer_done(&f);
}

/* Every way of cutting a stream of small and medium frames into reads gives the same frames,
 * and the buffer stays within max_frame + header + one read. */
static void random_chunkings(void **state)
{
    const uint32_t maxf = 3 * QP_FRAMER_CHUNK;
    size_t cap = 0, n = 0;
    uint8_t *bytes = malloc(16u << 20);
    uint32_t lens[400];
    unsigned seed = 12345;

    (void)state;
    assert_non_null(bytes);
    for (size_t i = 0; i < QT_ARRAY_SIZE(lens); i++) {
        seed = seed * 1103515245u + 12345u;
        lens[i] = i % 37 == 5 ? maxf - (seed >> 20) % 3 : 1 + (seed >> 16) % 700;
        n += put_frame(bytes + n, lens[i], (uint8_t)i);
    }
    for (int round = 0; round < 20; round++) {
        struct qp_framer f;
        size_t pos = 0, got = 0;

        qp_framer_init(&f);
        while (got < QT_ARRAY_SIZE(lens)) {
            const uint8_t *b;
            uint32_t len;
            uint8_t *dst;
            size_t room, k;
            int r;

            while ((r = qp_framer_next(&f, maxf, &b, &len)) == 1) {
                check_body(b, len, lens[got], (uint8_t)got);
                got++;
            }
            assert_int_equal(r, 0);
            if (got == QT_ARRAY_SIZE(lens))
                break;
            seed = seed * 1103515245u + 12345u;
            assert_ok(qp_framer_space(&f, round % 2 ? 1 + (seed >> 8) % 5000 : 0, &dst, &room));
            k = QT_MIN(room, n - pos);
            seed = seed * 1103515245u + 12345u;
            if (round % 3 == 0)
                k = QT_MIN(k, 1 + (seed >> 16) % 17);
            memcpy(dst, bytes + pos, k);
            qp_framer_commit(&f, k);
            pos += k;
            cap = QT_MAX(cap, f.cap);
            assert_true(f.cap <= maxf + QP_HEADER_LEN + QP_FRAMER_CHUNK);
        }
        assert_int_equal(pos, n);
        assert_int_equal(qp_framer_pending(&f), 0);
        qp_framer_done(&f);
    }
    assert_true(cap > maxf); /* the large frames were read whole */
    free(bytes);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(header_split_byte_by_byte),
    cmocka_unit_test(many_frames_in_one_read),
    cmocka_unit_test(take_keeps_bodies_and_moves_the_rest),
    cmocka_unit_test(oversize_header_refused_before_allocation),
    cmocka_unit_test(short_reads_allocate_once),
    cmocka_unit_test(empty_frame_refused),
    cmocka_unit_test(large_frame_memory_given_back),
    cmocka_unit_test(no_shrink_while_large_frame_pending),
    cmocka_unit_test(space_before_next_refused),
    cmocka_unit_test(random_chunkings),
};

QT_TEST_MAIN(tests)

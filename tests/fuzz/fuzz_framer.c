/* libFuzzer target for the stream framer (proto/qp_framer.h). The first four bytes choose the
 * frame limit and seed the cutting of the rest into reads (sizes from 1 byte to beyond a whole
 * chunk, and space hints of every size); the rest is the byte stream. The framer must give
 * exactly the frames, and the header error, that cutting the whole stream at once by its length
 * headers gives; its buffer must stay within max_frame + header + one read; and every frame
 * it returns must be readable to its last byte (ASan checks the reads), also from a buffer
 * taken with qp_framer_take, after which the rest of the stream must come out unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results kept so that the reads of bodies are not optimised away. */
static volatile uint8_t sink;

static uint32_t next_rand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* The reference: the next frame of the whole stream at *off, as qp_framer_next defines it. */
static int ref_next(const uint8_t *p, size_t n, size_t *off, uint32_t max, const uint8_t **body,
                    uint32_t *len)
{
    int r;

    if (n - *off < QP_HEADER_LEN)
        return 0;
    r = qp_frame_header(p + *off, max, len);
    if (r < 0)
        return r;
    if (n - *off - QP_HEADER_LEN < *len)
        return 0;
    *body = p + *off + QP_HEADER_LEN;
    *off += QP_HEADER_LEN + *len;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qp_framer f;
    uint32_t seed, max;
    size_t pos = 0, ref_off = 0;
    int r = 0, ref_r = 0;

    if (size < 4)
        return 0;
    seed = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    data += 4, size -= 4;
    /* Limits from a few bytes to twice the stream, so both sides of the check are reached. */
    max = 1 + (uint32_t)(seed % (2 * size + 16));
    if (seed & 1)
        max = QP_MIN_MAX_FRAME + seed % (8 * QP_FRAMER_CHUNK);
    qp_framer_init(&f);
    for (;;) {
        const uint8_t *body, *ref_body;
        uint32_t len, ref_len;
        uint8_t *dst;
        size_t room, k, hint;

        while ((r = qp_framer_next(&f, max, &body, &len)) == 1) {
            ref_r = ref_next(data, pos, &ref_off, max, &ref_body, &ref_len);
            if (ref_r != 1 || ref_len != len || memcmp(body, ref_body, len) != 0)
                abort();
            if (len)
                sink ^= body[0] ^ body[len - 1];
            if (next_rand(&seed) % 8 == 0) { /* a reader keeps the buffer (qp_framer_take) */
                uint8_t *kept = qp_framer_take(&f);

                if (!kept)
                    abort(); /* a frame was just returned: there is something to take */
                if (len)     /* the body lives on in the taken buffer */
                    sink ^= body[0] ^ body[len - 1];
                free(kept);
            }
        }
        ref_r = ref_next(data, pos, &ref_off, max, &ref_body, &ref_len);
        if (r != ref_r)
            abort();
        if (r < 0 || pos == size)
            break;
        if (next_rand(&seed) % 4 == 0)
            qp_framer_consume(&f);
        switch (next_rand(&seed) % 4) {
        case 0:
            hint = 0;
            break;
        case 1:
            hint = 1 + next_rand(&seed) % 16;
            break;
        case 2:
            hint = next_rand(&seed) % (2 * QP_FRAMER_CHUNK);
            break;
        default:
            hint = SIZE_MAX;
        }
        if (qp_framer_space(&f, hint, &dst, &room) < 0)
            break; /* out of memory (fuzzer malloc limit): the stream would be dropped */
        if (room == 0)
            abort();
        k = next_rand(&seed) % 3 == 0 ? 1 + next_rand(&seed) % 7 : room;
        k = k < room ? k : room;
        k = k < size - pos ? k : size - pos;
        memcpy(dst, data + pos, k);
        qp_framer_commit(&f, k);
        pos += k;
        if (f.cap > (size_t)max + QP_HEADER_LEN + QP_FRAMER_CHUNK)
            abort();
    }
    if (r == 0 && qp_framer_pending(&f) != pos - ref_off)
        abort();
    qp_framer_done(&f);
    return 0;
}

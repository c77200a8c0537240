/* Valid requests and their semantic mutations (see qt_reqgen.h). */
#include "qt_reqgen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char design_json[] =
    "{\"name\": \"z basis\", \"d\": 2, \"povm\": [[[1, 0], [0, 0]], [[0, 0], [0, 1]]]}";

/* A nopovm d = 2 sample (4 values): |0><0|. */
static const double sample4[4] = {1.0, 0.0, 0.5, 0.5};

static int pack_samples(struct qp_writer *w, enum qp_method m, bool custom)
{
    struct qp_job j;
    double v[8];
    int r;

    qp_job_init(&j);
    memcpy(v, sample4, sizeof(sample4));
    memcpy(v + 4, sample4, sizeof(sample4));
    j.values = v;
    j.m = 4;
    j.n = m == QP_M_SUBMIT ? 2 : 1;
    snprintf(j.design, sizeof(j.design), "%s", custom ? "custom" : "nopovm");
    if (custom)
        snprintf(j.design_id, sizeof(j.design_id), "c0ffee");
    j.methods[QT_METHOD_LINEAR] = true;
    j.methods[QT_METHOD_MLE] = true;
    j.timeout_ms = 1000;
    j.progress_ms = m == QP_M_SUBMIT ? 100 : 0;
    if (m == QP_M_RECONSTRUCT) /* error bars, so that mutations reach their checks */
        j.boot = (struct qt_boot_req){.resamples = 10,
                                      .kind = QT_RESAMPLE_PARAMETRIC,
                                      .has_seed = true,
                                      .seed = 3,
                                      .confidence = 0.9,
                                      .shots = 100};
    r = qp_pack_job(w, QT_REQGEN_ID, m, &j, UINT32_MAX);
    j.values = NULL;
    qp_job_done(&j);
    return r;
}

int qt_reqgen_valid(enum qp_method m, struct qp_writer *w)
{
    struct qp_design_d items[2] = {{"nopovm", 2}, {"mub", 3}};

    switch (m) {
    case QP_M_HELLO:
        return qp_pack_hello(w, QT_REQGEN_ID, "reqgen", UINT32_MAX);
    case QP_M_RECONSTRUCT:
    case QP_M_SUBMIT:
        return pack_samples(w, m, false);
    case QP_M_CANCEL:
        return qp_pack_cancel(w, QT_REQGEN_ID, 3, UINT32_MAX);
    case QP_M_DESIGN_PUT:
        return qp_pack_design_put(w, QT_REQGEN_ID, design_json, strlen(design_json), UINT32_MAX);
    case QP_M_DETECTOR_PUT: {
        static const char det[] = "{\"efficiencies\": [1, 1, 1, 1, 0.9, 0.9, 0.9, 0.9, 1, 1, "
                                  "1, 1, 1, 1, 1, 1]}";
        struct qp_detector_put dp = {det, sizeof(det) - 1, "nopovm", "", 4};

        return qp_pack_detector_put(w, QT_REQGEN_ID, &dp, UINT32_MAX);
    }
    case QP_M_CACHE_WARM:
        return qp_pack_cache_warm(w, QT_REQGEN_ID, items, 2, UINT32_MAX);
    case QP_M_CACHE_EVICT:
        return qp_pack_simple(w, QT_REQGEN_ID, m, "nopovm", 4, UINT32_MAX);
    case QP_M_STATUS:
    case QP_M_STATS:
    case QP_M_CACHE_LIST:
    case QP_M_CACHE_VERIFY:
    case QP_M_RELOAD:
        return qp_pack_simple(w, QT_REQGEN_ID, m, NULL, 0, UINT32_MAX);
    default:
        return -EINVAL;
    }
}

/* ---- mutations ---- */

struct arr {
    msgpack_object_kv kv[3];
    msgpack_object shape[2];
    uint8_t data[64 * 16];
};

static struct arr arrays[6];

static msgpack_object str(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};

    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object uint_(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};

    o.via.u64 = v;
    return o;
}

/* {dtype, shape: [a, b], data: bin of bytes} with data filled with val. */
static msgpack_object array_obj(struct arr *a, const char *dtype, uint64_t r, uint64_t c,
                                size_t bytes, double val)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_MAP};

    a->shape[0] = uint_(r);
    a->shape[1] = uint_(c);
    for (size_t i = 0; i + 8 <= bytes && i + 8 <= sizeof(a->data); i += 8)
        memcpy(a->data + i, &val, 8);
    a->kv[0].key = str("dtype");
    a->kv[0].val = str(dtype);
    a->kv[1].key = str("shape");
    a->kv[1].val.type = MSGPACK_OBJECT_ARRAY;
    a->kv[1].val.via.array.ptr = a->shape;
    a->kv[1].val.via.array.size = 2;
    a->kv[2].key = str("data");
    a->kv[2].val.type = MSGPACK_OBJECT_BIN;
    a->kv[2].val.via.bin.ptr = (const char *)a->data;
    a->kv[2].val.via.bin.size = (uint32_t)(bytes < sizeof(a->data) ? bytes : sizeof(a->data));
    o.via.map.ptr = a->kv;
    o.via.map.size = 3;
    return o;
}

static msgpack_object variant(unsigned v)
{
    static const char long_str[] =
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    static msgpack_object methods[3];
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};

    switch (v % QT_REQGEN_VARIANTS) {
    case 1:
        o.type = MSGPACK_OBJECT_BOOLEAN;
        o.via.boolean = true;
        break;
    case 2:
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = -1;
        break;
    case 3:
        return uint_(0);
    case 4:
        return uint_(1ull << 32);
    case 5:
        return uint_(UINT64_MAX);
    case 6:
        o.type = MSGPACK_OBJECT_FLOAT64;
        o.via.f64 = NAN;
        break;
    case 7:
        o.type = MSGPACK_OBJECT_FLOAT64;
        o.via.f64 = INFINITY;
        break;
    case 8:
        o.type = MSGPACK_OBJECT_FLOAT64;
        o.via.f64 = 1e308;
        break;
    case 9:
        return str("");
    case 10:
        return str("nopovm");
    case 11:
        return str("custom");
    case 12:
        return str(long_str);
    case 13:
        o.type = MSGPACK_OBJECT_BIN;
        o.via.bin.ptr = "12345678";
        o.via.bin.size = 8;
        break;
    case 14:
        o.type = MSGPACK_OBJECT_ARRAY;
        break;
    case 15:
        methods[0] = str("linear");
        methods[1] = str("mle");
        methods[2] = str("linear");
        o.type = MSGPACK_OBJECT_ARRAY;
        o.via.array.ptr = methods;
        o.via.array.size = 3;
        break;
    case 16:
        o.type = MSGPACK_OBJECT_MAP;
        break;
    case 17: /* nopovm d = 4 values */
        return array_obj(&arrays[0], "f64le", 16, 1, 16 * 8, 0.25);
    case 18: /* a 2 x 2 target */
        return array_obj(&arrays[1], "c128le", 2, 2, 4 * 16, 0.5);
    case 19: /* an 8 x 8 target */
        return array_obj(&arrays[2], "c128le", 8, 8, 64 * 16, 0.125);
    case 20:
        return array_obj(&arrays[3], "f64le", 0, 1, 0, 0.0);
    case 21:
        return array_obj(&arrays[4], "f32le", 4, 1, 16, 1.0);
    case 22: /* values with a NaN */
        return array_obj(&arrays[5], "f64le", 4, 1, 32, NAN);
    case 23:
        return str("c0ffee");
    default:
        break;
    }
    return o;
}

static void mutate_envelope(msgpack_object *env, unsigned v)
{
    static msgpack_object id;

    switch (v % 4) {
    case 0:
        env->via.array.ptr[0] = uint_(QP_NOTIFICATION);
        break;
    case 1:
        env->via.array.ptr[2] = str("result");
        break;
    case 2:
        id.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        id.via.i64 = -5;
        env->via.array.ptr[1] = id;
        break;
    default:
        env->via.array.ptr[2] = str("no.such.method");
    }
}

int qt_reqgen_mutate(const uint8_t *body, size_t len, const uint8_t *ops, size_t nops,
                     struct qp_writer *out)
{
    msgpack_unpacked up;
    msgpack_object env, *pp, params = {.type = MSGPACK_OBJECT_MAP}, env_items[4];
    msgpack_object_kv *kv = NULL;
    size_t off = 0, n = 0, cap;
    int r = 0;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != 4) {
        msgpack_unpacked_destroy(&up);
        return -EINVAL;
    }
    memcpy(env_items, up.data.via.array.ptr, sizeof(env_items));
    env = up.data;
    env.via.array.ptr = env_items;
    pp = &env_items[3];
    if (pp->type == MSGPACK_OBJECT_ARRAY && pp->via.array.size == 1 &&
        pp->via.array.ptr[0].type == MSGPACK_OBJECT_MAP)
        params = pp->via.array.ptr[0];
    cap = params.via.map.size + nops / 2 + 1;
    kv = calloc(cap, sizeof(*kv));
    if (!kv) {
        msgpack_unpacked_destroy(&up);
        return -ENOMEM;
    }
    if (params.via.map.size)
        memcpy(kv, params.via.map.ptr, params.via.map.size * sizeof(*kv));
    n = params.via.map.size;
    for (size_t i = 0; i + 1 < nops; i += 2) {
        unsigned e = ops[i], v = ops[i + 1];

        if (e == 0xff) {
            mutate_envelope(&env, v);
        } else if (e >= 0xf0 && n) { /* remove */
            size_t k = (e - 0xf0u) % n;

            kv[k] = kv[--n];
        } else if (e >= 0xe0 && n) { /* duplicate */
            kv[n] = kv[(e - 0xe0u) % n];
            kv[n++].val = variant(v);
        } else if (e >= 0xd0) { /* unknown key */
            kv[n].key = str("zz");
            kv[n++].val = variant(v);
        } else if (e >= 0xc0) { /* a field of some method, perhaps not this one's */
            static const char *const names[16] = {
                "values", "design",     "design_id",   "d",           "methods", "options",
                "target", "timeout_ms", "progress_ms", "first_index", "id",      "items",
                "proto",  "client",     "physical",    "bell"};

            kv[n].key = str(names[e - 0xc0u]);
            kv[n++].val = variant(v);
        } else if (n) {
            kv[e % n].val = variant(v);
        }
    }
    params.via.map.ptr = kv;
    params.via.map.size = (uint32_t)n;
    qp_frame_begin(out);
    (void)msgpack_pack_array(&out->pk, 4);
    for (int i = 0; i < 3; i++)
        (void)msgpack_pack_object(&out->pk, env_items[i]);
    (void)msgpack_pack_array(&out->pk, 1);
    (void)msgpack_pack_object(&out->pk, params);
    r = qp_frame_end(out, UINT32_MAX);
    free(kv);
    msgpack_unpacked_destroy(&up);
    return r;
}

int qt_reqgen_find_custom(void *ud, const char *id, size_t d, size_t m, size_t *ret_d)
{
    (void)ud;
    if (strcmp(id, "c0ffee") != 0 || m != 4 || (d && d != 2))
        return -ENOENT;
    *ret_d = 2;
    return 0;
}

bool qt_reqgen_id_busy(void *ud, uint32_t id)
{
    (void)ud;
    return id == QT_REQGEN_BUSY_ID;
}

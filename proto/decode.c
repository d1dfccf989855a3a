/*
 * decode.c: reading messages (steps 2 and 3 of proto.h): the envelope,
 * typed fields with path-naming errors, and the bodies of submit_event and
 * its result. Values that the engine checks anyway (unit directions,
 * wavelengths on the grid...) are left to c2_event_validate, so there is
 * one check and one message for each rule.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

const char *c2p_error_name(int code)
{
    switch (code) {
    case C2P_OK:
        return "OK";
#define C2P_ERR_NAME(name, val) \
    case C2P_##name:            \
        return #name;
        C2P_ERRORS(C2P_ERR_NAME)
#undef C2P_ERR_NAME
    }
    return "UNKNOWN";
}

static const char *const proto_type_names[C2P_T_COUNT] = {
    "error",
#define C2P_TYPE_STR(name, str) str,
    C2P_TYPES(C2P_TYPE_STR)
#undef C2P_TYPE_STR
};

const char *c2p_type_name(c2p_type t) { return t < C2P_T_COUNT ? proto_type_names[t] : "error"; }

static int proto_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
}

/* ---- maps and typed fields ---- */

int c2p_map_open(c2p_map *m, const msgpack_object *o, const char *path, c2p_err *err)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s: expected a map", path);
    }
    m->map = &o->via.map;
    m->path = path;
    m->seen = 0;
    for (uint32_t i = 0; i < m->map->size; i++) { /* at most C2P_MAX_MAP entries (scan) */
        const msgpack_object *k = &m->map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            return c2i_fail(err, C2P_BAD_REQUEST, "%s: keys must be strings", path);
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *q = &m->map->ptr[j].key;
            if (q->via.str.size == k->via.str.size && memcmp(q->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0) {
                return c2i_fail(err, C2P_BAD_REQUEST, "%s: key '%.*s' appears twice", path, (int)k->via.str.size,
                                k->via.str.ptr);
            }
        }
    }
    return 0;
}

int c2p_map_open_body(c2p_map *m, const c2p_msg *msg, const char *path, c2p_err *err)
{
    int rc = c2p_map_open(m, msg->root, path, err);
    if (!rc) {
        c2p_map_get(m, "v");
        c2p_map_get(m, "id");
        c2p_map_get(m, "type");
    }
    return rc;
}

const msgpack_object *c2p_map_get(c2p_map *m, const char *key)
{
    for (uint32_t i = 0; i < m->map->size; i++) {
        if (proto_str_is(&m->map->ptr[i].key, key)) {
            m->seen |= 1ull << i;
            return &m->map->ptr[i].val;
        }
    }
    return NULL;
}

int c2p_map_done(const c2p_map *m, c2p_err *err)
{
    for (uint32_t i = 0; i < m->map->size; i++) {
        if (!(m->seen & (1ull << i))) {
            const msgpack_object *k = &m->map->ptr[i].key;
            return c2i_fail(err, C2P_BAD_REQUEST, "%s: unknown key '%.*s'", m->path,
                            (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr);
        }
    }
    return 0;
}

/* The value of key, or an error when required and absent (NULL, *rc set). */
static const msgpack_object *proto_field(c2p_map *m, const char *key, int required, int *rc, c2p_err *err)
{
    const msgpack_object *o = c2p_map_get(m, key);
    *rc = (!o && required) ? c2i_fail(err, C2P_BAD_REQUEST, "%s: '%s' is required", m->path, key) : 0;
    return o;
}

int c2p_get_u64(c2p_map *m, const char *key, int required, uint64_t lo, uint64_t hi, uint64_t *out, c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected an unsigned integer", m->path, key);
    }
    if (o->via.u64 < lo || o->via.u64 > hi) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: %llu is outside [%llu, %llu]", m->path, key,
                        (unsigned long long)o->via.u64, (unsigned long long)lo, (unsigned long long)hi);
    }
    *out = o->via.u64;
    return 0;
}

int c2p_get_i64(c2p_map *m, const char *key, int required, int64_t lo, int64_t hi, int64_t *out, c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    int64_t v;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        v = (int64_t)o->via.u64;
    } else {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected an integer", m->path, key);
    }
    if (v < lo || v > hi) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: %lld is outside [%lld, %lld]", m->path, key, (long long)v,
                        (long long)lo, (long long)hi);
    }
    *out = v;
    return 0;
}

int c2p_get_f64(c2p_map *m, const char *key, int required, double lo, double hi, double *out, c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    double v;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        v = o->via.f64;
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        v = (double)o->via.u64;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        v = (double)o->via.i64;
        break;
    default:
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected a number", m->path, key);
    }
    if (!isfinite(v) || v < lo || v > hi) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: %g is not finite or outside [%g, %g]", m->path, key, v, lo, hi);
    }
    *out = v;
    return 0;
}

int c2p_get_bool(c2p_map *m, const char *key, int required, int *out, c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    if (o->type != MSGPACK_OBJECT_BOOLEAN) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected true or false", m->path, key);
    }
    *out = o->via.boolean;
    return 0;
}

int c2p_get_str(c2p_map *m, const char *key, int required, char *out, size_t cap, c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    if (o->type != MSGPACK_OBJECT_STR) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected a string", m->path, key);
    }
    if (o->via.str.size >= cap || memchr(o->via.str.ptr, 0, o->via.str.size)) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: string longer than %zu bytes or holding NUL", m->path, key,
                        cap - 1);
    }
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return 0;
}

int c2p_get_bin32(c2p_map *m, const char *key, int required, size_t n, size_t comps, void *out, size_t stride,
                  c2p_err *err)
{
    int rc;
    const msgpack_object *o = proto_field(m, key, required, &rc, err);
    if (!o) {
        return rc;
    }
    if (o->type != MSGPACK_OBJECT_BIN) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: expected a bin of little-endian 4-byte values", m->path, key);
    }
    if ((uint64_t)o->via.bin.size != (uint64_t)n * comps * 4) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: %u bytes, expected %zu x %zu x 4 = %llu", m->path, key,
                        o->via.bin.size, n, comps, (unsigned long long)n * comps * 4);
    }
    c2p_copy_le32(out, stride, o->via.bin.ptr, 4 * comps, n, comps);
    return 0;
}

/* ---- envelope ---- */

/* The "error" map of a reply or result in m: its code and message into out. */
static int proto_error(c2p_map *m, c2p_err *out, c2p_err *err)
{
    c2p_map e;
    uint64_t code = 0;
    int rc;
    if ((rc = c2p_map_open(&e, c2p_map_get(m, "error"), "error", err)) ||
        (rc = c2p_get_u64(&e, "code", 1, 1, 1000, &code, err)) ||
        (rc = c2p_get_str(&e, "message", 1, out->msg, sizeof out->msg, err))) {
        return rc;
    }
    out->code = (int)code;
    return 0;
}

static int proto_parse(c2p_msg *m, const void *buf, size_t len, int reply, c2p_err *err)
{
    memset(m, 0, sizeof *m);
    msgpack_unpacked_init(&m->up);
    int rc = c2p_scan(buf, len, err);
    if (rc) {
        return rc;
    }
    size_t off = 0;
    if (msgpack_unpack_next(&m->up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        return c2i_fail(err, C2P_MALFORMED, "message is not one valid msgpack map");
    }
    m->root = &m->up.data;
    c2p_map env;
    if ((rc = c2p_map_open(&env, m->root, "message", err))) {
        return rc;
    }
    uint64_t id = 0, v = 0;
    if ((rc = c2p_get_u64(&env, "id", 1, 0, UINT64_MAX, &id, err))) {
        return rc;
    }
    m->id = id;
    const msgpack_object *t = c2p_map_get(&env, "type");
    if (!t || t->type != MSGPACK_OBJECT_STR) {
        return c2i_fail(err, C2P_BAD_REQUEST, "message: 'type' is required and must be a string");
    }
    for (int i = 1; i < C2P_T_COUNT; i++) {
        if (proto_str_is(t, proto_type_names[i])) {
            m->type = (c2p_type)i;
        }
    }
    if ((rc = c2p_get_u64(&env, "v", 1, 0, UINT32_MAX, &v, err))) {
        return rc;
    }
    m->v = (uint32_t)v;
    if (v != C2P_PROTOCOL_VERSION) {
        return c2i_fail(err, C2P_VERSION, "protocol version %llu is not supported (supported: %d)",
                        (unsigned long long)v, C2P_PROTOCOL_VERSION);
    }
    if (m->type == C2P_T_NONE && !(reply && proto_str_is(t, "error"))) {
        return c2i_fail(err, C2P_UNKNOWN_TYPE, "unknown message type '%.*s'",
                        (int)(t->via.str.size > 64 ? 64 : t->via.str.size), t->via.str.ptr);
    }
    if (reply) {
        if ((rc = c2p_get_bool(&env, "ok", 1, &m->ok, err))) {
            return rc;
        }
        if (!m->ok && (rc = proto_error(&env, &m->error, err))) {
            return rc;
        }
    }
    return 0;
}

int c2p_parse_request(c2p_msg *m, const void *buf, size_t len, c2p_err *err)
{
    return proto_parse(m, buf, len, 0, err);
}

int c2p_parse_reply(c2p_msg *m, const void *buf, size_t len, c2p_err *err) { return proto_parse(m, buf, len, 1, err); }

void c2p_msg_free(c2p_msg *m) { msgpack_unpacked_destroy(&m->up); }

void c2p_msg_move(c2p_msg *dst, c2p_msg *src)
{
    *dst = *src;
    if (src->root == &src->up.data) { /* root points into the struct itself */
        dst->root = &dst->up.data;
    }
    msgpack_unpacked_init(&src->up);
    src->root = NULL;
}

/* ---- submit_event ---- */

/* Finds block key (photons, sources, hits...): its row count *n and its
 * columns' bins (vals[i]: column f[i], NULL when absent), each checked
 * against n, so that what is read or allocated from them is bounded by
 * the message's own size. *present says whether the block was there. */
static int proto_columns(c2p_map *parent, const char *key, uint64_t max_n, const c2p_col *f, size_t nf,
                         const msgpack_object **vals, uint64_t *n, int *present, c2p_err *err)
{
    const msgpack_object *o = c2p_map_get(parent, key);
    *present = o != NULL;
    *n = 0;
    if (!o) {
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "%s.%s", parent->path, key);
    c2p_map b;
    int rc = c2p_map_open(&b, o, path, err);
    if (rc || (rc = c2p_get_u64(&b, "n", 1, 0, max_n, n, err))) {
        return rc;
    }
    for (size_t i = 0; i < nf; i++) {
        const msgpack_object *v = vals[i] = c2p_map_get(&b, f[i].key);
        if (!v && f[i].required) {
            return c2i_fail(err, C2P_BAD_REQUEST, "%s: '%s' is required", path, f[i].key);
        }
        if (v && (v->type != MSGPACK_OBJECT_BIN || (uint64_t)v->via.bin.size != *n * f[i].comps * 4)) {
            return c2i_fail(err, C2P_BAD_REQUEST, "%s.%s: %s%u bytes, expected %llu x %zu x 4", path, f[i].key,
                            v->type == MSGPACK_OBJECT_BIN ? "" : "not a bin, ",
                            v->type == MSGPACK_OBJECT_BIN ? v->via.bin.size : 0u, (unsigned long long)*n,
                            f[i].comps);
        }
    }
    return c2p_map_done(&b, err);
}

/* Reads an optional block into a new array *out of *nout records of size
 * stride: the columns' values, every other byte zero. */
static int proto_block(c2p_map *parent, const char *key, const c2p_col *f, size_t nf, size_t stride, void **out,
                       uint32_t *nout, c2p_err *err)
{
    const msgpack_object *vals[16];
    uint64_t n;
    int present, rc = proto_columns(parent, key, UINT32_MAX, f, nf, vals, &n, &present, err);
    if (rc || !present) {
        return rc;
    }
    char *recs = n <= SIZE_MAX / stride ? malloc((size_t)(n ? n : 1) * stride) : NULL;
    if (!recs) {
        return c2i_fail(err, C2P_TOO_LARGE, "%s.%s: no memory for %llu records", parent->path, key,
                        (unsigned long long)n);
    }
    /* blocks of records that stay in cache while every column is written:
     * column by column, each pass would read the whole array again */
    enum { BLOCK = 1024 };
    for (uint64_t at = 0; at < n; at += BLOCK) {
        uint64_t k = n - at < BLOCK ? n - at : BLOCK;
        char *blk = recs + at * stride;
        memset(blk, 0, k * stride);
        for (size_t i = 0; i < nf; i++) {
            if (vals[i]) {
                c2p_copy_le32(blk + f[i].offset, stride, vals[i]->via.bin.ptr + at * 4 * f[i].comps, 4 * f[i].comps,
                              k, f[i].comps);
            }
        }
    }
    *out = recs;
    *nout = (uint32_t)n;
    return 0;
}

static int proto_want(c2p_map *m, uint32_t *want, c2p_err *err)
{
    const msgpack_object *o = c2p_map_get(m, "want");
    if (!o) {
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        return c2i_fail(err, C2P_BAD_REQUEST, "%s.want: expected an array of strings", m->path);
    }
    *want = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *w = &o->via.array.ptr[i];
        uint32_t bit = proto_str_is(w, "hits")       ? C2_RETURN_HITS
                       : proto_str_is(w, "photons")  ? C2_RETURN_PHOTONS
                       : proto_str_is(w, "channels") ? C2_RETURN_CHANNELS
                                                     : 0;
        if (!bit) {
            return c2i_fail(err, C2P_BAD_REQUEST, "%s.want[%u]: expected \"hits\", \"photons\" or \"channels\"",
                            m->path, i);
        }
        *want |= bit;
    }
    return 0;
}

/* Explicit photons stay where they are: the event's columns point into the
 * message's bins (on a big-endian host, into one swapped copy). */
static int proto_photons(c2p_map *m, uint64_t max, c2p_event *ev, c2p_err *err)
{
    const msgpack_object *vals[C2P_PHOTON_COLS];
    const void *col[C2P_PHOTON_COLS] = {NULL};
    uint64_t n;
    int present, rc = proto_columns(m, "photons", max, c2p_photon_cols, C2P_PHOTON_COLS, vals, &n, &present, err);
    if (rc || !present) {
        return rc;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < C2P_PHOTON_COLS; i++) {
        bytes += vals[i] ? vals[i]->via.bin.size : 0;
    }
    if (!C2P_HOST_LE && !(ev->cols_copy = malloc(bytes ? bytes : 1))) {
        return c2i_fail(err, C2P_TOO_LARGE, "%s.photons: no memory for %zu bytes", m->path, bytes);
    }
    for (size_t i = 0, at = 0; i < C2P_PHOTON_COLS; i++) {
        if (vals[i] && C2P_HOST_LE) {
            col[i] = vals[i]->via.bin.ptr;
        } else if (vals[i]) {
            col[i] = (char *)ev->cols_copy + at;
            c2p_copy_le32((char *)ev->cols_copy + at, 4, vals[i]->via.bin.ptr, 4, vals[i]->via.bin.size / 4, 1);
            at += vals[i]->via.bin.size;
        }
    }
    /* c2p_photon_cols lists the columns in c2_photon_columns' order */
    ev->cols = (c2_photon_columns){col[0], col[1], col[2], col[3], col[4], col[5]};
    ev->nphotons = (uint32_t)n;
    return 0;
}

static int proto_sources(c2p_map *m, c2p_event *ev, c2p_err *err)
{
    return proto_block(m, "sources", c2p_source_cols, C2P_SOURCE_COLS, sizeof(c2_source), (void **)&ev->sources,
                       &ev->nsources, err);
}

static int proto_spectra(c2p_map *m, c2p_event *ev, c2p_err *err)
{
    const msgpack_object *o = c2p_map_get(m, "spectra");
    if (!o) {
        return 0;
    }
    c2p_map b;
    uint64_t n = 0;
    int rc = c2p_map_open(&b, o, "submit_event.spectra", err);
    if (rc || (rc = c2p_get_u64(&b, "n", 1, 1, UINT32_MAX, &n, err))) {
        return rc;
    }
    const msgpack_object *cdf = c2p_map_get(&b, "cdf");
    if (!cdf || cdf->type != MSGPACK_OBJECT_BIN || cdf->via.bin.size % (4 * n) != 0) {
        return c2i_fail(err, C2P_BAD_REQUEST, "submit_event.spectra.cdf: expected a bin of n x nwl little-endian f32");
    }
    size_t nwl = cdf->via.bin.size / (4 * n);
    if (nwl < 2 || nwl > C2_MAX_WAVELENGTHS) {
        return c2i_fail(err, C2P_BAD_REQUEST, "submit_event.spectra.cdf: %zu values per spectrum (2..%u)", nwl,
                        C2_MAX_WAVELENGTHS);
    }
    if ((rc = c2p_map_done(&b, err))) {
        return rc;
    }
    if (!(ev->spectra = malloc(cdf->via.bin.size))) {
        return c2i_fail(err, C2P_TOO_LARGE, "submit_event.spectra: no memory");
    }
    ev->nspectra = (uint32_t)n;
    ev->spectra_nwl = (uint32_t)nwl;
    return c2p_get_bin32(&b, "cdf", 1, n * nwl, 1, ev->spectra, 4, err);
}

/* One event's fields from m (opened, at path m->path): ev is filled, or
 * left empty on failure. */
static int proto_event(c2p_map *m, uint64_t max_photons, c2p_event *ev, c2p_err *err)
{
    memset(ev, 0, sizeof *ev);
    strcpy(ev->geometry, "default");
    ev->want = C2_RETURN_HITS;
    ev->max_steps = C2_DEFAULT_MAX_STEPS;
    uint64_t max_steps = ev->max_steps, deadline = 0;
    int64_t priority = 0;
    int rc;
    if ((rc = c2p_get_str(m, "geometry", 0, ev->geometry, sizeof ev->geometry, err)) ||
        (rc = c2p_get_str(m, "digest", 0, ev->digest, sizeof ev->digest, err)) ||
        (rc = c2p_get_u64(m, "event_id", 0, 0, UINT64_MAX, &ev->event_id, err)) ||
        (rc = c2p_get_u64(m, "seed", 0, 0, UINT64_MAX, &ev->seed, err)) ||
        (rc = c2p_get_u64(m, "max_steps", 0, 1, UINT32_MAX, &max_steps, err)) ||
        (rc = c2p_get_u64(m, "deadline_ms", 0, 0, UINT32_MAX, &deadline, err)) ||
        (rc = c2p_get_i64(m, "priority", 0, -10, 10, &priority, err)) || (rc = proto_want(m, &ev->want, err)) ||
        (rc = proto_photons(m, max_photons, ev, err)) || (rc = proto_sources(m, ev, err)) ||
        (rc = proto_spectra(m, ev, err)) || (rc = c2p_map_done(m, err))) {
        c2p_event_free(ev);
        return rc;
    }
    ev->max_steps = (uint32_t)max_steps;
    ev->deadline_ms = (uint32_t)deadline;
    ev->priority = (int32_t)priority;
    uint64_t total = ev->nphotons;
    for (uint32_t i = 0; i < ev->nsources; i++) {
        total += ev->sources[i].nphotons;
    }
    if (total == 0) {
        c2p_event_free(ev);
        return c2i_fail(err, C2P_BAD_REQUEST, "%s: no photons (give photons or sources with nphotons)", m->path);
    }
    if (total > max_photons) {
        c2p_event_free(ev);
        return c2i_fail(err, C2P_TOO_LARGE, "%s: %llu photons (limit %llu)", m->path, (unsigned long long)total,
                        (unsigned long long)max_photons);
    }
    return 0;
}

int c2p_decode_event(const c2p_msg *msg, uint64_t max_photons, c2p_event *ev, c2p_err *err)
{
    c2p_map m;
    memset(ev, 0, sizeof *ev);
    int rc = c2p_map_open_body(&m, msg, "submit_event", err);
    return rc ? rc : proto_event(&m, max_photons, ev, err);
}

int c2p_decode_events(const c2p_msg *msg, uint64_t max_photons, c2p_event **out, uint32_t *n, c2p_err *err)
{
    c2p_map m;
    *out = NULL;
    *n = 0;
    int rc = c2p_map_open_body(&m, msg, "submit_events", err);
    const msgpack_object *a = rc ? NULL : c2p_map_get(&m, "events");
    if (rc || (rc = c2p_map_done(&m, err))) {
        return rc;
    }
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 || a->via.array.size > C2P_MAX_GROUP) {
        return c2i_fail(err, C2P_BAD_REQUEST, "submit_events.events: expected an array of 1 to %d events",
                        C2P_MAX_GROUP);
    }
    c2p_event *evs = calloc(a->via.array.size, sizeof *evs);
    if (!evs) {
        return c2i_fail(err, C2P_TOO_LARGE, "submit_events: no memory for %u events", a->via.array.size);
    }
    for (uint32_t i = 0; i < a->via.array.size && !rc; i++) {
        char path[48];
        snprintf(path, sizeof path, "submit_events.events[%u]", i);
        c2p_map e;
        if (!(rc = c2p_map_open(&e, &a->via.array.ptr[i], path, err))) {
            rc = proto_event(&e, max_photons, &evs[i], err);
        }
        *n = i; /* the events decoded so far, freed below on failure */
    }
    if (rc) {
        c2p_events_free(evs, *n);
        *n = 0;
        return rc;
    }
    *out = evs;
    *n = a->via.array.size;
    return 0;
}

void c2p_event_free(c2p_event *ev)
{
    free(ev->cols_copy);
    free(ev->sources);
    free(ev->spectra);
    ev->cols_copy = NULL;
    memset(&ev->cols, 0, sizeof ev->cols);
    ev->sources = NULL;
    ev->spectra = NULL;
    ev->nphotons = ev->nsources = ev->nspectra = 0;
}

void c2p_events_free(c2p_event *evs, uint32_t n)
{
    for (uint32_t i = 0; evs && i < n; i++) {
        c2p_event_free(&evs[i]);
    }
    free(evs);
}

c2_event c2p_event_view(const c2p_event *ev)
{
    c2_event e;
    memset(&e, 0, sizeof e);
    e.id = ev->event_id;
    e.seed = ev->seed;
    e.max_steps = ev->max_steps;
    e.want = ev->want;
    e.photons = ev->photons;
    e.columns = ev->cols;
    e.nphotons = ev->nphotons;
    e.sources = ev->sources;
    e.nsources = ev->nsources;
    e.spectra = ev->spectra;
    e.nspectra = ev->nspectra;
    return e;
}

/* ---- results ---- */

static int proto_result_blocks(c2p_map *m, c2_event_result *r, c2p_err *err)
{
    int rc = proto_block(m, "hits", c2p_hit_cols, C2P_HIT_COLS, sizeof(c2_hit), (void **)&r->hits, &r->nhits, err);
    if (!rc) {
        rc = proto_block(m, "photons", c2p_end_state_cols, C2P_END_STATE_COLS, sizeof(c2_photon),
                         (void **)&r->photons, &r->nphotons, err);
        for (uint32_t i = 0; !rc && i < r->nphotons; i++) {
            r->photons[i].id = i;
        }
    }
    if (!rc) {
        rc = proto_block(m, "channels", c2p_channel_cols, C2P_CHANNEL_COLS, sizeof(c2_channel_summary),
                         (void **)&r->channels, &r->nchannels, err);
    }
    return rc;
}

static int proto_counters(c2p_map *m, c2p_result *out, c2p_err *err)
{
    c2p_map c, t;
    uint64_t photons = 0, reemit = 0, maxsteps = 0, nan = 0;
    int rc = c2p_map_open(&c, c2p_map_get(m, "counters"), "result.counters", err);
    if (rc || (rc = c2p_get_u64(&c, "photons", 1, 0, UINT32_MAX, &photons, err)) ||
        (rc = c2p_get_u64(&c, "steps", 1, 0, UINT64_MAX, &out->r.steps, err)) ||
        (rc = c2p_get_u64(&c, "reemissions", 1, 0, UINT32_MAX, &reemit, err)) ||
        (rc = c2p_get_u64(&c, "max_steps", 1, 0, UINT32_MAX, &maxsteps, err)) ||
        (rc = c2p_get_u64(&c, "nan", 1, 0, UINT32_MAX, &nan, err)) || (rc = c2p_map_done(&c, err)) ||
        (rc = c2p_map_open(&t, c2p_map_get(m, "timing"), "result.timing", err)) ||
        (rc = c2p_get_f64(&t, "queued_ms", 1, 0, 1e30, &out->queued_ms, err)) ||
        (rc = c2p_get_f64(&t, "run_ms", 1, 0, 1e30, &out->run_ms, err)) || (rc = c2p_map_done(&t, err))) {
        return rc;
    }
    out->r.ntotal = (uint32_t)photons;
    out->r.nreemit = (uint32_t)reemit;
    out->r.nmaxsteps = (uint32_t)maxsteps;
    out->r.nnan = (uint32_t)nan;
    return 0;
}

/* A result's fields from m (opened); out is filled, or freed on failure. */
static int proto_result(c2p_map *m, c2p_result *out, c2p_err *err)
{
    memset(out, 0, sizeof *out);
    c2p_map_get(m, "ok");
    int rc;
    if ((rc = c2p_get_u64(m, "ticket", 1, 0, UINT64_MAX, &out->ticket, err)) ||
        (rc = c2p_get_u64(m, "event_id", 1, 0, UINT64_MAX, &out->event_id, err)) ||
        (rc = proto_result_blocks(m, &out->r, err)) || (rc = proto_counters(m, out, err)) ||
        (rc = c2p_map_done(m, err))) {
        c2p_result_free(out);
        return rc;
    }
    return 0;
}

int c2p_decode_result(const c2p_msg *msg, c2p_result *out, c2p_err *err)
{
    c2p_map m;
    memset(out, 0, sizeof *out);
    int rc = c2p_map_open_body(&m, msg, "result", err);
    return rc ? rc : proto_result(&m, out, err);
}

int c2p_decode_results(const c2p_msg *msg, uint32_t n, c2p_result *out, c2p_err *errs, c2p_err *err)
{
    c2p_map m;
    memset(out, 0, n * sizeof *out);
    memset(errs, 0, n * sizeof *errs);
    int rc = c2p_map_open_body(&m, msg, "results", err);
    c2p_map_get(&m, "ok");
    const msgpack_object *a = rc ? NULL : c2p_map_get(&m, "results");
    if (rc || (rc = c2p_map_done(&m, err))) {
        return rc;
    }
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != n) {
        return c2i_fail(err, C2P_BAD_REQUEST, "results: expected an array of %u results", n);
    }
    for (uint32_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "results[%u]", i);
        c2p_map e;
        int ok = 0;
        if ((rc = c2p_map_open(&e, &a->via.array.ptr[i], path, err)) ||
            (rc = c2p_get_bool(&e, "ok", 1, &ok, err))) {
            break;
        }
        rc = ok ? proto_result(&e, &out[i], err) : proto_error(&e, &errs[i], err);
        if (rc) {
            break;
        }
    }
    for (uint32_t i = 0; rc && i < n; i++) {
        c2p_result_free(&out[i]);
    }
    return rc;
}

void c2p_result_free(c2p_result *res) { c2_event_result_free(&res->r); }

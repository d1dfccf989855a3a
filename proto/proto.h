/*
 * proto.h: the codec of the chroma2 wire protocol (proto/PROTOCOL.md),
 * shared by chroma2d and libchroma2-client. Internal: c2p_ names, not
 * installed.
 *
 * Decoding is in three steps, each of which may refuse the input with a
 * precise message and never allocates more than a small multiple of the
 * message's size:
 *   1. c2p_scan walks the raw bytes: one map, depth <= C2P_MAX_DEPTH, every
 *      count no larger than the bytes that remain, maps of at most
 *      C2P_MAX_MAP entries, at most C2P_MAX_ELEMENTS elements in all (bulk
 *      data travels in bins, which msgpack-c does not copy). Only then does msgpack-c (which would allocate
 *      16 bytes per claimed element up front) see the data.
 *   2. c2p_parse_request / c2p_parse_reply unpack it and read the envelope.
 *   3. c2p_decode_* read one message type into owned C arrays, checking
 *      types, ranges, finiteness, array lengths and unknown keys.
 * Encoders write into any msgpack_packer (an sbuffer, an NNG message).
 *
 * Ownership: a c2p_msg points into the caller's buffer, which must outlive
 * it; decoded structs own their arrays (free with the matching _free).
 * Thread-safety: no shared state; any thread may use its own objects.
 */
#ifndef C2P_PROTO_H
#define C2P_PROTO_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "../kernels/errors.h"
#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define C2P_PROTOCOL_VERSION 1
#define C2P_MAX_DEPTH 8  /* maps and arrays nested */
#define C2P_MAX_MAP 64   /* entries in one map */
#define C2P_NAME_MAX 64  /* geometry names */
#define C2P_MAX_GROUP 1024 /* events in one submit_events */
#define C2P_MAX_ELEMENTS (1u << 20) /* map entries and array elements in one message: msgpack-c
                                       allocates ~24 bytes each, so this caps it near 24 MiB */

/* Stable error codes on the wire (PROTOCOL.md); 0 is success. */
#define C2P_ERRORS(X)                                                                                      \
    X(MALFORMED, 1) X(BAD_REQUEST, 2) X(VERSION, 3) X(UNKNOWN_TYPE, 4) X(TOO_LARGE, 5) X(BUSY, 6)         \
    X(NOT_FOUND, 7) X(DIGEST_MISMATCH, 8) X(DEADLINE, 9) X(CANCELLED, 10) X(SHUTTING_DOWN, 11)             \
    X(BACKEND, 12) X(INTERNAL, 13) X(EXISTS, 14)

enum {
    C2P_OK = 0,
#define C2P_ERR_ENUM(name, val) C2P_##name = (val),
    C2P_ERRORS(C2P_ERR_ENUM)
#undef C2P_ERR_ENUM
};
const char *c2p_error_name(int code); /* "BUSY"; "UNKNOWN" for others */

#define C2P_TYPES(X)                                                                                       \
    X(HELLO, "hello") X(PING, "ping") X(STATUS, "status") X(STATS, "stats") X(LOAD_GEOMETRY, "load_geometry") \
    X(LIST_GEOMETRIES, "list_geometries") X(UNLOAD_GEOMETRY, "unload_geometry") X(SUBMIT_EVENT, "submit_event") \
    X(CANCEL, "cancel") X(EVENTS, "events") X(DRAIN, "drain") X(SHUTDOWN, "shutdown")                     \
    X(SUBMIT_EVENTS, "submit_events")

typedef enum {
    C2P_T_NONE = 0,
#define C2P_TYPE_ENUM(name, str) C2P_T_##name,
    C2P_TYPES(C2P_TYPE_ENUM)
#undef C2P_TYPE_ENUM
        C2P_T_COUNT
} c2p_type;
const char *c2p_type_name(c2p_type t); /* "submit_event"; "error" for C2P_T_NONE */

/* Errors carry a C2P_* code and a message naming the field; the same
 * struct as the engine's, filled by the same c2i_fail. */
typedef c2_error c2p_err;

/* ---- step 1 and 2: structure and envelope ---- */

int c2p_scan(const void *buf, size_t len, c2p_err *err);

typedef struct c2p_msg {
    msgpack_unpacked up;
    const msgpack_object *root; /* the top-level map */
    uint32_t v;
    uint64_t id;   /* 0 until read */
    c2p_type type; /* C2P_T_NONE until read */
    int ok;        /* replies: the ok field */
    c2p_err error; /* replies with ok false: their error */
} c2p_msg;

/* Scans, unpacks and reads v, id and type of a request. On failure the
 * fields read so far (id, type) are left in m for the error reply; m must
 * still be freed. */
int c2p_parse_request(c2p_msg *m, const void *buf, size_t len, c2p_err *err);
/* The same for a reply: also reads ok and the error block into m->error. */
int c2p_parse_reply(c2p_msg *m, const void *buf, size_t len, c2p_err *err);
void c2p_msg_free(c2p_msg *m);
/* Moves a parsed message into dst (a longer-lived place); src is left
 * empty, so freeing it too is harmless. */
void c2p_msg_move(c2p_msg *dst, c2p_msg *src);

/* ---- step 3: message bodies ---- */

/* A map being read: remembers which keys were taken so that unknown ones
 * can be refused. path names it in messages ("submit_event.photons"). */
typedef struct c2p_map {
    const msgpack_object_map *map;
    const char *path;
    uint64_t seen; /* bit i: entry i was read */
} c2p_map;

int c2p_map_open(c2p_map *m, const msgpack_object *o, const char *path, c2p_err *err);
/* Opens a message's top-level map for its body: the envelope keys (v, id,
 * type), which the parser has read, count as read. */
int c2p_map_open_body(c2p_map *m, const c2p_msg *msg, const char *path, c2p_err *err);
/* The value of key, or NULL when absent; marks it read. */
const msgpack_object *c2p_map_get(c2p_map *m, const char *key);
/* Refuses the map if it holds a key nobody read. */
int c2p_map_done(const c2p_map *m, c2p_err *err);

/* Typed fields: a missing key leaves *out alone (defaults are the caller's)
 * unless required. Ranges are inclusive. */
int c2p_get_u64(c2p_map *m, const char *key, int required, uint64_t lo, uint64_t hi, uint64_t *out, c2p_err *err);
int c2p_get_i64(c2p_map *m, const char *key, int required, int64_t lo, int64_t hi, int64_t *out, c2p_err *err);
int c2p_get_f64(c2p_map *m, const char *key, int required, double lo, double hi, double *out, c2p_err *err);
int c2p_get_bool(c2p_map *m, const char *key, int required, int *out, c2p_err *err);
/* A string copied into out (cap bytes with the NUL). */
int c2p_get_str(c2p_map *m, const char *key, int required, char *out, size_t cap, c2p_err *err);
/* A bin of exactly n records of comps 4-byte little-endian values; record i
 * is copied to (char *)out + i * stride (stride = 4 * comps when packed).
 * Absent and not required: out is left alone. */
int c2p_get_bin32(c2p_map *m, const char *key, int required, size_t n, size_t comps, void *out, size_t stride,
                  c2p_err *err);

#if !defined(__BYTE_ORDER__)
#error "proto: the host's byte order is unknown (__BYTE_ORDER__)"
#elif __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define C2P_HOST_LE 1
#else
#define C2P_HOST_LE 0
#endif
/* Copies n records of comps 4-byte values from src (records src_stride
 * bytes apart) to dst (dst_stride apart), swapping bytes on a big-endian
 * host: wire bins are little-endian, and the swap is its own inverse, so
 * the encoder and the decoder share it. Either side may be unaligned. */
void c2p_copy_le32(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t n, size_t comps);

/* submit_event, decoded: ready for the engine; arrays owned except the
 * photon columns. */
typedef struct c2p_event {
    char geometry[C2P_NAME_MAX + 1];
    char digest[65]; /* empty when not given */
    uint64_t event_id, seed;
    uint32_t want; /* C2_RETURN_* */
    uint32_t max_steps;
    uint32_t deadline_ms;
    int32_t priority;
    /* Explicit photons, as records (encoder input only) or columns. The
     * decoder fills cols, pointing into the message's bins: the message
     * must outlive the event. The encoder sends cols when cols.pos is set
     * (absent optional columns stay absent), else photons. */
    const c2_photon *photons;
    c2_photon_columns cols;
    uint32_t nphotons;
    void *cols_copy; /* decoder, big-endian host: the columns swapped to host order */
    c2_source *sources;
    uint32_t nsources;
    float *spectra;
    uint32_t nspectra;
    uint32_t spectra_nwl; /* values per spectrum; must match the geometry's grid */
} c2p_event;

/* max_photons: the daemon's per-event limit (TOO_LARGE beyond it). */
int c2p_decode_event(const c2p_msg *m, uint64_t max_photons, c2p_event *ev, c2p_err *err);
/* submit_events: *n (1..C2P_MAX_GROUP) events into *out (free them with
 * c2p_events_free). Any bad event refuses the
 * whole request, naming it ("submit_events.events[3].photons..."). */
int c2p_decode_events(const c2p_msg *m, uint64_t max_photons, c2p_event **out, uint32_t *n, c2p_err *err);
void c2p_event_free(c2p_event *ev);
/* Frees n events and their array (c2p_decode_events'). */
void c2p_events_free(c2p_event *evs, uint32_t n);
/* The engine's view of a decoded event (pointers into ev). */
c2_event c2p_event_view(const c2p_event *ev);

/* load_geometry, decoded and built (BVH included: seconds for millions of
 * triangles). On success *out is the caller's; name gets the request's
 * name, replace its flag. Errors name the material, surface, mesh or solid. */
int c2p_decode_geometry(const c2p_msg *m, char name[C2P_NAME_MAX + 1], int *replace, c2_geometry **out,
                        c2_build_stats *stats, c2p_err *err);

/* The columns of each structure-of-arrays block (columns.c): the decoder
 * and the encoder share them. */
typedef struct c2p_col {
    const char *key;
    int required; /* in requests; results always carry every column */
    size_t comps, offset;
} c2p_col;
enum { C2P_PHOTON_COLS = 6, C2P_SOURCE_COLS = 7, C2P_HIT_COLS = 6, C2P_END_STATE_COLS = 10, C2P_CHANNEL_COLS = 4 };
extern const c2p_col c2p_photon_cols[C2P_PHOTON_COLS], c2p_source_cols[C2P_SOURCE_COLS],
    c2p_hit_cols[C2P_HIT_COLS], c2p_end_state_cols[C2P_END_STATE_COLS], c2p_channel_cols[C2P_CHANNEL_COLS];

/* ---- encoders ---- */

/* The envelope: a map of n + 3 (requests) or n + 4 (replies, ok true)
 * entries whose first entries are v, id, type (and ok); the caller packs
 * the remaining n key/value pairs. */
void c2p_pack_request_head(msgpack_packer *pk, uint64_t id, c2p_type type, uint32_t n);
void c2p_pack_reply_head(msgpack_packer *pk, uint64_t id, c2p_type type, uint32_t n);
/* A whole error reply. */
void c2p_pack_error(msgpack_packer *pk, uint64_t id, c2p_type type, int code, const char *message);
void c2p_pack_key(msgpack_packer *pk, const char *key);
void c2p_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v);
void c2p_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t v);
void c2p_pack_kv_f64(msgpack_packer *pk, const char *key, double v);
void c2p_pack_kv_bool(msgpack_packer *pk, const char *key, int v);
void c2p_pack_kv_str(msgpack_packer *pk, const char *key, const char *v);
/* A bin of n records of comps 4-byte values, record i read from
 * (const char *)base + i * stride: packs a field of an array of structs. */
void c2p_pack_kv_bin32(msgpack_packer *pk, const char *key, const void *base, size_t n, size_t comps,
                       size_t stride);

/* A whole submit_event request. */
void c2p_pack_event(msgpack_packer *pk, uint64_t id, const c2p_event *ev);
/* A whole submit_events request: n (1..C2P_MAX_GROUP) events in one message. */
void c2p_pack_events(msgpack_packer *pk, uint64_t id, const c2p_event *evs, uint32_t n);

/* The result of a submit_event: arrays owned. */
typedef struct c2p_result {
    uint64_t ticket, event_id;
    c2_event_result r;
    double queued_ms, run_ms;
} c2p_result;

void c2p_pack_result(msgpack_packer *pk, uint64_t id, uint64_t ticket, uint64_t event_id,
                     const c2_event_result *r, uint32_t want, double queued_ms, double run_ms);
/* One element of a submit_events reply's results: a result map with "ok":
 * true, or an error map ("ok": false, "error"). */
void c2p_pack_result_member(msgpack_packer *pk, uint64_t ticket, uint64_t event_id, const c2_event_result *r,
                            uint32_t want, double queued_ms, double run_ms);
void c2p_pack_error_member(msgpack_packer *pk, int code, const char *message);
int c2p_decode_result(const c2p_msg *m, c2p_result *out, c2p_err *err);
/* A submit_events reply (ok true) of n results: element i into out[i], or,
 * when the daemon refused or failed that event, its code and message into
 * errs[i] (errs[i].code 0 otherwise). On failure nothing is left to free. */
int c2p_decode_results(const c2p_msg *m, uint32_t n, c2p_result *out, c2p_err *errs, c2p_err *err);
void c2p_result_free(c2p_result *res);

#ifdef __cplusplus
}
#endif
#endif

/*
 * encode.c: writing messages. Every encoder writes into a caller's
 * msgpack_packer, so the same code fills an sbuffer in tests and an NNG
 * message in the daemon. Arrays go out as little-endian bins gathered
 * straight from the engine's structs.
 */
#include <string.h>

#include "proto.h"

void c2p_pack_key(msgpack_packer *pk, const char *key)
{
    size_t n = strlen(key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, key, n);
}

void c2p_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    c2p_pack_key(pk, key);
    msgpack_pack_uint64(pk, v);
}

void c2p_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t v)
{
    c2p_pack_key(pk, key);
    msgpack_pack_int64(pk, v);
}

void c2p_pack_kv_f64(msgpack_packer *pk, const char *key, double v)
{
    c2p_pack_key(pk, key);
    msgpack_pack_double(pk, v);
}

void c2p_pack_kv_bool(msgpack_packer *pk, const char *key, int v)
{
    c2p_pack_key(pk, key);
    if (v) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
}

void c2p_pack_kv_str(msgpack_packer *pk, const char *key, const char *v)
{
    c2p_pack_key(pk, key);
    c2p_pack_key(pk, v);
}

void c2p_pack_kv_bin32(msgpack_packer *pk, const char *key, const void *base, size_t n, size_t comps, size_t stride)
{
    c2p_pack_key(pk, key);
    msgpack_pack_bin(pk, n * comps * 4);
    const size_t rec = 4 * comps, per_chunk = 16384 / rec;
    if (C2P_HOST_LE && stride == rec) { /* already packed little-endian */
        msgpack_pack_bin_body(pk, base, n * rec);
        return;
    }
    /* gathered (and byte-ordered) in chunks that stay in L1, then written */
    uint8_t chunk[16384];
    for (size_t i = 0; i < n; i += per_chunk) {
        size_t k = n - i < per_chunk ? n - i : per_chunk;
        c2p_copy_le32(chunk, rec, (const uint8_t *)base + i * stride, stride, k, comps);
        msgpack_pack_bin_body(pk, chunk, k * rec);
    }
}

/* "key": {"n": n, column: bin, ...}: column i, when bit i of present is
 * set, read from bases[i] with strides[i] between records. */
static void proto_pack_cols(msgpack_packer *pk, const char *key, const c2p_col *cols, size_t ncols, size_t n,
                            uint32_t present, const void *const *bases, const size_t *strides)
{
    c2p_pack_key(pk, key);
    msgpack_pack_map(pk, (uint32_t)__builtin_popcount(present) + 1);
    c2p_pack_kv_u64(pk, "n", n);
    for (size_t i = 0; i < ncols; i++) {
        if (present & (1u << i)) {
            c2p_pack_kv_bin32(pk, cols[i].key, bases[i], n, cols[i].comps, strides[i]);
        }
    }
}

/* A block of n structs of size stride at base (NULL when n is 0): every
 * column. */
static void proto_pack_block(msgpack_packer *pk, const char *key, const c2p_col *cols, size_t ncols, const void *base,
                             size_t n, size_t stride)
{
    const void *bases[16];
    size_t strides[16];
    for (size_t i = 0; i < ncols; i++) {
        bases[i] = base ? (const char *)base + cols[i].offset : NULL;
        strides[i] = stride;
    }
    proto_pack_cols(pk, key, cols, ncols, n, (1u << ncols) - 1, bases, strides);
}

static void proto_head(msgpack_packer *pk, uint64_t id, c2p_type type, uint32_t n)
{
    msgpack_pack_map(pk, n);
    c2p_pack_kv_u64(pk, "v", C2P_PROTOCOL_VERSION);
    c2p_pack_kv_u64(pk, "id", id);
    c2p_pack_kv_str(pk, "type", c2p_type_name(type));
}

void c2p_pack_request_head(msgpack_packer *pk, uint64_t id, c2p_type type, uint32_t n)
{
    proto_head(pk, id, type, n + 3);
}

void c2p_pack_reply_head(msgpack_packer *pk, uint64_t id, c2p_type type, uint32_t n)
{
    proto_head(pk, id, type, n + 4);
    c2p_pack_kv_bool(pk, "ok", 1);
}

/* "ok": false, "error": {...}: the end of an error reply or result */
static void proto_pack_error_fields(msgpack_packer *pk, int code, const char *message)
{
    c2p_pack_kv_bool(pk, "ok", 0);
    c2p_pack_key(pk, "error");
    msgpack_pack_map(pk, 3);
    c2p_pack_kv_u64(pk, "code", (uint64_t)code);
    c2p_pack_kv_str(pk, "name", c2p_error_name(code));
    c2p_pack_kv_str(pk, "message", message);
}

void c2p_pack_error(msgpack_packer *pk, uint64_t id, c2p_type type, int code, const char *message)
{
    proto_head(pk, id, type, 5);
    proto_pack_error_fields(pk, code, message);
}

void c2p_pack_error_member(msgpack_packer *pk, int code, const char *message)
{
    msgpack_pack_map(pk, 2);
    proto_pack_error_fields(pk, code, message);
}

/* The fields of a submit_event body: how many, then them. */
static uint32_t proto_event_nfields(const c2p_event *ev)
{
    return 7 + (ev->digest[0] != 0) + (ev->nphotons > 0) + (ev->nsources > 0) + (ev->nspectra > 0);
}

static void proto_pack_event_fields(msgpack_packer *pk, const c2p_event *ev)
{
    uint32_t nwant = !!(ev->want & C2_RETURN_HITS) + !!(ev->want & C2_RETURN_PHOTONS) +
                     !!(ev->want & C2_RETURN_CHANNELS);
    c2p_pack_kv_str(pk, "geometry", ev->geometry);
    if (ev->digest[0]) {
        c2p_pack_kv_str(pk, "digest", ev->digest);
    }
    c2p_pack_kv_u64(pk, "event_id", ev->event_id);
    c2p_pack_kv_u64(pk, "seed", ev->seed);
    c2p_pack_kv_u64(pk, "max_steps", ev->max_steps);
    c2p_pack_kv_u64(pk, "deadline_ms", ev->deadline_ms);
    c2p_pack_kv_i64(pk, "priority", ev->priority);
    c2p_pack_key(pk, "want");
    msgpack_pack_array(pk, nwant);
    if (ev->want & C2_RETURN_HITS) {
        c2p_pack_key(pk, "hits");
    }
    if (ev->want & C2_RETURN_PHOTONS) {
        c2p_pack_key(pk, "photons");
    }
    if (ev->want & C2_RETURN_CHANNELS) {
        c2p_pack_key(pk, "channels");
    }
    if (ev->nphotons && ev->cols.pos) {
        const c2_photon_columns *c = &ev->cols; /* in c2p_photon_cols order */
        const void *by_col[C2P_PHOTON_COLS] = {c->pos, c->dir, c->wavelength, c->pol, c->time, c->weight};
        size_t strides[C2P_PHOTON_COLS];
        uint32_t present = 0; /* optional columns the caller left out are absent */
        for (size_t i = 0; i < C2P_PHOTON_COLS; i++) {
            strides[i] = 4 * c2p_photon_cols[i].comps;
            present |= by_col[i] ? 1u << i : 0;
        }
        proto_pack_cols(pk, "photons", c2p_photon_cols, C2P_PHOTON_COLS, ev->nphotons, present, by_col, strides);
    } else if (ev->nphotons) {
        proto_pack_block(pk, "photons", c2p_photon_cols, C2P_PHOTON_COLS, ev->photons, ev->nphotons,
                         sizeof(c2_photon));
    }
    if (ev->nsources) {
        proto_pack_block(pk, "sources", c2p_source_cols, C2P_SOURCE_COLS, ev->sources, ev->nsources,
                         sizeof(c2_source));
    }
    if (ev->nspectra) {
        c2p_pack_key(pk, "spectra");
        msgpack_pack_map(pk, 2);
        c2p_pack_kv_u64(pk, "n", ev->nspectra);
        c2p_pack_kv_bin32(pk, "cdf", ev->spectra, (size_t)ev->nspectra * ev->spectra_nwl, 1, 4);
    }
}

void c2p_pack_event(msgpack_packer *pk, uint64_t id, const c2p_event *ev)
{
    c2p_pack_request_head(pk, id, C2P_T_SUBMIT_EVENT, proto_event_nfields(ev));
    proto_pack_event_fields(pk, ev);
}

void c2p_pack_events(msgpack_packer *pk, uint64_t id, const c2p_event *evs, uint32_t n)
{
    c2p_pack_request_head(pk, id, C2P_T_SUBMIT_EVENTS, 1);
    c2p_pack_key(pk, "events");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, proto_event_nfields(&evs[i]));
        proto_pack_event_fields(pk, &evs[i]);
    }
}

/* The fields of a result: how many, then them. */
static uint32_t proto_result_nfields(uint32_t want)
{
    return 4 + !!(want & C2_RETURN_HITS) + !!(want & C2_RETURN_PHOTONS) + !!(want & C2_RETURN_CHANNELS);
}

static void proto_pack_result_fields(msgpack_packer *pk, uint64_t ticket, uint64_t event_id, const c2_event_result *r,
                                     uint32_t want, double queued_ms, double run_ms)
{
    c2p_pack_kv_u64(pk, "ticket", ticket);
    c2p_pack_kv_u64(pk, "event_id", event_id);
    if (want & C2_RETURN_HITS) {
        proto_pack_block(pk, "hits", c2p_hit_cols, C2P_HIT_COLS, r->hits, r->nhits, sizeof(c2_hit));
    }
    if (want & C2_RETURN_PHOTONS) {
        proto_pack_block(pk, "photons", c2p_end_state_cols, C2P_END_STATE_COLS, r->photons, r->nphotons,
                         sizeof(c2_photon));
    }
    if (want & C2_RETURN_CHANNELS) {
        proto_pack_block(pk, "channels", c2p_channel_cols, C2P_CHANNEL_COLS, r->channels, r->nchannels,
                         sizeof(c2_channel_summary));
    }
    c2p_pack_key(pk, "counters");
    msgpack_pack_map(pk, 5);
    c2p_pack_kv_u64(pk, "photons", r->ntotal);
    c2p_pack_kv_u64(pk, "steps", r->steps);
    c2p_pack_kv_u64(pk, "reemissions", r->nreemit);
    c2p_pack_kv_u64(pk, "max_steps", r->nmaxsteps);
    c2p_pack_kv_u64(pk, "nan", r->nnan);
    c2p_pack_key(pk, "timing");
    msgpack_pack_map(pk, 2);
    c2p_pack_kv_f64(pk, "queued_ms", queued_ms);
    c2p_pack_kv_f64(pk, "run_ms", run_ms);
}

void c2p_pack_result(msgpack_packer *pk, uint64_t id, uint64_t ticket, uint64_t event_id,
                     const c2_event_result *r, uint32_t want, double queued_ms, double run_ms)
{
    c2p_pack_reply_head(pk, id, C2P_T_SUBMIT_EVENT, proto_result_nfields(want));
    proto_pack_result_fields(pk, ticket, event_id, r, want, queued_ms, run_ms);
}

void c2p_pack_result_member(msgpack_packer *pk, uint64_t ticket, uint64_t event_id, const c2_event_result *r,
                            uint32_t want, double queued_ms, double run_ms)
{
    msgpack_pack_map(pk, proto_result_nfields(want) + 1);
    c2p_pack_kv_bool(pk, "ok", 1);
    proto_pack_result_fields(pk, ticket, event_id, r, want, queued_ms, run_ms);
}

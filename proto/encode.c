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
    const size_t rec = 4 * comps;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (stride == rec) { /* already packed little-endian */
        msgpack_pack_bin_body(pk, base, n * rec);
        return;
    }
#endif
    uint8_t chunk[16384]; /* gathered (and byte-ordered) in chunks, then written */
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = (const uint8_t *)base + i * stride;
        if (used + rec > sizeof chunk) {
            msgpack_pack_bin_body(pk, chunk, used);
            used = 0;
        }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(chunk + used, r, rec);
        used += rec;
#else
        for (size_t c = 0; c < comps; c++) {
            uint32_t v;
            memcpy(&v, r + 4 * c, 4);
            chunk[used++] = (uint8_t)v;
            chunk[used++] = (uint8_t)(v >> 8);
            chunk[used++] = (uint8_t)(v >> 16);
            chunk[used++] = (uint8_t)(v >> 24);
        }
#endif
    }
    if (used) {
        msgpack_pack_bin_body(pk, chunk, used);
    }
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

void c2p_pack_error(msgpack_packer *pk, uint64_t id, c2p_type type, int code, const char *message)
{
    proto_head(pk, id, type, 5);
    c2p_pack_kv_bool(pk, "ok", 0);
    c2p_pack_key(pk, "error");
    msgpack_pack_map(pk, 3);
    c2p_pack_kv_u64(pk, "code", (uint64_t)code);
    c2p_pack_kv_str(pk, "name", c2p_error_name(code));
    c2p_pack_kv_str(pk, "message", message);
}

void c2p_pack_event(msgpack_packer *pk, uint64_t id, const c2p_event *ev)
{
    uint32_t nwant = !!(ev->want & C2_RETURN_HITS) + !!(ev->want & C2_RETURN_PHOTONS) +
                     !!(ev->want & C2_RETURN_CHANNELS);
    uint32_t n = 7 + (ev->digest[0] != 0) + (ev->nphotons > 0) + (ev->nsources > 0) + (ev->nspectra > 0);
    c2p_pack_request_head(pk, id, C2P_T_SUBMIT_EVENT, n);
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
    if (ev->nphotons) {
        const c2_photon *p = ev->photons;
        const size_t st = sizeof *p;
        c2p_pack_key(pk, "photons");
        msgpack_pack_map(pk, 7);
        c2p_pack_kv_u64(pk, "n", ev->nphotons);
        c2p_pack_kv_bin32(pk, "pos", p->pos, ev->nphotons, 3, st);
        c2p_pack_kv_bin32(pk, "dir", p->dir, ev->nphotons, 3, st);
        c2p_pack_kv_bin32(pk, "wavelength", &p->wavelength, ev->nphotons, 1, st);
        c2p_pack_kv_bin32(pk, "pol", p->pol, ev->nphotons, 3, st);
        c2p_pack_kv_bin32(pk, "time", &p->time, ev->nphotons, 1, st);
        c2p_pack_kv_bin32(pk, "weight", &p->weight, ev->nphotons, 1, st);
    }
    if (ev->nsources) {
        const c2_source *s = ev->sources;
        const size_t st = sizeof *s;
        c2p_pack_key(pk, "sources");
        msgpack_pack_map(pk, 8);
        c2p_pack_kv_u64(pk, "n", ev->nsources);
        c2p_pack_kv_bin32(pk, "pos", s->pos, ev->nsources, 3, st);
        c2p_pack_kv_bin32(pk, "time", &s->time, ev->nsources, 1, st);
        c2p_pack_kv_bin32(pk, "dir", s->dir, ev->nsources, 3, st);
        c2p_pack_kv_bin32(pk, "cos_half_angle", &s->cos_half_angle, ev->nsources, 1, st);
        c2p_pack_kv_bin32(pk, "wavelength", &s->wavelength, ev->nsources, 1, st);
        c2p_pack_kv_bin32(pk, "spectrum", &s->spectrum, ev->nsources, 1, st);
        c2p_pack_kv_bin32(pk, "nphotons", &s->nphotons, ev->nsources, 1, st);
    }
    if (ev->nspectra) {
        c2p_pack_key(pk, "spectra");
        msgpack_pack_map(pk, 2);
        c2p_pack_kv_u64(pk, "n", ev->nspectra);
        c2p_pack_kv_bin32(pk, "cdf", ev->spectra, (size_t)ev->nspectra * ev->spectra_nwl, 1, 4);
    }
}

void c2p_pack_result(msgpack_packer *pk, uint64_t id, uint64_t ticket, uint64_t event_id,
                     const c2_event_result *r, uint32_t want, double queued_ms, double run_ms)
{
    int hits = (want & C2_RETURN_HITS) != 0, photons = (want & C2_RETURN_PHOTONS) != 0,
        channels = (want & C2_RETURN_CHANNELS) != 0;
    c2p_pack_reply_head(pk, id, C2P_T_SUBMIT_EVENT, 4 + hits + photons + channels);
    c2p_pack_kv_u64(pk, "ticket", ticket);
    c2p_pack_kv_u64(pk, "event_id", event_id);
    if (hits) {
        const c2_hit *h = r->hits;
        const size_t st = sizeof *h, n = r->nhits;
        c2p_pack_key(pk, "hits");
        msgpack_pack_map(pk, 7);
        c2p_pack_kv_u64(pk, "n", n);
        c2p_pack_kv_bin32(pk, "photon_id", &h->photon_id, n, 1, st);
        c2p_pack_kv_bin32(pk, "channel", &h->channel, n, 1, st);
        c2p_pack_kv_bin32(pk, "time", &h->time, n, 1, st);
        c2p_pack_kv_bin32(pk, "wavelength", &h->wavelength, n, 1, st);
        c2p_pack_kv_bin32(pk, "pos", h->pos, n, 3, st);
        c2p_pack_kv_bin32(pk, "flags", &h->flags, n, 1, st);
    }
    if (photons) {
        const c2_photon *p = r->photons;
        const size_t st = sizeof *p, n = r->nphotons;
        c2p_pack_key(pk, "photons");
        msgpack_pack_map(pk, 11);
        c2p_pack_kv_u64(pk, "n", n);
        c2p_pack_kv_bin32(pk, "pos", p->pos, n, 3, st);
        c2p_pack_kv_bin32(pk, "dir", p->dir, n, 3, st);
        c2p_pack_kv_bin32(pk, "pol", p->pol, n, 3, st);
        c2p_pack_kv_bin32(pk, "wavelength", &p->wavelength, n, 1, st);
        c2p_pack_kv_bin32(pk, "time", &p->time, n, 1, st);
        c2p_pack_kv_bin32(pk, "weight", &p->weight, n, 1, st);
        c2p_pack_kv_bin32(pk, "flags", &p->flags, n, 1, st);
        c2p_pack_kv_bin32(pk, "channel", &p->channel, n, 1, st);
        c2p_pack_kv_bin32(pk, "last_hit_triangle", &p->last_hit_triangle, n, 1, st);
        c2p_pack_kv_bin32(pk, "steps", &p->steps, n, 1, st);
    }
    if (channels) {
        const c2_channel_summary *c = r->channels;
        const size_t st = sizeof *c, n = r->nchannels;
        c2p_pack_key(pk, "channels");
        msgpack_pack_map(pk, 5);
        c2p_pack_kv_u64(pk, "n", n);
        c2p_pack_kv_bin32(pk, "channel", &c->channel, n, 1, st);
        c2p_pack_kv_bin32(pk, "count", &c->count, n, 1, st);
        c2p_pack_kv_bin32(pk, "first_time", &c->first_time, n, 1, st);
        c2p_pack_kv_bin32(pk, "charge", &c->charge, n, 1, st);
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

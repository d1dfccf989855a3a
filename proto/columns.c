/*
 * columns.c: the columns of each structure-of-arrays block (PROTOCOL.md,
 * "Blocks of arrays"): the wire name, whether a request must carry it, its
 * components and where it lives in the engine's struct. The decoder and
 * the encoder both read these tables, so the two cannot disagree.
 */
#include <stddef.h>
#include <string.h>

#include "proto.h"

#define COL(key, req, comps, type, field) {key, req, comps, offsetof(type, field)}

const c2p_col c2p_photon_cols[C2P_PHOTON_COLS] = {
    COL("pos", 1, 3, c2_photon, pos),   COL("dir", 1, 3, c2_photon, dir),   COL("wavelength", 1, 1, c2_photon, wavelength),
    COL("pol", 0, 3, c2_photon, pol),   COL("time", 0, 1, c2_photon, time), COL("weight", 0, 1, c2_photon, weight)};

const c2p_col c2p_source_cols[C2P_SOURCE_COLS] = {
    COL("pos", 1, 3, c2_source, pos),
    COL("time", 1, 1, c2_source, time),
    COL("dir", 1, 3, c2_source, dir),
    COL("cos_half_angle", 1, 1, c2_source, cos_half_angle),
    COL("wavelength", 1, 1, c2_source, wavelength),
    COL("spectrum", 1, 1, c2_source, spectrum),
    COL("nphotons", 1, 1, c2_source, nphotons)};

const c2p_col c2p_hit_cols[C2P_HIT_COLS] = {
    COL("photon_id", 1, 1, c2_hit, photon_id), COL("channel", 1, 1, c2_hit, channel), COL("time", 1, 1, c2_hit, time),
    COL("wavelength", 1, 1, c2_hit, wavelength), COL("pos", 1, 3, c2_hit, pos),   COL("flags", 1, 1, c2_hit, flags)};

const c2p_col c2p_end_state_cols[C2P_END_STATE_COLS] = {
    COL("pos", 1, 3, c2_photon, pos),
    COL("dir", 1, 3, c2_photon, dir),
    COL("pol", 1, 3, c2_photon, pol),
    COL("wavelength", 1, 1, c2_photon, wavelength),
    COL("time", 1, 1, c2_photon, time),
    COL("weight", 1, 1, c2_photon, weight),
    COL("flags", 1, 1, c2_photon, flags),
    COL("channel", 1, 1, c2_photon, channel),
    COL("last_hit_triangle", 1, 1, c2_photon, last_hit_triangle),
    COL("steps", 1, 1, c2_photon, steps)};

const c2p_col c2p_channel_cols[C2P_CHANNEL_COLS] = {
    COL("channel", 1, 1, c2_channel_summary, channel), COL("count", 1, 1, c2_channel_summary, count),
    COL("first_time", 1, 1, c2_channel_summary, first_time), COL("charge", 1, 1, c2_channel_summary, charge)};

/* One record: fixed 4-byte copies that the compiler turns into moves (a
 * memcpy of a variable record size was a library call per photon, half of
 * a 1 M-photon event's request path); comps is a constant where inlined. */
static inline void proto_copy_records(uint8_t *d, size_t ds, const uint8_t *s, size_t ss, size_t n, size_t comps)
{
    for (size_t i = 0; i < n; i++, d += ds, s += ss) {
        for (size_t c = 0; c < comps; c++) {
            uint32_t v;
            memcpy(&v, s + 4 * c, 4);
            if (!C2P_HOST_LE) {
                v = __builtin_bswap32(v);
            }
            memcpy(d + 4 * c, &v, 4);
        }
    }
}

void c2p_copy_le32(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t n, size_t comps)
{
    if (C2P_HOST_LE && dst_stride == 4 * comps && src_stride == dst_stride) {
        memcpy(dst, src, n * dst_stride);
    } else if (comps == 1) {
        proto_copy_records(dst, dst_stride, src, src_stride, n, 1);
    } else if (comps == 3) {
        proto_copy_records(dst, dst_stride, src, src_stride, n, 3);
    } else {
        proto_copy_records(dst, dst_stride, src, src_stride, n, comps);
    }
}

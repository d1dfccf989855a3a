/*
 * columns.c: the columns of each structure-of-arrays block (PROTOCOL.md,
 * "Blocks of arrays"): the wire name, whether a request must carry it, its
 * components and where it lives in the engine's struct. The decoder and
 * the encoder both read these tables, so the two cannot disagree.
 */
#include <stddef.h>
#include <string.h>

#include "../kernels/cpu/engine_int.h"
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

void c2p_copy_le32(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t n, size_t comps)
{
    if (C2P_HOST_LE) { /* the wire's order: a plain copy */
        c2i_copy32(dst, dst_stride, src, src_stride, n, comps);
        return;
    }
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++, d += dst_stride, s += src_stride) {
        for (size_t c = 0; c < comps; c++) {
            uint32_t v;
            memcpy(&v, s + 4 * c, 4);
            v = __builtin_bswap32(v);
            memcpy(d + 4 * c, &v, 4);
        }
    }
}

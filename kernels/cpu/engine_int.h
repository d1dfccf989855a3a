/*
 * engine_int.h: what the other executors (the CUDA runtime) share with the
 * CPU engine, so that an event's result is put together one way whatever
 * ran it. Internal (c2i_ prefix): not installed.
 */
#ifndef C2I_ENGINE_INT_H
#define C2I_ENGINE_INT_H

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills r->channels (malloc'd) and r->nchannels from r's hits, which must
 * be sorted by photon id: count, earliest time and summed weight (the
 * weight of ev's explicit photons, 1 for source photons) per channel,
 * sorted by channel. 0, or -1 when out of memory. */
int c2i_result_channels(c2_event_result *r, const c2_event *ev);

/* A stable sort of n 32-bit keys: order[i] is the index of the i-th
 * smallest (equal keys keep their order). LSD radix, two 16-bit digits,
 * linear in n; tmp holds n + 65537 words. */
void c2i_radix_order(const uint32_t *keys, uint32_t n, uint32_t *order, uint32_t *tmp);

#ifdef __cplusplus
}
#endif
#endif

/*
 * engine_int.h: what the other executors (the CUDA runtime) share with the
 * CPU engine, so that an event's result is put together one way whatever
 * ran it. Internal (c2i_ prefix): not installed.
 */
#ifndef C2I_ENGINE_INT_H
#define C2I_ENGINE_INT_H

#include <string.h>

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The loop of c2i_copy32, inlined with comps a constant so that it unrolls. */
static inline void c2i_copy32_records(unsigned char *d, size_t ds, const unsigned char *s, size_t ss, size_t n,
                                      size_t comps)
{
    for (size_t i = 0; i < n; i++, d += ds, s += ss) {
        for (size_t c = 0; c < comps; c++) {
            memcpy(d + 4 * c, s + 4 * c, 4);
        }
    }
}

/* Copies n records of comps 4-byte values from src (records src_stride
 * bytes apart) to dst (dst_stride apart); either may be unaligned. Fixed
 * 4-byte copies, which the compiler turns into moves: a memcpy of a
 * variable record size is a library call per record (it was half of a
 * 1 M-photon event's request path). */
static inline void c2i_copy32(void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t n, size_t comps)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (dst_stride == 4 * comps && src_stride == dst_stride) {
        memcpy(d, s, n * dst_stride);
    } else if (comps == 1) {
        c2i_copy32_records(d, dst_stride, s, src_stride, n, 1);
    } else if (comps == 3) {
        c2i_copy32_records(d, dst_stride, s, src_stride, n, 3);
    } else {
        c2i_copy32_records(d, dst_stride, s, src_stride, n, comps);
    }
}

/* Explicit photons [first, first + n) of ev as input records in out (the
 * kinematic fields; every other field zero), from its records or its
 * columns. */
void c2i_event_photons(const c2_event *ev, uint32_t first, uint32_t n, c2_photon *out);
/* The weight of explicit photon i of ev. */
float c2i_event_weight(const c2_event *ev, uint32_t i);

typedef struct c2i_team c2i_team;

/* Fills r->channels (malloc'd) and r->nchannels from r's hits, which must
 * be sorted by photon id: count, earliest time and summed weight (the
 * weight of ev's explicit photons, 1 for source photons) per channel,
 * sorted by channel. On the team when there are many hits (NULL: the
 * caller alone); the same bytes either way. 0, or -1 when out of memory. */
int c2i_result_channels(c2_event_result *r, const c2_event *ev, c2i_team *team);

/* A stable sort of n 32-bit keys: order[i] is the index of the i-th
 * smallest (equal keys keep their order). LSD radix with digits of up to
 * 11 bits, as many as the largest key needs; tmp holds n words. */
void c2i_radix_order(const uint32_t *keys, uint32_t n, uint32_t *order, uint32_t *tmp);

/* A fork-join team of n host threads, the caller included (kernels/cpu/
 * team.c): c2i_team_run calls fn(arg, t, n) for every t in [0, n), t 0 on
 * the calling thread, and returns when all have returned. One caller at a
 * time; fn must not run the team. A team may come out smaller than asked
 * (threads that could not be made, more than C2I_TEAM_MAX); NULL only when
 * out of memory, and a NULL team runs fn on the caller alone. */
#define C2I_TEAM_MAX 64u /* threads in a team, at most */
typedef void (*c2i_team_fn)(void *arg, uint32_t t, uint32_t n);
c2i_team *c2i_team_new(uint32_t n);
void c2i_team_free(c2i_team *tm); /* joins the workers; NULL is fine */
uint32_t c2i_team_size(const c2i_team *tm);
uint64_t c2i_team_rounds(const c2i_team *tm); /* rounds run on more than one thread so far (the caller's count) */
void c2i_team_run(c2i_team *tm, c2i_team_fn fn, void *arg);

/* The CPUs this process may run on: its affinity mask, so a cpuset or
 * taskset limit counts (all online CPUs where there is no mask). */
uint32_t c2i_cores(void);

#ifdef __cplusplus
}
#endif
#endif

/*
 * runtime.cu: the GPU runtime. One persistent kernel, launched with as
 * many warps as fit and kept running while there is work, keeps every lane
 * of every warp busy: a lane whose photon ended claims the next photon (a
 * ticket), makes it on the device (explicit photons are copied in; source
 * photons are expanded from their source record, as in the CPU engine) and
 * steps it with the shared physics. Keeping lanes full is what wins over
 * one thread per photon, where a warp waits for its longest history
 * (doc/profiles/: 3.8 of 32 lanes busy on the default detector). A
 * survivor stays in its lane and a reemitted photon goes on in the lane of
 * its parent: with counter-based random numbers that is the same history
 * as queueing it, and the queue benchmark measured the round trip through
 * a ring at 10x the cost of keeping the item (doc/benchmarks.md, table 1).
 *
 * Feeds. The host feeds groups of events while the kernel runs: it copies
 * a feed's block (c2c_batch: events, photons, sources) into a device arena
 * and cuts the feed's photons into windows of at most W photons. Window k
 * owns tickets (k << 32) + [0, size): a ticket names its window, so a
 * lane finds the window (slot k % RT_NW: its feed's events, its place in
 * the output pool) without a search, and the end of a window is known
 * from its size alone. The host releases windows with a doorbell word
 * (nwin, written in stream order by cuStreamWriteValue64 after the
 * window's descriptor and its feed's block were copied: a staging ring
 * and a doorbell, no call that waits for the kernel). Warps reserve
 * tickets from one cursor; a reservation past its window's end moves the
 * cursor to the next window.
 *
 * Windows finish. Each window has output room in the pool (hits and end
 * states, a ring of photon slots): when its last photon finishes, the lane
 * that finished it posts k + 1 into a word of mapped host memory; the host
 * copies the window's hits and end states out, resets its counters
 * (stream-ordered writes, no kernel), sorts the hits by ticket and hands
 * them to the events. Windows of one feed are drained in order, so each
 * event's hits arrive sorted; windows of different feeds in any order, so
 * a small feed is not held behind a large one. Nothing is launched while
 * the persistent kernel runs: its blocks may hold every SM's registers,
 * and a kernel that cannot get an SM would wait for it while it waits for
 * the host (a device-side sort deadlocked exactly so at 10^5 hits).
 *
 * Events finish. Per-event counters (photons finished, steps, reemissions,
 * guards; slot g % RT_NE of the event's global index g) are summed with
 * one atomic per group of lanes finishing the same event; the lane that
 * finishes an event's last photon appends it to the completion queue (a
 * ring in mapped host memory). An event is delivered (its done call) when
 * every window holding its photons was drained; the completion queue must
 * have named it by then, once, with every photon counted.
 *
 * Cancel, quit and abort: per-event cancel words (doorbells) make lanes
 * skip the rest of an event's photons as they claim them; the quit word
 * (1) lets idle warps leave once everything fed was delivered; quit 2
 * makes every warp leave at once (the watchdog's last resort). A kernel
 * that does not leave after an abort, or any CUDA error, breaks the
 * runtime: the process must exit to get a clean device back (the daemon
 * does).
 *
 * Memory: the pool, the arena and the pinned staging are allocated only
 * while no kernel runs (cudaMalloc may wait for it): sized when the kernel
 * starts, grown by restarting it when a feed needs more. Threads: the
 * runtime is called from one thread at a time; inside its calls a team of
 * host threads (c2i_team, owned by the runtime) orders windows' hits,
 * touches new result pages and sums large events' channels with it.
 */
#include <cuda/atomic>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cpu/engine_int.h"
#include "../queue/ring.cuh"
#include "cuda_int.h"

#define RT_BLOCK 256
#define RT_CLAIM 64u        /* tickets a warp reserves at a time */
#define RT_FULL 0xffffffffu
#define RT_NW 256u          /* window slots: windows released and not yet drained, at most */
#define RT_NE (1u << 18)    /* event slots: events fed and not yet delivered, at most */
#define RT_ARENA_MIN (64ull << 20)
#define RT_WINDOW (1ull << 19) /* photons per window at most (benchmarks table 2 chose it) */

/* Per-event counters on the device. */
struct rt_evstat {
    unsigned long long steps;
    uint32_t done, reemit, maxsteps, nan;
};

/* Window k as the kernels read it (slot k % RT_NW), written by the host
 * before the doorbell that releases it: photons [t0, t0 + size) of one
 * feed (in the feed's own ticket numbering), outputs at pool. */
struct rt_win {
    const c2k_event *events;  /* the feed's events */
    const uint64_t *first;    /* [nevents + 1] the feed's first ticket of each event */
    unsigned long long ev0;   /* global index of the feed's event 0 */
    unsigned long long t0, pool;
    uint32_t nevents, size, fault;
};

/* What the kernels see. Pointers are device memory unless said. */
struct rt_dev {
    c2k_geom g;
    const rt_win *wins;                /* [RT_NW] */
    unsigned long long *next;          /* ticket cursor: (window << 32) + photon */
    unsigned long long *nwin;          /* doorbell: windows released */
    unsigned long long *quit;          /* doorbell: 1 leave when idle, 2 leave now */
    const unsigned long long *cancel;  /* [RT_NE] doorbells: skip the event's remaining photons */
    rt_evstat *stat;                   /* [RT_NE] */
    uint32_t *wdone;                   /* [RT_NW] photons finished of the window in that slot */
    uint32_t *nhits;                   /* [RT_NW] its hits */
    c2_hit *hits;                      /* [pool] window k's from its pool offset */
    uint32_t *keys;                    /* [pool] the hit's photon within its window */
    c2_photon *ends;                   /* [pool] by window photon, or NULL (no room for end states) */
    unsigned long long *posted;        /* mapped host [RT_NW]: k + 1 once window k is finished */
    unsigned long long *completed;     /* mapped host [RT_NE]: ring of g + 1 of each finished event */
    unsigned long long *ncompleted;    /* its next slot (device) */
};

__device__ __forceinline__ unsigned rt_lane(void) { return threadIdx.x & 31u; }

__device__ __forceinline__ unsigned long long rt_load(const unsigned long long *p)
{
    return cuda::atomic_ref<unsigned long long, cuda::thread_scope_device>(*const_cast<unsigned long long *>(p))
        .load(cuda::memory_order_acquire);
}

__device__ __forceinline__ const rt_win &rt_window(const rt_dev &d, unsigned long long t)
{
    return d.wins[(t >> 32) % RT_NW];
}

/* Makes the photon of ticket t in this lane: its feed's event e, and
 * whether the event was cancelled (then the photon is finished at once,
 * not run). The acquire of the doorbell comes first: window slots and the
 * arena are reused, and this SM's L1 may hold lines of what was there. */
__device__ __forceinline__ bool rt_make(const rt_dev &d, unsigned long long t, c2_photon *p, uint32_t *e)
{
    rt_load(d.nwin);
    const rt_win &w = rt_window(d, t);
    const unsigned long long ft = w.t0 + (t & 0xffffffffull);
    *e = c2k_find(w.first, w.nevents, ft);
    if (w.fault) { /* the failure tests' fault: a store to an address no allocation has */
        d.next[1ull << 40] = 1;
    }
    c2k_make_photon(&d.g, &w.events[*e], *e, (uint32_t)(ft - w.first[*e]), p);
    return rt_load(&d.cancel[(w.ev0 + *e) % RT_NE]) != 0;
}

/* Called by all 32 lanes; fin says which lanes' photons ended (with their
 * feed's event e and ticket t). Writes end states and hits, sums the
 * counters per group of lanes that share an event or a window, and posts
 * events and windows that this made complete. */
__device__ void rt_finish(const rt_dev &d, bool fin, const c2_photon &p, uint32_t e, unsigned long long t)
{
    unsigned fm = __ballot_sync(RT_FULL, fin);
    if (!fm) {
        return;
    }
    unsigned long long k = t >> 32, g = 0;
    const uint32_t slot = (uint32_t)(k % RT_NW), off = (uint32_t)t;
    const rt_win *w = &d.wins[slot];
    if (fin) {
        const c2k_event &ev = w->events[e];
        g = w->ev0 + e;
        if ((ev.want & C2_RETURN_PHOTONS) && d.ends) {
            d.ends[w->pool + off] = p;
        }
        if ((p.flags & C2_SURFACE_DETECT) && p.channel != C2_NO_CHANNEL &&
            (ev.want & (C2_RETURN_HITS | C2_RETURN_CHANNELS))) {
            size_t i = w->pool + atomicAdd(&d.nhits[slot], 1u);
            c2_hit h;
            h.photon_id = p.id;
            h.channel = p.channel;
            h.time = p.time;
            h.wavelength = p.wavelength;
            h.pos[0] = p.pos[0];
            h.pos[1] = p.pos[1];
            h.pos[2] = p.pos[2];
            h.flags = p.flags;
            d.hits[i] = h;
            d.keys[i] = off;
        }
        rt_evstat *st = &d.stat[g % RT_NE];
        if (p.flags & C2_MAX_STEPS) {
            atomicAdd(&st->maxsteps, 1u);
        }
        if (p.flags & C2_NAN_ABORT) {
            atomicAdd(&st->nan, 1u);
        }
        __threadfence(); /* this lane's outputs before the counts that publish them */
    }
    __syncwarp();
    if (!fin) {
        return;
    }
    /* per event: photons finished and steps (summed in 16-bit halves so
     * that 32 lanes' u32 step counts cannot overflow) */
    unsigned grp = __match_any_sync(fm, g);
    uint32_t lo = __reduce_add_sync(grp, p.steps & 0xffffu), hi = __reduce_add_sync(grp, p.steps >> 16);
    if ((int)rt_lane() == __ffs(grp) - 1) {
        const uint32_t c = (uint32_t)__popc(grp);
        rt_evstat *st = &d.stat[g % RT_NE];
        atomicAdd(&st->steps, (unsigned long long)lo + ((unsigned long long)hi << 16));
        if (atomicAdd(&st->done, c) + c == (uint32_t)(w->first[e + 1] - w->first[e])) {
            unsigned long long q = atomicAdd(d.ncompleted, 1ull) % RT_NE;
            cuda::atomic_ref<unsigned long long, cuda::thread_scope_system>(d.completed[q]).store(
                g + 1, cuda::memory_order_release);
            __threadfence_system(); /* the completion before the window counts, which may post */
        } else {
            __threadfence(); /* the event's counts before the window counts */
        }
    }
    __syncwarp(fm);
    /* per window */
    unsigned wg = __match_any_sync(fm, k);
    if ((int)rt_lane() == __ffs(wg) - 1) {
        const uint32_t c = (uint32_t)__popc(wg);
        if (atomicAdd(&d.wdone[slot], c) + c == w->size) {
            __threadfence_system();
            cuda::atomic_ref<unsigned long long, cuda::thread_scope_system>(d.posted[slot]).store(
                k + 1, cuda::memory_order_release);
        }
    }
}

/* Lane 0's part of claiming: hands out up to `want` tickets from the
 * warp's reservation [lo, hi), reserving anew when it is used up. Returns
 * how many, the first in *at; 0 when the next tickets' window is not
 * released yet (the reservation is kept for it). */
__device__ int rt_claim(const rt_dev &d, unsigned long long &lo, unsigned long long &hi, int want,
                        unsigned long long *at)
{
    for (int tries = 0; tries < 4; tries++) {
        if (lo == hi) {
            lo = atomicAdd(d.next, (unsigned long long)RT_CLAIM);
            hi = lo + RT_CLAIM;
        }
        const unsigned long long k = lo >> 32;
        if (k >= rt_load(d.nwin)) {
            return 0;
        }
        const unsigned long long end = (k << 32) + rt_window(d, lo).size;
        if (lo >= end) { /* past its window's photons: move everyone on to the next window */
            atomicMax(d.next, (k + 1) << 32);
            lo = hi;
            continue;
        }
        const unsigned long long stop = min(end, hi);
        const int give = (int)min(stop - lo, (unsigned long long)want);
        *at = lo;
        lo += give;
        if (lo == stop) {
            lo = hi; /* the rest of a reservation past the window's end is dropped */
        }
        return give;
    }
    return 0;
}

/* Whether the quit doorbell says at least `level`, agreed by the whole
 * warp (a vote, so that it leaves together). */
__device__ __forceinline__ bool rt_quit(const rt_dev &d, unsigned long long level)
{
    return __any_sync(RT_FULL, rt_load(d.quit) >= level);
}

/* The persistent kernel. Lane 0 keeps the warp's reservation and hands its
 * tickets to empty lanes as far as the host released them. Four blocks an
 * SM (64 registers, a few spills): it waits on cached geometry reads, and
 * 32 warps an SM hide them better than 24 at 80 registers (1.07x the
 * photons/s on the H200, benchmarks table 2). */
#define RT_BLOCKS_PER_SM 4
__global__ void __launch_bounds__(RT_BLOCK, RT_BLOCKS_PER_SM) rt_persistent(rt_dev d)
{
    c2_photon p;
    c2k_rng r;
    uint32_t e = 0, max_steps = 0;
    unsigned long long t = 0, lo = 0, hi = 0;
    bool has = false;
    for (uint32_t iter = 0;; iter++) {
        unsigned empty = __ballot_sync(RT_FULL, !has);
        bool fin = false;
        if (empty) {
            int give = 0;
            unsigned long long at = 0;
            if (rt_lane() == 0) {
                give = rt_claim(d, lo, hi, __popc(empty), &at);
            }
            give = __shfl_sync(RT_FULL, give, 0);
            at = __shfl_sync(RT_FULL, at, 0);
            int rank = __popc(empty & ((1u << rt_lane()) - 1u));
            if (!has && rank < give) {
                t = at + (unsigned long long)rank;
                if (rt_make(d, t, &p, &e)) {
                    fin = true; /* cancelled: finished without running */
                } else {
                    const c2k_event &ev = rt_window(d, t).events[e];
                    has = true;
                    r = c2k_photon_rng(ev.seed, ev.id, &p);
                    max_steps = ev.max_steps;
                }
            }
        }
        unsigned busy = __ballot_sync(RT_FULL, has || fin);
        if (!busy) {
            if (rt_quit(d, 1)) {
                return; /* quit 1: every released ticket is claimed (the host rings it when all is
                           delivered; one_launch before the launch), so this warp has no more work */
            }
            __nanosleep(500); /* waiting for the host to release a window */
            continue;
        }
        if (has) {
            c2k_status st = c2k_step(&d.g, &p, &r, max_steps);
            if (st == C2K_SPAWN) {
                atomicAdd(&d.stat[(rt_window(d, t).ev0 + e) % RT_NE].reemit, 1u);
            } else if (st == C2K_DONE) {
                p.draws = r.draws;
                fin = true;
                has = false;
            }
        }
        rt_finish(d, fin, p, e, t);
        if ((iter & 255u) == 0 && rt_quit(d, 2)) {
            return;
        }
    }
}

/* ---- wavefront mode: one step per launch, survivors compacted ---- */

/* Appends this lane's photon to out when keep. */
__device__ __forceinline__ void rt_compact(bool keep, const c2_photon &p, c2_photon *out, uint32_t *nout)
{
    uint32_t i = c2q_append_slot(RT_FULL, keep, nout);
    if (keep) {
        out[i] = p;
    }
}

/* The photons of window 0 (the whole batch, in wavefront mode), or
 * finished at once when their event is cancelled. */
__global__ void __launch_bounds__(RT_BLOCK) rt_wave_make(rt_dev d, c2_photon *out, uint32_t *nout)
{
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    bool live = t < d.wins[0].size, skip = false;
    c2_photon p;
    uint32_t e = 0;
    if (live) {
        skip = rt_make(d, t, &p, &e);
    }
    rt_finish(d, skip, p, e, t);
    rt_compact(live && !skip, p, out, nout);
}

__global__ void __launch_bounds__(RT_BLOCK) rt_wave_step(rt_dev d, const c2_photon *in, uint32_t n, c2_photon *out,
                                                        uint32_t *nout)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    bool live = i < n, fin = false;
    c2_photon p;
    uint32_t e = 0;
    unsigned long long t = 0;
    if (live) {
        const rt_win &w = d.wins[0];
        p = in[i];
        e = p.event;
        t = w.first[e] + p.id - w.t0;
        const c2k_event &ev = w.events[e];
        if (rt_load(&d.cancel[(w.ev0 + e) % RT_NE])) {
            fin = true; /* cancelled: finished where it is */
        } else {
            c2k_rng r = c2k_photon_rng(ev.seed, ev.id, &p);
            c2k_status st = c2k_step(&d.g, &p, &r, ev.max_steps);
            p.draws = r.draws;
            if (st == C2K_SPAWN) {
                atomicAdd(&d.stat[(w.ev0 + e) % RT_NE].reemit, 1u);
            }
            fin = st == C2K_DONE;
        }
    }
    rt_finish(d, fin, p, e, t);
    rt_compact(live && !fin, p, out, nout);
}

/* ---- host side ---- */

/* Where an rt_buf lives: device, pinned (and mapped) host memory for
 * copies and doorbells, or plain host memory for the host's own scratch
 * (pinning it would only lock pages away from the rest of the machine). */
enum { RT_DEV, RT_PINNED, RT_PLAIN };

/* A buffer that grows and is kept. */
struct rt_buf {
    void *p;
    size_t size;
    int kind;
};

enum { RT_D_WINS, RT_D_CTL, RT_D_STAT, RT_D_CANCEL, RT_D_HITS, RT_D_KEYS, RT_D_ENDS, RT_D_ARENA, RT_D_WAVE, RT_D_N };
enum {
    RT_H_WINS, RT_H_STAGE, RT_H_HITS, RT_H_KEYS, RT_H_ENDS, RT_H_MAPPED, RT_H_SORT, RT_H_SORTED, RT_H_STAT, RT_H_ZERO,
    RT_H_N
};

/* Event states, host side. */
enum { RT_EV_COMPLETED = 1, RT_EV_CANCELLED = 2, RT_EV_DELIVERED = 4 };

/* A feed: events fed together, one block in the arena. Owned by the
 * runtime from c2c_runtime_feed until its last event is delivered. */
struct rt_feed {
    rt_feed *next;               /* feeds in the order fed */
    const c2_event *events;      /* the caller's */
    c2_event_result *res;        /* the caller's */
    c2c_done_fn done;
    void *arg;
    uint32_t n, left;            /* events, events not delivered */
    uint32_t empties;            /* events without photons, not yet delivered (the next poll does) */
    unsigned long long ev0;      /* global index of event 0 */
    uint64_t total, windowed;    /* photons, photons cut into windows so far */
    uint64_t drained;            /* photons of windows drained (windows of a feed drain in order) */
    uint64_t *first;             /* [n + 1] first ticket of each event (feed numbering) */
    uint32_t *wleft;             /* [n] windows holding the event's photons not drained yet */
    uint32_t *hit_cap;           /* [n] */
    unsigned char *state;        /* [n] RT_EV_* */
    const c2k_event *devents;    /* the block in the arena */
    const uint64_t *dfirst;
    uint64_t arena_off, arena_size;
    uint32_t fault;
};

/* Window k, host side (slot k % RT_NW; f NULL when the slot is free). */
struct rt_hwin {
    rt_feed *f;
    uint64_t t0, size, pool;
    uint32_t e0, e1; /* the feed's events with photons in it */
};

struct c2c_runtime {
    c2c_runtime_params params;
    cudaStream_t ks, cs, ds; /* kernel; feeds, window copies, resets and doorbells; cancel and quit doorbells */
    cudaEvent_t k0, k1;
    c2c_write64_fn write64;
    c2c_write32_fn write32;
    int sms, per_sm;
    uint64_t pool_bytes;
    uint32_t feeds_fed;
    rt_buf dev[RT_D_N], host[RT_H_N];
    c2i_team *team; /* host threads that, with the polling one, order windows' hits and touch result pages */
    const void *zeroed; /* host[RT_H_ZERO] as last zeroed (with the completion ring) */
    char broken[256];

    /* the kernel: started by rt_start, ended by rt_stop */
    int running;
    uint32_t warps, launches;
    const c2c_geometry *dg;
    rt_dev d;
    uint64_t P, W;      /* pool photons, window photons */
    uint64_t arena_cap; /* bytes */

    /* windows [0, nwin) released; oldest: the first not drained */
    uint64_t nwin, oldest, pool_head, arena_head;
    rt_hwin win[RT_NW];
    unsigned long long ev_next, comp_next; /* next event's global index; completions read */
    rt_feed *feeds;
    uint32_t inflight;
    uint64_t windows_made; /* for the stats */
    double last_post, last_cancels, t_posted; /* last drain, cancel scan, window seen finished */
    double host_seconds; /* in drains and deliveries, since the last rt_start */
    int in_run;          /* inside c2c_runtime_run: wavefront and one_launch launch only there */
};

static void rt_break(c2c_runtime *rt, const char *why)
{
    if (!rt->broken[0]) {
        snprintf(rt->broken, sizeof rt->broken, "%s", why);
    }
}

static void rt_buf_free(rt_buf *b)
{
    if (b->kind == RT_DEV) {
        cudaFree(b->p);
    } else if (b->kind == RT_PINNED) {
        cudaFreeHost(b->p);
    } else {
        free(b->p);
    }
    b->p = NULL;
    b->size = 0;
}

/* Makes b, of the given kind, hold at least size bytes (contents not
 * kept). Only while no kernel runs. */
static cudaError_t rt_grow(rt_buf *b, size_t size, int kind)
{
    if (b->size >= size) {
        return cudaSuccess;
    }
    rt_buf_free(b);
    b->kind = kind;
    size = size + size / 4 + 256; /* room to grow */
    cudaError_t e = kind == RT_DEV      ? cudaMalloc(&b->p, size)
                    : kind == RT_PINNED ? cudaHostAlloc(&b->p, size, cudaHostAllocMapped)
                    : (b->p = malloc(size)) ? cudaSuccess
                                           : cudaErrorMemoryAllocation;
    if (e == cudaSuccess) {
        b->size = size;
    } else {
        b->p = NULL;
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
    }
    return e;
}

/* Where size units fit in a ring of cap units whose live part runs from
 * tail to head (wrapping; live says whether anything is): the offset, or
 * UINT64_MAX. An item never wraps. */
static uint64_t rt_ring_fit(uint64_t cap, uint64_t head, uint64_t tail, int live, uint64_t size)
{
    if (size > cap) {
        return UINT64_MAX;
    }
    if (!live) {
        return 0;
    }
    if (head > tail) {
        return head + size <= cap ? head : size <= tail ? 0 : UINT64_MAX;
    }
    return head < tail && head + size <= tail ? head : UINT64_MAX;
}

extern "C" c2c_runtime *c2c_runtime_new(const c2c_runtime_params *params, c2_error *err)
{
    int rc = 0, dev = 0;
    c2c_runtime *rt = (c2c_runtime *)calloc(1, sizeof *rt);
    if (!rt) {
        c2i_fail(err, C2_ENOMEM, "out of memory");
        return NULL;
    }
    if (params) {
        rt->params = *params;
    }
    if (rt->params.wavefront && rt->params.one_launch) {
        rc = c2i_fail(err, C2_EINVAL, "cuda runtime: wavefront and one_launch are two ways to launch: one at most");
        goto out;
    }
    if ((rc = c2c_device_count(err)) < 0) {
        goto out;
    }
    rc = 0;
    C2C_CHECK(cudaGetDevice(&dev), "selecting the device");
    C2C_CHECK(cudaDeviceGetAttribute(&rt->sms, cudaDevAttrMultiProcessorCount, dev), "reading the device");
    {
        int coop = 0;
        C2C_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev), "reading the device");
        if (!coop) {
            rc = c2i_fail(err, C2_EIO, "cuda: the device cannot launch cooperative kernels");
            goto out;
        }
    }
    C2C_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&rt->per_sm, rt_persistent, RT_BLOCK, 0), "occupancy");
    if (rt->per_sm < 1) {
        rc = c2i_fail(err, C2_EIO, "cuda: the persistent kernel does not fit on an SM");
        goto out;
    }
    C2C_CHECK(cudaStreamCreateWithFlags(&rt->ks, cudaStreamNonBlocking), "creating streams");
    C2C_CHECK(cudaStreamCreateWithFlags(&rt->cs, cudaStreamNonBlocking), "creating streams");
    C2C_CHECK(cudaStreamCreateWithFlags(&rt->ds, cudaStreamNonBlocking), "creating streams");
    C2C_CHECK(cudaEventCreate(&rt->k0), "creating events");
    C2C_CHECK(cudaEventCreate(&rt->k1), "creating events");
    if (!(rt->write64 = c2c_driver_write64(err)) || !(rt->write32 = c2c_driver_write32(err))) {
        rc = C2_EIO;
        goto out;
    }
    if (!rt->params.host_threads) { /* half the CPUs, up to 8: the daemon's other threads need the rest */
        const uint32_t cores = c2i_cores();
        rt->params.host_threads = cores >= 4 ? (cores / 2 < 8 ? cores / 2 : 8) : 1;
    }
    rt->params.team_min_hits = rt->params.team_min_hits ? rt->params.team_min_hits : 4096;
    rt->params.touch_min_bytes = rt->params.touch_min_bytes ? rt->params.touch_min_bytes : 8u << 20;
    if (!(rt->team = c2i_team_new(rt->params.host_threads))) {
        rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        goto out;
    }
    rt->pool_bytes = rt->params.pool_bytes;
    if (!rt->pool_bytes) {
        size_t free_b = 0, total_b = 0;
        C2C_CHECK(cudaMemGetInfo(&free_b, &total_b), "reading free device memory");
        rt->pool_bytes = free_b / 4 < (4ull << 30) ? free_b / 4 : (4ull << 30);
    }
out:
    if (rc) {
        c2c_runtime_free(rt);
        return NULL;
    }
    return rt;
}

/* Waits up to 5 s for the kernel, told to quit, to end. Returns
 * cudaSuccess when it ended, cudaErrorNotReady when it still runs, or the
 * error it ended with. */
static cudaError_t rt_wait_end(c2c_runtime *rt)
{
    const double t_give_up = c2c_now() + 5.0;
    cudaError_t q;
    while ((q = cudaEventQuery(rt->k1)) == cudaErrorNotReady && c2c_now() < t_give_up) {
        struct timespec nap = {0, 20000};
        nanosleep(&nap, NULL);
    }
    rt->running = q == cudaErrorNotReady;
    return q;
}

/* Sends the kernel away now (quit 2); a kernel that stays breaks the
 * runtime. */
static void rt_abort(c2c_runtime *rt)
{
    if (rt->running &&
        (rt->write64(rt->ds, (CUdeviceptr)rt->d.quit, 2, 0) != CUDA_SUCCESS || rt_wait_end(rt) == cudaErrorNotReady)) {
        rt_break(rt, "cuda runtime: the persistent kernel did not stop when told to");
    }
}

static void rt_feed_free(rt_feed *f)
{
    free(f->first);
    free(f->wleft);
    free(f->hit_cap);
    free(f->state);
    free(f);
}

extern "C" void c2c_runtime_free(c2c_runtime *rt)
{
    if (!rt) {
        return;
    }
    while (rt->feeds) {
        rt_feed *f = rt->feeds;
        rt->feeds = f->next;
        rt_feed_free(f);
    }
    c2i_team_free(rt->team);
    if (!rt->broken[0]) {
        rt_abort(rt);
    }
    if (rt->broken[0]) { /* CUDA calls may wait for ever on a kernel that did not stop: the process exits anyway */
        free(rt);
        return;
    }
    for (int i = 0; i < RT_D_N; i++) {
        rt_buf_free(&rt->dev[i]);
    }
    for (int i = 0; i < RT_H_N; i++) {
        rt_buf_free(&rt->host[i]);
    }
    cudaStream_t streams[3] = {rt->ks, rt->cs, rt->ds};
    for (int i = 0; i < 3; i++) {
        if (streams[i]) {
            cudaStreamDestroy(streams[i]);
        }
    }
    if (rt->k0) {
        cudaEventDestroy(rt->k0);
    }
    if (rt->k1) {
        cudaEventDestroy(rt->k1);
    }
    free(rt);
}

extern "C" const char *c2c_runtime_broken(const c2c_runtime *rt) { return rt->broken[0] ? rt->broken : NULL; }
extern "C" uint32_t c2c_runtime_inflight(const c2c_runtime *rt) { return rt->inflight; }
extern "C" uint32_t c2c_runtime_launches(const c2c_runtime *rt) { return rt->launches; }

/* Ends the runtime's use of the device after a failure: the kernel is sent
 * away, the runtime broken (why), and every event in flight delivered with
 * rc, its result emptied. Returns rc. */
static int rt_fail(c2c_runtime *rt, int rc, const char *why)
{
    rt_abort(rt);
    rt_break(rt, why);
    while (rt->feeds) {
        rt_feed *f = rt->feeds;
        rt->feeds = f->next;
        for (uint32_t e = 0; e < f->n; e++) {
            if (!(f->state[e] & RT_EV_DELIVERED)) {
                c2_event_result_free(&f->res[e]);
                f->done(f->arg, e, rc);
            }
        }
        rt_feed_free(f);
    }
    rt->inflight = 0;
    return rc;
}

/* Starts the kernel for dg with pools for windows of up to `window`
 * photons (0: from pool_bytes), end states if ends, and an arena of at
 * least arena bytes. No kernel runs. */
/* Launches the persistent kernel on rt->d, as many warps as asked and
 * fit; the timing event k1 marks its end. */
static int rt_launch(c2c_runtime *rt, c2_error *err)
{
    int rc = 0;
    uint32_t per_sm = rt->params.warps_per_sm ? rt->params.warps_per_sm : 64; /* as many as fit */
    uint32_t blocks_per_sm = (per_sm + RT_BLOCK / 32 - 1) / (RT_BLOCK / 32);
    blocks_per_sm = blocks_per_sm < (uint32_t)rt->per_sm ? blocks_per_sm : (uint32_t)rt->per_sm;
    uint32_t blocks = blocks_per_sm * (uint32_t)rt->sms;
    rt->warps = blocks * (RT_BLOCK / 32);
    void *args[] = {&rt->d};
    /* cooperative: all blocks resident at once, as sized. The kernel does
     * not need it (a block not yet running holds no tickets), so where
     * other work holds SMs (MPS) an ordinary launch serves */
    cudaError_t le = cudaLaunchCooperativeKernel((void *)rt_persistent, blocks, RT_BLOCK, args, 0, rt->ks);
    if (le == cudaErrorCooperativeLaunchTooLarge) {
        cudaGetLastError(); /* not sticky */
        rt_persistent<<<blocks, RT_BLOCK, 0, rt->ks>>>(rt->d);
        le = cudaGetLastError();
    }
    C2C_CHECK(le, "launching the persistent kernel");
    rt->launches++;
    rt->running = 1; /* before anything else can fail: a running kernel is told to quit */
    C2C_CHECK(cudaEventRecord(rt->k1, rt->ks), "timing");
out:
    return rc;
}

static int rt_start(c2c_runtime *rt, const c2c_geometry *dg, uint64_t window, int ends, uint64_t arena,
                    c2_error *err)
{
    int rc = 0;
    const size_t per = sizeof(c2_hit) + sizeof(uint32_t) + (ends ? sizeof(c2_photon) : 0);
    /* Windows are small so that the host drains one while the kernel runs
     * the next (and sorts a window's hits in cache); the pool lets the
     * kernel run up to pool_bytes ahead of the host, at least two windows */
    const uint64_t pool = rt->pool_bytes / per;
    uint64_t W = window ? window : rt->params.window ? rt->params.window : pool / 2 < RT_WINDOW ? pool / 2 : RT_WINDOW;
    W = W ? W : 1;
    W = W < (1ull << 31) ? W : 1ull << 31; /* a window's photons are 32-bit */
    const uint64_t P = window || pool < 2 * W ? 2 * W : pool; /* wavefront mode: its batch and room for it */
    arena = arena > RT_ARENA_MIN ? arena : RT_ARENA_MIN;
    arena = arena > rt->arena_cap ? arena : rt->arena_cap;
    const size_t ctl_bytes = 8 * sizeof(unsigned long long) + 2 * RT_NW * sizeof(uint32_t);
    struct {
        rt_buf *buf;
        size_t size;
        int kind;
    } need[] = {
        {&rt->dev[RT_D_WINS], RT_NW * sizeof(rt_win), RT_DEV},
        {&rt->dev[RT_D_CTL], ctl_bytes, RT_DEV},
        {&rt->dev[RT_D_STAT], RT_NE * sizeof(rt_evstat), RT_DEV},
        {&rt->dev[RT_D_CANCEL], RT_NE * sizeof(unsigned long long), RT_DEV},
        {&rt->dev[RT_D_HITS], P * sizeof(c2_hit), RT_DEV},
        {&rt->dev[RT_D_KEYS], P * sizeof(uint32_t), RT_DEV},
        {&rt->dev[RT_D_ENDS], ends ? P * sizeof(c2_photon) : 0, RT_DEV},
        {&rt->dev[RT_D_ARENA], arena, RT_DEV},
        {&rt->dev[RT_D_WAVE], rt->params.wavefront ? P * sizeof(c2_photon) : 0, RT_DEV},
        {&rt->host[RT_H_WINS], RT_NW * sizeof(rt_win), RT_PINNED},
        {&rt->host[RT_H_STAGE], arena, RT_PINNED},
        {&rt->host[RT_H_HITS], W * sizeof(c2_hit), RT_PINNED},
        {&rt->host[RT_H_KEYS], W * sizeof(uint32_t) + 64, RT_PINNED},
        {&rt->host[RT_H_ENDS], ends ? W * sizeof(c2_photon) : 0, RT_PINNED},
        {&rt->host[RT_H_MAPPED], (RT_NW + RT_NE) * sizeof(unsigned long long), RT_PINNED},
        {&rt->host[RT_H_SORT], 5 * W * sizeof(uint32_t), RT_PLAIN},
        {&rt->host[RT_H_SORTED], W * sizeof(c2_hit), RT_PLAIN},
        {&rt->host[RT_H_STAT], RT_NE * sizeof(rt_evstat), RT_PINNED},
        {&rt->host[RT_H_ZERO], RT_NE * sizeof(rt_evstat), RT_PINNED},
    };
    static const char *const kind_name[] = {"device", "pinned host", "host"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (need[i].size && rt_grow(need[i].buf, need[i].size, need[i].kind) != cudaSuccess) {
            return c2i_fail(err, C2_ENOMEM, "cuda runtime: cannot allocate %zu bytes of %s memory (window %llu)",
                            need[i].size, kind_name[need[i].kind], (unsigned long long)W);
        }
    }
    rt->P = P;
    rt->W = W;
    rt->arena_cap = arena;
    rt->dg = dg;
    rt->nwin = rt->oldest = rt->pool_head = rt->arena_head = 0;
    rt->comp_next = 0;
    rt->host_seconds = 0;
    memset(rt->win, 0, sizeof rt->win);
    char *mapped = (char *)rt->host[RT_H_MAPPED].p;
    if (rt->zeroed != rt->host[RT_H_ZERO].p) { /* new buffers: the completion ring is kept zero after this */
        memset(rt->host[RT_H_ZERO].p, 0, RT_NE * sizeof(rt_evstat));
        memset(mapped, 0, (RT_NW + RT_NE) * sizeof(unsigned long long));
        rt->zeroed = rt->host[RT_H_ZERO].p;
    }
    memset(mapped, 0, RT_NW * sizeof(unsigned long long)); /* window numbers start again at 0 */
    void *dmapped = NULL;
    C2C_CHECK(cudaHostGetDevicePointer(&dmapped, mapped, 0), "mapping host memory");
    {
        rt_dev &d = rt->d;
        memset(&d, 0, sizeof d);
        d.g = *c2c_geometry_view(dg);
        d.wins = (const rt_win *)rt->dev[RT_D_WINS].p;
        unsigned long long *ctl = (unsigned long long *)rt->dev[RT_D_CTL].p;
        d.next = ctl;
        d.nwin = ctl + 1;
        d.quit = ctl + 2;
        d.ncompleted = ctl + 3;
        d.wdone = (uint32_t *)(ctl + 8);
        d.nhits = d.wdone + RT_NW;
        d.cancel = (const unsigned long long *)rt->dev[RT_D_CANCEL].p;
        d.stat = (rt_evstat *)rt->dev[RT_D_STAT].p;
        d.hits = (c2_hit *)rt->dev[RT_D_HITS].p;
        d.keys = (uint32_t *)rt->dev[RT_D_KEYS].p;
        d.ends = ends ? (c2_photon *)rt->dev[RT_D_ENDS].p : NULL;
        d.posted = (unsigned long long *)dmapped;
        d.completed = (unsigned long long *)dmapped + RT_NW;
        /* doorbells of the last kernel may still be on their way: they must land before this */
        C2C_CHECK(cudaStreamSynchronize(rt->ds), "finishing doorbells");
        C2C_CHECK(cudaStreamSynchronize(rt->cs), "finishing doorbells");
        C2C_CHECK(cudaMemsetAsync(ctl, 0, ctl_bytes, rt->ks), "starting the kernel");
        /* done before any doorbell (stream cs) can be written */
        C2C_CHECK(cudaStreamSynchronize(rt->ks), "starting the kernel");
        C2C_CHECK(cudaEventRecord(rt->k0, rt->ks), "timing");
        rt->warps = 0;
        rt->running = 0;
        if (!rt->params.wavefront && !rt->params.one_launch && (rc = rt_launch(rt, err))) { /* else c2c_runtime_run */
            goto out;
        }
        rt->last_post = c2c_now();
    }
out:
    return rc;
}

/* Lets the kernel end; nothing is in flight. */
static int rt_stop(c2c_runtime *rt, c2_error *err)
{
    if (!rt->running) {
        return 0;
    }
    const char *why = NULL;
    cudaError_t q;
    if (rt->write64(rt->ds, (CUdeviceptr)rt->d.quit, 1, 0) != CUDA_SUCCESS) {
        why = "ringing the quit doorbell failed";
    } else if ((q = rt_wait_end(rt)) != cudaSuccess) {
        why = q == cudaErrorNotReady ? "still running after 5 s" : cudaGetErrorString(q);
    }
    if (why) {
        char msg[200];
        snprintf(msg, sizeof msg, "cuda runtime: the kernel did not end when idle: %s", why);
        return rt_fail(rt, c2i_fail(err, C2_EIO, "%s", msg), msg);
    }
    return 0;
}

/* Cuts photons of the oldest feeds into windows and releases them, as far
 * as window slots and pool room allow; one doorbell for all. */
static int rt_release(c2c_runtime *rt, c2_error *err)
{
    int rc = 0;
    const uint64_t nwin0 = rt->nwin;
    rt_win *hw = (rt_win *)rt->host[RT_H_WINS].p;
    if (rt->oldest == rt->nwin) {
        rt->last_post = c2c_now(); /* the watchdog counts from the first window in flight */
    }
    for (rt_feed *f = rt->feeds; f; f = f->next) {
        while (f->windowed < f->total && rt->nwin - rt->oldest < RT_NW) {
            const uint64_t size = f->total - f->windowed < rt->W ? f->total - f->windowed : rt->W;
            const int live = rt->oldest < rt->nwin;
            const uint64_t tail = live ? rt->win[rt->oldest % RT_NW].pool : 0;
            const uint64_t at = rt_ring_fit(rt->P, rt->pool_head, tail, live, size);
            if (at == UINT64_MAX) {
                goto doorbell;
            }
            const uint64_t k = rt->nwin, slot = k % RT_NW;
            rt_hwin *w = &rt->win[slot];
            w->f = f;
            w->t0 = f->windowed;
            w->size = size;
            w->pool = at;
            w->e0 = c2k_find(f->first, f->n, w->t0);
            for (w->e1 = w->e0; w->e1 < f->n && f->first[w->e1] < w->t0 + size; w->e1++) {
                f->wleft[w->e1]++;
            }
            rt_win d;
            d.events = f->devents;
            d.first = f->dfirst;
            d.ev0 = f->ev0;
            d.t0 = w->t0;
            d.pool = at;
            d.nevents = f->n;
            d.size = (uint32_t)size;
            d.fault = f->fault;
            hw[slot] = d; /* a slot is rewritten only after its window was drained, when this copy is long done */
            C2C_CHECK(cudaMemcpyAsync((rt_win *)rt->dev[RT_D_WINS].p + slot, &hw[slot], sizeof d,
                                      cudaMemcpyHostToDevice, rt->cs),
                      "releasing a window");
            rt->pool_head = at + size;
            f->windowed += size;
            rt->nwin++;
            rt->windows_made++;
        }
        if (f->windowed < f->total) {
            break; /* windows are released in feed order */
        }
    }
doorbell:
    if (rt->nwin != nwin0 && rt->write64(rt->cs, (CUdeviceptr)rt->d.nwin, rt->nwin, 0) != CUDA_SUCCESS) {
        rc = c2i_fail(err, C2_EIO, "cuda: ringing the feed doorbell failed");
    }
out:
    return rc;
}

/* The pages of [p, p + bytes) made present by the host team, each thread
 * touching its share: a large result array grows by doubling, and its
 * first-touch page faults, one at a time, were two thirds of the host's
 * time on a 100 M-photon event (3 us per 4 KiB page on the H200's host,
 * a virtual machine; huge pages there were slower still). */
typedef struct rt_touch {
    char *p;
    size_t bytes;
} rt_touch;

static void rt_touch_slice(void *arg, uint32_t t, uint32_t n)
{
    const rt_touch *x = (const rt_touch *)arg;
    const size_t page = 4096, pages = (x->bytes + page - 1) / page;
    for (size_t k = pages * t / n; k < pages * (t + 1) / n; k++) {
        ((volatile char *)x->p)[k * page] = 0; /* unwritten part of the array: its value does not matter */
    }
}

/* Makes room for n more hits in an event's result (at least doubling;
 * the slack is given back at delivery). */
static int rt_reserve_hits(c2c_runtime *rt, c2_event_result *r, uint32_t *cap, uint32_t n)
{
    if (r->nhits + (uint64_t)n <= *cap) {
        return 0;
    }
    uint64_t c = 2ull * *cap > r->nhits + (uint64_t)n ? 2ull * *cap : r->nhits + (uint64_t)n;
    c = c < UINT32_MAX ? c : UINT32_MAX;
    c2_hit *a = (c2_hit *)realloc(r->hits, (size_t)c * sizeof *a);
    if (!a) {
        return -1;
    }
    r->hits = a;
    *cap = (uint32_t)c;
    rt_touch x = {(char *)(a + r->nhits), (size_t)(c - r->nhits) * sizeof *a}; /* the part not yet written */
    if (x.bytes >= rt->params.touch_min_bytes && c2i_team_size(rt->team) > 1) {
        c2i_team_run(rt->team, rt_touch_slice, &x);
    }
    return 0;
}

/* Reads completions from the completion queue. */
static void rt_read_completions(c2c_runtime *rt)
{
    unsigned long long *ring = (unsigned long long *)rt->host[RT_H_MAPPED].p + RT_NW;
    for (;;) {
        cuda::atomic_ref<unsigned long long, cuda::thread_scope_system> slot(ring[rt->comp_next % RT_NE]);
        unsigned long long v = slot.load(cuda::memory_order_acquire);
        if (!v) {
            return;
        }
        slot.store(0, cuda::memory_order_relaxed);
        rt->comp_next++;
        const unsigned long long g = v - 1;
        for (rt_feed *f = rt->feeds; f; f = f->next) {
            if (g >= f->ev0 && g < f->ev0 + f->n) {
                /* a second completion of one event is caught at delivery: it has no flag to set twice */
                f->state[g - f->ev0] += f->state[g - f->ev0] & RT_EV_COMPLETED ? 8 : RT_EV_COMPLETED;
                break;
            }
        }
    }
}

/* An event is ready when it has no photons, or when all of them were cut
 * into windows and those windows drained. */
static int rt_ready(const rt_feed *f, uint32_t e)
{
    return !(f->state[e] & RT_EV_DELIVERED) &&
           (f->first[e + 1] == f->first[e] || (!f->wleft[e] && f->windowed >= f->first[e + 1]));
}

/* Takes a feed whose events were all delivered out of the list. */
static void rt_feed_done(c2c_runtime *rt, rt_feed *f)
{
    rt_feed **p = &rt->feeds;
    while (*p != f) {
        p = &(*p)->next;
    }
    *p = f->next;
    rt_feed_free(f);
}

/* Delivers the feed's ready events among [e0, e1): counters from the
 * device, the result completed, the done call. Frees the feed after its
 * last. */
static int rt_deliver(c2c_runtime *rt, rt_feed *f, uint32_t e0, uint32_t e1, c2_error *err)
{
    int rc = 0;
    rt_evstat *hs = (rt_evstat *)rt->host[RT_H_STAT].p;
    /* the counters of the ready events with photons: one copy, or two where the slots wrap */
    uint32_t c0 = e1, c1 = e0;
    for (uint32_t e = e0; e < e1; e++) {
        if (rt_ready(f, e) && f->first[e + 1] > f->first[e]) {
            c0 = e < c0 ? e : c0;
            c1 = e + 1;
        }
    }
    if (c0 < c1) {
        const uint64_t s0 = (f->ev0 + c0) % RT_NE, n = c1 - c0, n1 = s0 + n <= RT_NE ? n : RT_NE - s0;
        C2C_CHECK(cudaMemcpyAsync(hs + s0, rt->d.stat + s0, n1 * sizeof *hs, cudaMemcpyDeviceToHost, rt->cs),
                  "reading the counters");
        if (n1 < n) {
            C2C_CHECK(cudaMemcpyAsync(hs, rt->d.stat, (n - n1) * sizeof *hs, cudaMemcpyDeviceToHost, rt->cs),
                      "reading the counters");
        }
        C2C_CHECK(cudaStreamSynchronize(rt->cs), "reading the counters");
        rt_read_completions(rt); /* queued before the windows that made these events ready were posted */
    }
    for (uint32_t e = e0; e < e1; e++) {
        if (!rt_ready(f, e)) {
            continue;
        }
        const uint64_t photons = f->first[e + 1] - f->first[e];
        const rt_evstat *st = &hs[(f->ev0 + e) % RT_NE];
        /* ring slots are taken before they are written, so an entry may wait
         * behind one whose lane has not stored yet: it comes within moments */
        const double give_up = c2c_now() + 1.0;
        while (photons && !(f->state[e] & RT_EV_COMPLETED) && c2c_now() < give_up) {
            rt_read_completions(rt);
        }
        if (photons && (st->done != photons || (f->state[e] & ~RT_EV_CANCELLED) != RT_EV_COMPLETED)) {
            return c2i_fail(err, C2_EIO, "cuda runtime: event %u of a feed: %u of %llu photons finished, %s", e,
                            st->done, (unsigned long long)photons,
                            f->state[e] & RT_EV_COMPLETED ? "completed more than once" : "no completion queued");
        }
        c2_event_result *r = &f->res[e];
        const c2_event *ev = &f->events[e];
        r->ntotal = (uint32_t)photons;
        r->nphotons = r->photons ? r->ntotal : 0;
        r->steps = photons ? st->steps : 0;
        r->nreemit = photons ? st->reemit : 0;
        r->nmaxsteps = photons ? st->maxsteps : 0;
        r->nnan = photons ? st->nan : 0;
        if ((ev->want & C2_RETURN_CHANNELS) && c2i_result_channels(r, ev, rt->team)) {
            return c2i_fail(err, C2_ENOMEM, "out of memory");
        }
        if (!(ev->want & C2_RETURN_HITS)) {
            free(r->hits);
            r->hits = NULL;
            r->nhits = 0;
        } else if (r->nhits && r->nhits < f->hit_cap[e]) { /* the growth's slack, resident if it was touched */
            c2_hit *a = (c2_hit *)realloc(r->hits, (size_t)r->nhits * sizeof *a);
            r->hits = a ? a : r->hits;
            f->hit_cap[e] = a ? r->nhits : f->hit_cap[e];
        }
        f->state[e] |= RT_EV_DELIVERED;
        f->left--;
        rt->inflight--;
        f->done(f->arg, e, 0);
    }
    if (!f->left) {
        rt_feed_done(rt, f);
    }
out:
    return rc;
}

/* A window's hits put in ticket order by the host team. The tickets are
 * cut into pieces of 2^shift, RT_PIECES per thread or fewer, and thread t
 * takes the pieces [t * pieces / n, (t + 1) * pieces / n): it picks its
 * hits out (every thread reads all keys: a parallel scan, where handing
 * the hits out on one thread first would be a serial pass as long), orders
 * them and gathers them, with their keys, to their places. Eight pieces a
 * thread keep the threads within ~1/8 of even on any window size. */
#define RT_PIECES 8u
typedef struct rt_order {
    const uint32_t *keys; /* the window's, as copied out: photon within the window */
    const c2_hit *hits;
    uint32_t nh, shift, pieces;
    uint32_t start[RT_PIECES * C2I_TEAM_MAX + 1]; /* hits in pieces before piece k */
    uint32_t *idx, *lk, *ord, *tmp;               /* scratch, nh each, by place */
    uint32_t *skeys;                              /* out: keys in order */
    c2_hit *out;                                  /* out: hits in order */
} rt_order;

static void rt_order_slice(void *arg, uint32_t t, uint32_t n)
{
    rt_order *o = (rt_order *)arg;
    const uint32_t p0 = t * o->pieces / n, p1 = (t + 1) * o->pieces / n;
    const uint32_t at = o->start[p0], m = o->start[p1] - at;
    const uint32_t lo = p0 << o->shift, span = (p1 - p0) << o->shift; /* this thread's tickets */
    uint32_t *idx = o->idx + at, *lk = o->lk + at, *ord = o->ord + at;
    for (uint32_t i = 0, j = 0; j < m; i++) {
        if (o->keys[i] - lo < span) { /* unsigned: keys below lo wrap past span */
            idx[j] = i;
            lk[j++] = o->keys[i] - lo;
        }
    }
    c2i_radix_order(lk, m, ord, o->tmp + at);
    for (uint32_t i = 0; i < m; i++) {
        o->out[at + i] = o->hits[idx[ord[i]]];
        o->skeys[at + i] = lo + lk[ord[i]];
    }
}

/* Orders a window's nh hits (copied out: keys RT_H_KEYS, hits RT_H_HITS)
 * into o->skeys and o->out, on the team when they are many. */
static int rt_order_hits(c2c_runtime *rt, uint32_t nh, uint64_t size, rt_order *o, c2_error *err)
{
    const uint32_t *hk = (const uint32_t *)rt->host[RT_H_KEYS].p;
    uint32_t *sc = (uint32_t *)rt->host[RT_H_SORT].p;
    const uint32_t n = nh >= rt->params.team_min_hits ? c2i_team_size(rt->team) : 1;
    o->keys = hk;
    o->hits = (const c2_hit *)rt->host[RT_H_HITS].p;
    o->nh = nh;
    o->idx = sc, o->lk = sc + nh, o->ord = sc + 2 * nh, o->tmp = sc + 3 * nh, o->skeys = sc + 4 * nh;
    o->out = (c2_hit *)rt->host[RT_H_SORTED].p;
    for (o->shift = 0; (size - 1) >> o->shift >= RT_PIECES * n; o->shift++) {
    }
    o->pieces = (uint32_t)((size - 1) >> o->shift) + 1;
    memset(o->start, 0, (o->pieces + 1) * sizeof o->start[0]);
    for (uint32_t i = 0; i < nh; i++) {
        if (hk[i] >= size) {
            return c2i_fail(err, C2_EIO, "cuda runtime: a hit of photon %u in a window of %llu", hk[i],
                            (unsigned long long)size);
        }
        o->start[(hk[i] >> o->shift) + 1]++;
    }
    for (uint32_t k = 0; k < o->pieces; k++) {
        o->start[k + 1] += o->start[k];
    }
    if (n > 1) {
        c2i_team_run(rt->team, rt_order_slice, o);
    } else {
        rt_order_slice(o, 0, 1);
    }
    return 0;
}

/* Drains window k (finished): copies its hits and end states out, frees
 * the slot, hands them, hits sorted by ticket, to the events' results,
 * and delivers the events it completed. */
static int rt_drain(c2c_runtime *rt, uint64_t k, c2_error *err)
{
    int rc = 0;
    const uint32_t slot = (uint32_t)(k % RT_NW);
    rt_hwin *w = &rt->win[slot];
    rt_feed *f = w->f;
    const uint64_t lo_t = w->t0, size = w->size;
    c2_hit *hh = (c2_hit *)rt->host[RT_H_HITS].p;
    uint32_t *hk = (uint32_t *)rt->host[RT_H_KEYS].p;
    uint32_t nh = 0;
    int ends = 0;
    for (uint32_t e = w->e0; e < w->e1; e++) {
        ends |= f->res[e].photons != NULL;
    }
    C2C_CHECK(cudaMemcpyAsync(hk, &rt->d.nhits[slot], sizeof nh, cudaMemcpyDeviceToHost, rt->cs), "reading hits");
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "reading hits");
    nh = hk[0];
    if (nh > size) {
        return c2i_fail(err, C2_EIO, "cuda runtime: a window has more hits than photons");
    }
    if (nh) {
        C2C_CHECK(cudaMemcpyAsync(hk, rt->d.keys + w->pool, nh * sizeof(uint32_t), cudaMemcpyDeviceToHost, rt->cs),
                  "copying hits");
        C2C_CHECK(cudaMemcpyAsync(hh, rt->d.hits + w->pool, nh * sizeof(c2_hit), cudaMemcpyDeviceToHost, rt->cs),
                  "copying hits");
    }
    if (ends) {
        C2C_CHECK(cudaMemcpyAsync(rt->host[RT_H_ENDS].p, rt->d.ends + w->pool, size * sizeof(c2_photon),
                                  cudaMemcpyDeviceToHost, rt->cs),
                  "copying end states");
    }
    /* the slot is free once these are out: reset its counters in stream order */
    if (rt->write32(rt->cs, (CUdeviceptr)&rt->d.nhits[slot], 0, 0) != CUDA_SUCCESS ||
        rt->write32(rt->cs, (CUdeviceptr)&rt->d.wdone[slot], 0, 0) != CUDA_SUCCESS) {
        return c2i_fail(err, C2_EIO, "cuda: resetting a window's counters failed");
    }
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "draining a window");
    {
        rt_order o;
        if ((rc = rt_order_hits(rt, nh, size, &o, err))) {
            return rc;
        }
        uint32_t e = w->e0;
        for (uint32_t i = 0; i < nh;) { /* runs of hits of one event, in ticket order */
            const uint64_t t = lo_t + o.skeys[i];
            while (f->first[e + 1] <= t) {
                e++;
            }
            uint32_t j = i;
            while (j < nh && lo_t + o.skeys[j] < f->first[e + 1]) {
                j++;
            }
            c2_event_result *r = &f->res[e];
            if (rt_reserve_hits(rt, r, &f->hit_cap[e], j - i)) {
                return c2i_fail(err, C2_ENOMEM, "cuda runtime: out of host memory for hits");
            }
            memcpy(r->hits + r->nhits, o.out + i, (j - i) * sizeof(c2_hit));
            r->nhits += j - i;
            i = j;
        }
    }
    if (ends) {
        const c2_photon *he = (const c2_photon *)rt->host[RT_H_ENDS].p;
        for (uint32_t e = w->e0; e < w->e1; e++) {
            if (!f->res[e].photons) {
                continue;
            }
            uint64_t a = f->first[e] > lo_t ? f->first[e] : lo_t;
            uint64_t b = f->first[e + 1] < lo_t + size ? f->first[e + 1] : lo_t + size;
            memcpy(f->res[e].photons + (a - f->first[e]), he + (a - lo_t), (b - a) * sizeof(c2_photon));
        }
    }
    for (uint32_t e = w->e0; e < w->e1; e++) {
        f->wleft[e]--;
    }
    f->drained += size;
    w->f = NULL;
    while (rt->oldest < rt->nwin && !rt->win[rt->oldest % RT_NW].f) {
        rt->oldest++;
    }
    return rt_deliver(rt, f, w->e0, w->e1, err);
out:
    return rc;
}

/* Rings the cancel doorbell of events whose stop flag was set (at most
 * every millisecond: it reads every event in flight). */
static int rt_poll_cancels(c2c_runtime *rt, c2_error *err)
{
    const double now = c2c_now();
    if (now - rt->last_cancels < 1e-3) {
        return 0;
    }
    rt->last_cancels = now;
    for (rt_feed *f = rt->feeds; f; f = f->next) {
        for (uint32_t e = 0; e < f->n; e++) {
            if (f->state[e] & (RT_EV_CANCELLED | RT_EV_DELIVERED)) {
                continue; /* a delivered event's memory may be gone */
            }
            const int *stop = f->events[e].stop;
            if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
                f->state[e] |= RT_EV_CANCELLED;
                if (rt->write64(rt->ds, (CUdeviceptr)&rt->d.cancel[(f->ev0 + e) % RT_NE], 1, 0) != CUDA_SUCCESS) {
                    return c2i_fail(err, C2_EIO, "cuda: ringing a cancel doorbell failed");
                }
            }
        }
    }
    return 0;
}

/* One pass: completions, windows finished, cancels, the kernel's health. */
static int rt_pass(c2c_runtime *rt, int *delivered, c2_error *err)
{
    int rc = 0;
    const uint32_t before = rt->inflight;
    const unsigned long long *posted = (const unsigned long long *)rt->host[RT_H_MAPPED].p;
    rt_read_completions(rt);
    for (rt_feed *f = rt->feeds, *next; f; f = next) {
        next = f->next; /* f goes when this delivers its last events */
        if (f->empties) {
            f->empties = 0;
            if ((rc = rt_deliver(rt, f, 0, f->n, err))) {
                return rc;
            }
        }
    }
    /* whether the kernel ran before this pass reads the windows: in
     * one_launch mode it leaves by itself after posting its last window,
     * which this pass then drains */
    const int watched = rt->running && rt->nwin > rt->oldest;
    const cudaError_t q = watched ? cudaEventQuery(rt->k1) : cudaErrorNotReady;
    const double t0 = c2c_now();
    int drained = 0;
    for (uint64_t k = rt->oldest; k < rt->nwin; k++) {
        rt_hwin *w = &rt->win[k % RT_NW];
        cuda::atomic_ref<unsigned long long, cuda::thread_scope_system> p(
            *const_cast<unsigned long long *>(&posted[k % RT_NW]));
        if (w->f && w->t0 == w->f->drained && p.load(cuda::memory_order_acquire) == k + 1) {
            rt->t_posted = c2c_now();
            if ((rc = rt_drain(rt, k, err))) {
                return rc;
            }
            drained = 1;
        }
    }
    if (drained) {
        rt->last_post = c2c_now();
        rt->host_seconds += rt->last_post - t0;
        if ((rc = rt_release(rt, err))) {
            return rc;
        }
    }
    if ((rc = rt_poll_cancels(rt, err))) {
        return rc;
    }
    *delivered = (int)(before - rt->inflight);
    if (watched && rt->nwin > rt->oldest) {
        if (q != cudaErrorNotReady) { /* the kernel had ended, and windows are still in flight */
            rt->running = 0;
            return c2i_fail(err, C2_EIO, "cuda runtime: the kernel ended with windows in flight: %s",
                            q == cudaSuccess ? "photons lost" : cudaGetErrorString(q));
        }
        const double watchdog = rt->params.watchdog_s > 0 ? rt->params.watchdog_s : 300.0;
        if (c2c_now() - rt->last_post > watchdog) {
            return c2i_fail(err, C2_EIO, "cuda runtime: no window finished for %.0f s (window %llu); kernel aborted",
                            watchdog, (unsigned long long)rt->oldest);
        }
    }
    return 0;
}

extern "C" int c2c_runtime_poll(c2c_runtime *rt, double wait_s, c2_error *err)
{
    if (rt->broken[0]) { /* anything still in flight fails now */
        c2i_fail(err, C2_EIO, "%s", rt->broken);
        return -rt_fail(rt, C2_EIO, rt->broken);
    }
    const double t_end = c2c_now() + wait_s;
    for (unsigned spins = 0;; spins++) {
        int delivered = 0, rc = rt_pass(rt, &delivered, err);
        if (rc) {
            return -rt_fail(rt, rc, err ? err->msg : "cuda runtime: a CUDA call failed");
        }
        if (delivered || !rt->inflight || c2c_now() >= t_end) {
            return delivered;
        }
        if (spins > 64) { /* spin briefly: windows often finish within microseconds */
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

extern "C" int c2c_runtime_quiesce(c2c_runtime *rt, c2_error *err)
{
    while (rt->inflight) {
        int rc = c2c_runtime_poll(rt, 1.0, err);
        if (rc < 0) {
            return -rc;
        }
    }
    if (rt->broken[0]) {
        return c2i_fail(err, C2_EIO, "%s", rt->broken);
    }
    return rt_stop(rt, err);
}

extern "C" int c2c_runtime_feed(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *events, uint32_t n,
                                c2_event_result *results, c2c_done_fn done, void *arg, c2_error *err)
{
    int rc = 0;
    c2c_batch b;
    rt_feed *f = NULL;
    if (rt->broken[0]) {
        return c2i_fail(err, C2_EIO, "%s", rt->broken);
    }
    if (n && (!results || !done)) {
        return c2i_fail(err, C2_EINVAL, "results or done is NULL");
    }
    if (n > RT_NE) {
        return c2i_fail(err, C2_ELIMIT, "cuda runtime: at most %u events at once, not %u", RT_NE, n);
    }
    if (!n) {
        return 0;
    }
    if ((rt->params.wavefront || rt->params.one_launch) && (rt->inflight || !rt->in_run)) {
        return c2i_fail(err, C2_EINVAL, "cuda runtime: %s runs one batch at a time, through c2c_runtime_run",
                        rt->params.wavefront ? "wavefront mode" : "one_launch");
    }
    if ((rc = c2c_batch_plan(dg, events, n, &b, err))) {
        return rc;
    }
    int ends = 0;
    for (uint32_t e = 0; e < n; e++) {
        ends |= (events[e].want & C2_RETURN_PHOTONS) != 0;
    }
    /* wavefront mode runs one window of the whole feed */
    const uint64_t window = rt->params.wavefront ? (b.total ? b.total : 1) : 0;
    if (rt->params.wavefront && b.total > (1ull << 31)) {
        return c2i_fail(err, C2_ELIMIT, "cuda runtime: wavefront mode runs batches of at most 2^31 photons, not %llu",
                        (unsigned long long)b.total);
    }
    /* a kernel of another geometry, or without room enough: restart it once what it runs is delivered */
    if (rt->running && (rt->dg != dg || (ends && !rt->d.ends) || b.size + 256 > rt->arena_cap)) {
        if ((rc = c2c_runtime_quiesce(rt, err))) {
            return rc;
        }
    }
    if (!rt->running && (rc = rt_start(rt, dg, window, ends, b.size + 256, err))) {
        return rc;
    }
    if (rt->params.one_launch && (b.total > rt->P || (b.total + rt->W - 1) / rt->W > RT_NW)) {
        return c2i_fail(err, C2_ELIMIT,
                        "cuda runtime: one_launch runs a call in one pass of the pool: %llu photons, the pool holds "
                        "%llu in %u windows of %llu",
                        (unsigned long long)b.total, (unsigned long long)rt->P, RT_NW, (unsigned long long)rt->W);
    }
    /* room: event slots and arena space, as deliveries free them; blocks
     * start 256-byte aligned (the block's own layout assumes so) */
    const uint64_t span = (b.size + 255) & ~(uint64_t)255;
    uint64_t at = UINT64_MAX;
    for (;;) {
        const unsigned long long oldest = rt->feeds ? rt->feeds->ev0 : rt->ev_next;
        at = rt->feeds ? rt_ring_fit(rt->arena_cap, rt->arena_head, rt->feeds->arena_off, 1, span)
                       : rt_ring_fit(rt->arena_cap, 0, 0, 0, span);
        if (rt->ev_next + n - oldest <= RT_NE && at != UINT64_MAX) {
            break;
        }
        int got = c2c_runtime_poll(rt, 1.0, err);
        if (got < 0) {
            return -got;
        }
    }
    memset(results, 0, n * sizeof *results);
    f = (rt_feed *)calloc(1, sizeof *f);
    if (!f || !(f->first = (uint64_t *)malloc((n + 1) * sizeof *f->first)) ||
        !(f->wleft = (uint32_t *)calloc(n ? n : 1, sizeof *f->wleft)) ||
        !(f->hit_cap = (uint32_t *)calloc(n ? n : 1, sizeof *f->hit_cap)) ||
        !(f->state = (unsigned char *)calloc(n ? n : 1, 1))) {
        rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        goto out;
    }
    {
        char *dblock = (char *)rt->dev[RT_D_ARENA].p + at, *hblock = (char *)rt->host[RT_H_STAGE].p;
        c2c_batch_fill(dg, &b, events, hblock, dblock);
        memcpy(f->first, hblock + b.off[C2C_B_FIRST], (n + 1) * sizeof *f->first);
        f->devents = (const c2k_event *)(dblock + b.off[C2C_B_EVENTS]);
        f->dfirst = (const uint64_t *)(dblock + b.off[C2C_B_FIRST]);
        for (uint32_t e = 0; e < n; e++) {
            if ((events[e].want & C2_RETURN_PHOTONS) && f->first[e + 1] > f->first[e] &&
                !(results[e].photons = (c2_photon *)malloc((f->first[e + 1] - f->first[e]) * sizeof(c2_photon)))) {
                rc = c2i_fail(err, C2_ENOMEM, "out of memory for end states");
                goto out;
            }
        }
        f->events = events;
        f->res = results;
        f->done = done;
        f->arg = arg;
        f->n = f->left = n;
        f->total = b.total;
        f->ev0 = rt->ev_next;
        f->arena_off = at;
        f->arena_size = b.size;
        f->fault = ++rt->feeds_fed == rt->params.fault_run;
        /* the block, and zeroed counters and cancel words for its event slots (a
         * cancel doorbell of an event delivered before may still be on its way) */
        C2C_CHECK(cudaStreamSynchronize(rt->ds), "finishing doorbells");
        C2C_CHECK(cudaMemcpyAsync(dblock, hblock, b.size, cudaMemcpyHostToDevice, rt->cs), "staging a feed");
        const uint64_t s0 = f->ev0 % RT_NE, n1 = s0 + n <= RT_NE ? n : RT_NE - s0;
        const char *zero = (const char *)rt->host[RT_H_ZERO].p;
        for (int part = 0; part < 2; part++) {
            const uint64_t s = part ? 0 : s0, c = part ? n - n1 : n1;
            if (c) {
                C2C_CHECK(cudaMemcpyAsync(rt->d.stat + s, zero, c * sizeof(rt_evstat), cudaMemcpyHostToDevice, rt->cs),
                          "staging a feed");
                C2C_CHECK(cudaMemcpyAsync((unsigned long long *)rt->d.cancel + s, zero, c * sizeof(unsigned long long),
                                          cudaMemcpyHostToDevice, rt->cs),
                          "staging a feed");
            }
        }
        for (uint32_t e = 0; e < n; e++) { /* stopped already: no photon of it runs */
            if (events[e].stop && __atomic_load_n(events[e].stop, __ATOMIC_RELAXED)) {
                f->state[e] |= RT_EV_CANCELLED;
                if (rt->write64(rt->cs, (CUdeviceptr)(rt->d.cancel + (f->ev0 + e) % RT_NE), 1, 0) != CUDA_SUCCESS) {
                    rc = c2i_fail(err, C2_EIO, "cuda: ringing a cancel doorbell failed");
                    goto out;
                }
            }
        }
        C2C_CHECK(cudaStreamSynchronize(rt->cs), "staging a feed"); /* the staging buffer is reused */
    }
    /* in: appended after the feeds before it */
    {
        rt_feed **tail = &rt->feeds;
        while (*tail) {
            tail = &(*tail)->next;
        }
        *tail = f;
    }
    rt->ev_next += n;
    rt->inflight += n;
    rt->arena_head = at + span;
    for (uint32_t e = 0; e < n; e++) {
        f->empties += f->first[e + 1] == f->first[e]; /* delivered by the next poll */
    }
    if ((rc = rt_release(rt, err))) {
        /* out again, without a done call: the caller keeps its events; the others fail */
        for (uint32_t e = 0; e < n; e++) {
            c2_event_result_free(&results[e]);
        }
        rt->inflight -= n;
        rt_feed_done(rt, f);
        return rt_fail(rt, rc, err ? err->msg : "cuda runtime: releasing windows failed");
    }
    return 0;
out:
    if (f) { /* not in the list yet: the caller keeps its events */
        for (uint32_t e = 0; e < n; e++) {
            c2_event_result_free(&results[e]);
        }
        rt_feed_free(f);
    }
    if (rc == C2_EIO) { /* the device failed: the events fed before fail with it */
        rt_fail(rt, rc, err ? err->msg : "cuda runtime: a CUDA call failed");
    }
    return rc;
}

/* Wavefront mode: window 0 holds the whole batch; launch after launch
 * until no photon is left. */
static int rt_wavefront(c2c_runtime *rt, c2_error *err)
{
    int rc = 0;
    const uint64_t total = rt->nwin ? rt->win[0].size : 0;
    c2_photon *a = (c2_photon *)rt->dev[RT_D_WAVE].p, *b = a + total;
    uint32_t *count = (uint32_t *)rt->host[RT_H_KEYS].p; /* pinned scratch */
    uint32_t *dcount = (uint32_t *)(rt->d.ncompleted + 1);
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "wavefront: releasing the window");
    if (total) {
        C2C_CHECK(cudaMemsetAsync(dcount, 0, sizeof(uint32_t), rt->ks), "wavefront");
        rt_wave_make<<<(unsigned)((total + RT_BLOCK - 1) / RT_BLOCK), RT_BLOCK, 0, rt->ks>>>(rt->d, a, dcount);
        C2C_CHECK(cudaGetLastError(), "wavefront: making photons");
    }
    for (uint32_t n = 0; total;) {
        C2C_CHECK(cudaMemcpyAsync(count, dcount, sizeof(uint32_t), cudaMemcpyDeviceToHost, rt->ks), "wavefront");
        C2C_CHECK(cudaMemsetAsync(dcount, 0, sizeof(uint32_t), rt->ks), "wavefront");
        C2C_CHECK(cudaStreamSynchronize(rt->ks), "wavefront step");
        if (!(n = *count)) {
            break;
        }
        if ((rc = rt_poll_cancels(rt, err))) {
            goto out;
        }
        rt_wave_step<<<(n + RT_BLOCK - 1) / RT_BLOCK, RT_BLOCK, 0, rt->ks>>>(rt->d, a, n, b, dcount);
        C2C_CHECK(cudaGetLastError(), "wavefront: stepping");
        c2_photon *t = a;
        a = b;
        b = t;
    }
    C2C_CHECK(cudaEventRecord(rt->k1, rt->ks), "timing");
out:
    return rc;
}

/* c2c_runtime_run's done function: counts the events down. */
struct rt_count {
    uint32_t left;
    int rc;
};

static void rt_count_done(void *arg, uint32_t i, int rc)
{
    rt_count *c = (rt_count *)arg;
    (void)i;
    c->left--;
    c->rc = c->rc ? c->rc : rc;
}

/* one_launch: the call's windows are all released (c2c_runtime_feed
 * refused a call that does not fit), the quit doorbell says "leave when
 * idle", then the kernel starts and runs them to the end without the host. */
static int rt_one_launch(c2c_runtime *rt, c2_error *err)
{
    int rc = 0;
    if (rt->write64(rt->cs, (CUdeviceptr)rt->d.quit, 1, 0) != CUDA_SUCCESS) {
        return c2i_fail(err, C2_EIO, "cuda: ringing the quit doorbell failed");
    }
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "releasing the windows");
    rc = rt_launch(rt, err);
out:
    return rc;
}

extern "C" int c2c_runtime_run(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *events, uint32_t n,
                               c2_event_result *results, c2c_run_stats *stats, c2_error *err)
{
    const double t_call = c2c_now();
    const uint64_t windows0 = rt->windows_made, rounds0 = c2i_team_rounds(rt->team);
    rt_count c = {n, 0};
    if (stats) {
        memset(stats, 0, sizeof *stats);
    }
    rt->in_run = 1;
    int rc = c2c_runtime_feed(rt, dg, events, n, results, rt_count_done, &c, err);
    rt->in_run = 0;
    if (rc) {
        return rc;
    }
    const double host0 = rt->host_seconds;
    if (n && rt->params.wavefront && (rc = rt_wavefront(rt, err))) { /* n 0: nothing was fed */
        rc = rt_fail(rt, rc, err ? err->msg : "cuda runtime: wavefront failed");
    }
    if (n && rt->params.one_launch && (rc = rt_one_launch(rt, err))) {
        rc = rt_fail(rt, rc, err ? err->msg : "cuda runtime: one_launch failed");
    }
    while (!rc && c.left) {
        int got = c2c_runtime_poll(rt, 1.0, err);
        rc = got < 0 ? -got : 0;
    }
    rc = rc ? rc : c.rc;
    const double t_results = c2c_now();
    if (!rc) {
        rc = c2c_runtime_quiesce(rt, err);
    }
    if (rc) {
        for (uint32_t e = 0; e < n; e++) {
            c2_event_result_free(&results[e]);
        }
    }
    if (stats) {
        float ms = 0;
        if (rt->params.wavefront) {
            if (!rc && n && cudaEventElapsedTime(&ms, rt->k0, rt->k1) == cudaSuccess) {
                stats->kernel_seconds = 1e-3 * ms;
            }
        } else if (rt->t_posted > t_call) { /* the resident kernel outlives the work: until its last window finished */
            stats->kernel_seconds = rt->t_posted - t_call;
        }
        for (uint32_t e = 0; e < n && !rc; e++) {
            stats->photons += results[e].ntotal;
        }
        stats->window = rt->W;
        stats->windows = (uint32_t)(rt->windows_made - windows0);
        stats->warps = rt->warps;
        stats->team_rounds = c2i_team_rounds(rt->team) - rounds0;
        stats->seconds = c2c_now() - t_call;
        stats->host_seconds = rt->host_seconds - host0 + (rc ? 0.0 : c2c_now() - t_results);
    }
    return rc;
}

/*
 * runtime.cu: the GPU runtime. One cooperative launch per batch, sized by
 * occupancy, keeps every lane of every resident warp busy: a lane whose
 * photon ended claims the next photon of the batch (a ticket), makes it on
 * the device (explicit photons are copied in; source photons are expanded
 * from their source record, as in the CPU engine) and steps it with the
 * shared physics. Keeping lanes full is what wins over one thread per
 * photon, where a warp waits for its longest history (doc/profiles/: 3.8 of
 * 32 lanes busy on the default detector). A survivor stays in its lane and
 * a reemitted photon goes on in the lane of its parent: with counter-based
 * random numbers that is the same history as queueing it, and the queue
 * benchmark measured the round trip through a ring at 10x the cost of
 * keeping the item (doc/benchmarks.md, table 1).
 *
 * Windows. Tickets are cut into windows of W photons. The pool holds two
 * windows of outputs (hits, end states): slot ticket % 2W. The host
 * releases tickets with a doorbell word (limit, written in stream order by
 * cuStreamWriteValue64 while the kernel runs), two windows at first; when
 * window k is finished the last lane to finish one of its photons posts
 * k + 1 into a word of mapped host memory; the host copies that window's
 * hits and end states out, resets the slot's counters (stream-ordered
 * writes, no kernel), sorts the hits by ticket on the host and only then
 * releases window k + 2 into the same slots. So an event of any size
 * streams through a pool sized from free device memory, and the host
 * drains one window while the kernel runs the next. Nothing is launched
 * while the persistent kernel runs: its blocks may hold every SM's
 * registers, and a kernel that cannot get an SM would wait for it while it
 * waits for the host (a device-side sort deadlocked exactly so at 10^5
 * hits).
 *
 * Completion. Per-event counters (photons finished, steps, reemissions,
 * guards) are summed with one atomic per group of lanes finishing the same
 * event; the lane that finishes an event's last photon appends the event
 * to the completion queue in mapped host memory. The host checks at the
 * end that every event completed once with every photon counted.
 *
 * Cancel and abort: per-event cancel words (doorbells) make lanes skip the
 * rest of an event's photons as they claim them; the abort word makes
 * every warp leave (the watchdog's last resort). A kernel that does not
 * leave after an abort, or any CUDA error, breaks the runtime: the process
 * must exit to get a clean device back (the daemon does).
 *
 * Memory: pools and pinned staging are allocated between runs only, never
 * while a kernel runs (cudaMalloc may wait for it), grown when a batch
 * needs more and kept. Threads: one call at a time.
 */
#include <cuda/atomic>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cpu/engine_int.h"
#include "cuda_int.h"

#define RT_BLOCK 256
#define RT_CLAIM 64u /* tickets a warp reserves at a time */
#define RT_FULL 0xffffffffu

/* Per-event counters on the device. */
struct rt_evstat {
    unsigned long long steps;
    uint32_t done, reemit, maxsteps, nan;
};

/* What the kernels see. Pointers are device memory unless said. */
struct rt_dev {
    c2k_geom g;
    const c2k_event *events;
    const uint64_t *first; /* [nevents + 1] first ticket of each event */
    uint32_t nevents;
    unsigned long long total, window;
    unsigned long long *next;  /* tickets reserved by warps (runs past total at the end) */
    unsigned long long *limit; /* doorbell: tickets released by the host */
    unsigned long long *abort; /* doorbell: leave now */
    const unsigned long long *cancel; /* [nevents] doorbells: skip the event's remaining photons */
    rt_evstat *stat;           /* [nevents] */
    uint32_t *wdone;           /* [2] photons finished of the window in that slot */
    uint32_t *nhits;           /* [2] hits of the window in that slot */
    c2_hit *hits;              /* [2W] window k's at (k % 2) W */
    uint32_t *keys;            /* [2W] the hit's ticket - k W */
    c2_photon *ends;           /* [2W] by ticket % 2W, or NULL when no event wants them */
    unsigned long long *win_posted; /* mapped host [2]: k + 1 once window k is finished */
    uint32_t *completed;       /* mapped host [nevents]: the completion queue, in finishing order */
    uint32_t *ncompleted;      /* its next free slot (device) */
};

__device__ __forceinline__ unsigned rt_lane(void) { return threadIdx.x & 31u; }

__device__ __forceinline__ unsigned long long rt_load(const unsigned long long *p)
{
    return cuda::atomic_ref<unsigned long long, cuda::thread_scope_device>(*const_cast<unsigned long long *>(p))
        .load(cuda::memory_order_acquire);
}

/* Makes the photon of ticket t in this lane: its event e, and whether the
 * event was cancelled (then the photon is finished at once, not run). */
__device__ __forceinline__ bool rt_make(const rt_dev &d, unsigned long long t, c2_photon *p, uint32_t *e)
{
    *e = c2k_find(d.first, d.nevents, t);
    c2k_make_photon(&d.g, &d.events[*e], *e, (uint32_t)(t - d.first[*e]), p);
    return rt_load(&d.cancel[*e]) != 0;
}

/* Called by all 32 lanes; fin says which lanes' photons ended (with their
 * event e and ticket t). Writes end states and hits, sums the counters per
 * group of lanes that share an event or a window, and posts events and
 * windows that this made complete. */
__device__ void rt_finish(const rt_dev &d, bool fin, const c2_photon &p, uint32_t e, unsigned long long t)
{
    unsigned fm = __ballot_sync(RT_FULL, fin);
    if (!fm) {
        return;
    }
    unsigned long long w = 0;
    if (fin) {
        const c2k_event &ev = d.events[e];
        w = t / d.window;
        uint32_t slot = (uint32_t)(w & 1u);
        if (ev.want & C2_RETURN_PHOTONS) {
            d.ends[t % (2 * d.window)] = p;
        }
        if ((p.flags & C2_SURFACE_DETECT) && p.channel != C2_NO_CHANNEL &&
            (ev.want & (C2_RETURN_HITS | C2_RETURN_CHANNELS))) {
            size_t i = (size_t)slot * d.window + atomicAdd(&d.nhits[slot], 1u);
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
            d.keys[i] = (uint32_t)(t - w * d.window);
        }
        if (p.flags & C2_MAX_STEPS) {
            atomicAdd(&d.stat[e].maxsteps, 1u);
        }
        if (p.flags & C2_NAN_ABORT) {
            atomicAdd(&d.stat[e].nan, 1u);
        }
        __threadfence(); /* this lane's outputs before the counts that publish them */
    }
    __syncwarp();
    if (!fin) {
        return;
    }
    /* per event: photons finished and steps (summed in 16-bit halves so
     * that 32 lanes' u32 step counts cannot overflow) */
    unsigned grp = __match_any_sync(fm, e);
    uint32_t lo = __reduce_add_sync(grp, p.steps & 0xffffu), hi = __reduce_add_sync(grp, p.steps >> 16);
    if ((int)rt_lane() == __ffs(grp) - 1) {
        const uint32_t k = (uint32_t)__popc(grp);
        atomicAdd(&d.stat[e].steps, (unsigned long long)lo + ((unsigned long long)hi << 16));
        if (atomicAdd(&d.stat[e].done, k) + k == (uint32_t)(d.first[e + 1] - d.first[e])) {
            uint32_t slot = atomicAdd(d.ncompleted, 1u);
            cuda::atomic_ref<uint32_t, cuda::thread_scope_system>(d.completed[slot]).store(
                e, cuda::memory_order_release);
        }
    }
    /* per window */
    unsigned wg = __match_any_sync(fm, w);
    if ((int)rt_lane() == __ffs(wg) - 1) {
        const uint32_t k = (uint32_t)__popc(wg);
        unsigned long long lo_t = w * d.window, hi_t = min(lo_t + d.window, d.total);
        if (atomicAdd(&d.wdone[w & 1u], k) + k == (uint32_t)(hi_t - lo_t)) {
            __threadfence_system();
            cuda::atomic_ref<unsigned long long, cuda::thread_scope_system>(d.win_posted[w & 1u]).store(
                w + 1, cuda::memory_order_release);
        }
    }
}

/* The persistent kernel. Lane 0 keeps the warp's reserved tickets
 * [lo, hi) and hands them to empty lanes as far as the host released them. */
__global__ void __launch_bounds__(RT_BLOCK) rt_persistent(rt_dev d)
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
                if (lo == hi && lo < d.total) {
                    lo = atomicAdd(d.next, (unsigned long long)RT_CLAIM);
                    hi = lo + RT_CLAIM;
                }
                unsigned long long end = min(min(hi, d.total), rt_load(d.limit));
                give = end > lo ? (int)min(end - lo, (unsigned long long)__popc(empty)) : 0;
                at = lo;
                lo += give;
                if (lo >= d.total) {
                    lo = hi = d.total; /* nothing left to reserve */
                }
            }
            give = __shfl_sync(RT_FULL, give, 0);
            at = __shfl_sync(RT_FULL, at, 0);
            lo = __shfl_sync(RT_FULL, lo, 0);
            int rank = __popc(empty & ((1u << rt_lane()) - 1u));
            if (!has && rank < give) {
                t = at + (unsigned long long)rank;
                if (rt_make(d, t, &p, &e)) {
                    fin = true; /* cancelled: finished without running */
                } else {
                    has = true;
                    r = c2k_photon_rng(d.events[e].seed, d.events[e].id, &p);
                    max_steps = d.events[e].max_steps;
                }
            }
        }
        unsigned busy = __ballot_sync(RT_FULL, has || fin);
        if (!busy) {
            if (lo >= d.total) {
                return; /* every ticket taken, this warp's photons all finished */
            }
            if (rt_load(d.abort)) {
                return;
            }
            __nanosleep(500); /* waiting for the host to release the next window */
            continue;
        }
        if (has) {
            c2k_status st = c2k_step(&d.g, &p, &r, max_steps);
            if (st == C2K_SPAWN) {
                atomicAdd(&d.stat[e].reemit, 1u);
            } else if (st == C2K_DONE) {
                p.draws = r.draws;
                fin = true;
                has = false;
            }
        }
        rt_finish(d, fin, p, e, t);
        if ((iter & 255u) == 0 && rt_load(d.abort)) {
            return;
        }
    }
}

/* ---- wavefront mode: one step per launch, survivors compacted ---- */

/* Photon of ticket i (one window of the whole batch), or finished at once
 * when its event is cancelled. */
__global__ void __launch_bounds__(RT_BLOCK) rt_wave_make(rt_dev d, c2_photon *out, uint32_t *nout)
{
    unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    bool live = t < d.total, skip = false;
    c2_photon p;
    uint32_t e = 0;
    if (live) {
        skip = rt_make(d, t, &p, &e);
    }
    rt_finish(d, skip, p, e, t);
    bool keep = live && !skip;
    unsigned m = __ballot_sync(RT_FULL, keep);
    uint32_t base = 0;
    if (rt_lane() == 0 && m) {
        base = atomicAdd(nout, (uint32_t)__popc(m));
    }
    base = __shfl_sync(RT_FULL, base, 0);
    if (keep) {
        out[base + __popc(m & ((1u << rt_lane()) - 1u))] = p;
    }
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
        p = in[i];
        e = p.event;
        t = d.first[e] + p.id;
        const c2k_event &ev = d.events[e];
        if (rt_load(&d.cancel[e])) {
            fin = true; /* cancelled: finished where it is */
        } else {
            c2k_rng r = c2k_photon_rng(ev.seed, ev.id, &p);
            c2k_status st = c2k_step(&d.g, &p, &r, ev.max_steps);
            p.draws = r.draws;
            if (st == C2K_SPAWN) {
                atomicAdd(&d.stat[e].reemit, 1u);
            }
            fin = st == C2K_DONE;
        }
    }
    rt_finish(d, fin, p, e, t);
    bool keep = live && !fin;
    unsigned m = __ballot_sync(RT_FULL, keep);
    uint32_t base = 0;
    if (rt_lane() == 0 && m) {
        base = atomicAdd(nout, (uint32_t)__popc(m));
    }
    base = __shfl_sync(RT_FULL, base, 0);
    if (keep) {
        out[base + __popc(m & ((1u << rt_lane()) - 1u))] = p;
    }
}

/* The failure tests' fault: a store to an address no allocation has. */
__global__ void rt_fault(unsigned long long *p) { p[1ull << 40] = 1; }

/* ---- host side ---- */

/* A buffer that grows and is kept (device or pinned host). */
struct rt_buf {
    void *p;
    size_t size;
};

enum { RT_D_BATCH, RT_D_CTL, RT_D_STAT, RT_D_HITS, RT_D_KEYS, RT_D_ENDS, RT_D_WAVE, RT_D_N };
enum { RT_H_BATCH, RT_H_HITS, RT_H_KEYS, RT_H_ENDS, RT_H_MAPPED, RT_H_SORT, RT_H_N };

struct c2c_runtime {
    c2c_runtime_params params;
    cudaStream_t ks, cs, ds; /* kernel; window copies, resets and the feed doorbell; cancel and abort doorbells */
    cudaEvent_t k0, k1;
    c2c_write64_fn write64;
    c2c_write32_fn write32;
    int sms, per_sm;
    uint64_t pool_bytes;
    uint32_t runs;
    rt_buf dev[RT_D_N], host[RT_H_N];
    char broken[256];
};

static void rt_break(c2c_runtime *rt, const char *why)
{
    if (!rt->broken[0]) {
        snprintf(rt->broken, sizeof rt->broken, "%s", why);
    }
}

/* Makes b hold at least size bytes (contents not kept). */
static cudaError_t rt_grow(rt_buf *b, size_t size, int host)
{
    if (b->size >= size) {
        return cudaSuccess;
    }
    if (host) {
        cudaFreeHost(b->p);
    } else {
        cudaFree(b->p);
    }
    b->p = NULL;
    b->size = 0;
    size = size + size / 4 + 256; /* room to grow */
    cudaError_t e = host ? cudaHostAlloc(&b->p, size, cudaHostAllocMapped) : cudaMalloc(&b->p, size);
    if (e == cudaSuccess) {
        b->size = size;
    } else {
        b->p = NULL;
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
    }
    return e;
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

extern "C" void c2c_runtime_free(c2c_runtime *rt)
{
    if (!rt) {
        return;
    }
    if (rt->broken[0]) { /* CUDA calls may wait for ever on a kernel that did not stop: the process exits anyway */
        free(rt);
        return;
    }
    for (int i = 0; i < RT_D_N; i++) {
        cudaFree(rt->dev[i].p);
    }
    for (int i = 0; i < RT_H_N; i++) {
        cudaFreeHost(rt->host[i].p);
    }
    if (rt->ks) {
        cudaStreamDestroy(rt->ks);
    }
    if (rt->cs) {
        cudaStreamDestroy(rt->cs);
    }
    if (rt->ds) {
        cudaStreamDestroy(rt->ds);
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

/* Device bytes per window slot: two slots of hits, keys, end states. */
static size_t rt_slot_bytes(int ends)
{
    return 2 * (sizeof(c2_hit) + sizeof(uint32_t) + (ends ? sizeof(c2_photon) : 0));
}

/* Makes room for n more hits in an event's result (at least doubling). */
static int rt_reserve_hits(c2_event_result *r, uint32_t *cap, uint32_t n)
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
    return 0;
}

/* State of one run, host side. */
struct rt_run {
    c2c_runtime *rt;
    const c2_event *events;
    uint32_t n;
    c2_event_result *res;
    uint32_t *hit_cap;
    int *cancelled;
    const uint64_t *first; /* host copy */
    rt_dev d;
    unsigned long long *posted; /* host view of d.win_posted */
    int any_ends;
    double host_seconds; /* in drains and results */
};

/* Rings the cancel doorbell of events whose stop flag was set. */
static int rt_poll_cancels(rt_run *x, c2_error *err)
{
    for (uint32_t e = 0; e < x->n; e++) {
        const int *stop = x->events[e].stop;
        if (!x->cancelled[e] && stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
            x->cancelled[e] = 1;
            if (x->rt->write64(x->rt->ds, (CUdeviceptr)&x->d.cancel[e], 1, 0) != CUDA_SUCCESS) {
                return c2i_fail(err, C2_EIO, "cuda: ringing a cancel doorbell failed");
            }
        }
    }
    return 0;
}

/* Drains window k (finished): copies its hits and end states out, frees
 * the slot, and hands them, hits sorted by ticket, to the events' results. */
static int rt_drain(rt_run *x, unsigned long long k, c2_error *err)
{
    int rc = 0;
    c2c_runtime *rt = x->rt;
    const unsigned long long W = x->d.window, lo_t = k * W, hi_t = lo_t + W < x->d.total ? lo_t + W : x->d.total;
    const uint32_t slot = (uint32_t)(k & 1u);
    c2_hit *hh = (c2_hit *)rt->host[RT_H_HITS].p;
    uint32_t *hk = (uint32_t *)rt->host[RT_H_KEYS].p, *order = (uint32_t *)rt->host[RT_H_SORT].p;
    uint32_t nh = 0;
    C2C_CHECK(cudaMemcpyAsync(hk, &x->d.nhits[slot], sizeof nh, cudaMemcpyDeviceToHost, rt->cs), "reading hits");
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "reading hits");
    nh = hk[0];
    if (nh > hi_t - lo_t) {
        rt_break(rt, "cuda runtime: a window has more hits than photons");
        return c2i_fail(err, C2_EIO, "%s", rt->broken);
    }
    if (nh) {
        C2C_CHECK(cudaMemcpyAsync(hk, x->d.keys + (size_t)slot * W, nh * sizeof(uint32_t), cudaMemcpyDeviceToHost,
                                  rt->cs),
                  "copying hits");
        C2C_CHECK(cudaMemcpyAsync(hh, x->d.hits + (size_t)slot * W, nh * sizeof(c2_hit), cudaMemcpyDeviceToHost,
                                  rt->cs),
                  "copying hits");
    }
    if (x->any_ends) {
        C2C_CHECK(cudaMemcpyAsync(rt->host[RT_H_ENDS].p, x->d.ends + (size_t)slot * W,
                                  (hi_t - lo_t) * sizeof(c2_photon), cudaMemcpyDeviceToHost, rt->cs),
                  "copying end states");
    }
    /* the slot is free once these are out: reset its counters in stream order */
    if (rt->write32(rt->cs, (CUdeviceptr)&x->d.nhits[slot], 0, 0) != CUDA_SUCCESS ||
        rt->write32(rt->cs, (CUdeviceptr)&x->d.wdone[slot], 0, 0) != CUDA_SUCCESS) {
        return c2i_fail(err, C2_EIO, "cuda: resetting a window's counters failed");
    }
    C2C_CHECK(cudaStreamSynchronize(rt->cs), "draining a window");
    c2i_radix_order(hk, nh, order, order + nh);
    {
        uint32_t e = c2k_find(x->first, x->n, lo_t);
        for (uint32_t i = 0; i < nh;) { /* runs of hits of one event, in ticket order */
            unsigned long long t = lo_t + hk[order[i]];
            while (x->first[e + 1] <= t) {
                e++;
            }
            c2_event_result *r = &x->res[e];
            uint32_t j = i;
            while (j < nh && lo_t + hk[order[j]] < x->first[e + 1]) {
                j++;
            }
            if (rt_reserve_hits(r, &x->hit_cap[e], j - i)) {
                return c2i_fail(err, C2_ENOMEM, "cuda runtime: out of host memory for hits");
            }
            for (; i < j; i++) {
                r->hits[r->nhits++] = hh[order[i]];
            }
        }
    }
    if (x->any_ends) {
        const c2_photon *he = (const c2_photon *)rt->host[RT_H_ENDS].p;
        for (uint32_t e = c2k_find(x->first, x->n, lo_t); e < x->n && x->first[e] < hi_t; e++) {
            if (!x->res[e].photons) {
                continue;
            }
            unsigned long long a = x->first[e] > lo_t ? x->first[e] : lo_t;
            unsigned long long b = x->first[e + 1] < hi_t ? x->first[e + 1] : hi_t;
            memcpy(x->res[e].photons + (a - x->first[e]), he + (a - lo_t), (b - a) * sizeof(c2_photon));
        }
    }
out:
    return rc;
}

/* Waits until window k is posted, ringing cancel doorbells meanwhile; the
 * watchdog aborts the kernel when no window finishes for too long. */
static int rt_wait_window(rt_run *x, unsigned long long k, c2_error *err)
{
    c2c_runtime *rt = x->rt;
    const double watchdog = rt->params.watchdog_s > 0 ? rt->params.watchdog_s : 300.0;
    const double t_end = c2c_now() + watchdog;
    cuda::atomic_ref<unsigned long long, cuda::thread_scope_system> posted(x->posted[k & 1u]);
    for (unsigned spins = 0;; spins++) {
        if (posted.load(cuda::memory_order_acquire) == k + 1) {
            return 0;
        }
        int rc = rt_poll_cancels(x, err);
        if (rc) {
            return rc;
        }
        cudaError_t q = cudaEventQuery(rt->k1);
        if (q != cudaErrorNotReady) { /* the kernel ended without posting it */
            if (posted.load(cuda::memory_order_acquire) == k + 1) {
                return 0;
            }
            char why[200];
            snprintf(why, sizeof why, "cuda runtime: the kernel ended before window %llu was finished: %s",
                     (unsigned long long)k, q == cudaSuccess ? "photons lost" : cudaGetErrorString(q));
            rt_break(rt, why);
            return c2i_fail(err, C2_EIO, "%s", why);
        }
        if (c2c_now() > t_end) {
            char why[200];
            snprintf(why, sizeof why, "cuda runtime: no window finished for %.0f s (window %llu); kernel aborted",
                     watchdog, (unsigned long long)k);
            rt->write64(rt->ds, (CUdeviceptr)x->d.abort, 1, 0);
            double t_give_up = c2c_now() + 5.0;
            while (cudaEventQuery(rt->k1) == cudaErrorNotReady && c2c_now() < t_give_up) {
                struct timespec nap = {0, 1000000};
                nanosleep(&nap, NULL);
            }
            rt_break(rt, why);
            return c2i_fail(err, C2_EIO, "%s", why);
        }
        if (spins > 64) { /* spin briefly: windows often finish within microseconds */
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

/* Runs the wavefront mode: whole batch in one window; launch after launch
 * until no photon is left. */
static int rt_wavefront(rt_run *x, c2_error *err)
{
    int rc = 0;
    c2c_runtime *rt = x->rt;
    const uint64_t total = x->d.total;
    c2_photon *a = (c2_photon *)rt->dev[RT_D_WAVE].p, *b = a + total;
    uint32_t *count = (uint32_t *)rt->host[RT_H_KEYS].p; /* pinned scratch */
    uint32_t *dcount = (uint32_t *)((char *)rt->dev[RT_D_CTL].p + 64 * sizeof(unsigned long long));
    C2C_CHECK(cudaMemsetAsync(dcount, 0, sizeof(uint32_t), rt->ks), "wavefront");
    rt_wave_make<<<(unsigned)((total + RT_BLOCK - 1) / RT_BLOCK), RT_BLOCK, 0, rt->ks>>>(x->d, a, dcount);
    C2C_CHECK(cudaGetLastError(), "wavefront: making photons");
    for (;;) {
        C2C_CHECK(cudaMemcpyAsync(count, dcount, sizeof(uint32_t), cudaMemcpyDeviceToHost, rt->ks), "wavefront");
        C2C_CHECK(cudaMemsetAsync(dcount, 0, sizeof(uint32_t), rt->ks), "wavefront");
        C2C_CHECK(cudaStreamSynchronize(rt->ks), "wavefront step");
        uint32_t n = *count;
        if (!n) {
            break;
        }
        if ((rc = rt_poll_cancels(x, err))) {
            goto out;
        }
        rt_wave_step<<<(n + RT_BLOCK - 1) / RT_BLOCK, RT_BLOCK, 0, rt->ks>>>(x->d, a, n, b, dcount);
        C2C_CHECK(cudaGetLastError(), "wavefront: stepping");
        c2_photon *t = a;
        a = b;
        b = t;
    }
out:
    return rc;
}

extern "C" int c2c_runtime_run(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *events, uint32_t n,
                               c2_event_result *results, c2c_run_stats *stats, c2_error *err)
{
    int rc = 0, launched = 0;
    const double t_call = c2c_now();
    double t_results = 0;
    c2c_batch b;
    rt_run x;
    memset(&x, 0, sizeof x);
    if (rt->broken[0]) {
        return c2i_fail(err, C2_EIO, "%s", rt->broken);
    }
    if (n && !results) {
        return c2i_fail(err, C2_EINVAL, "results is NULL");
    }
    if ((rc = c2c_batch_plan(dg, events, n, &b, err))) {
        return rc;
    }
    x.rt = rt;
    x.events = events;
    x.n = n;
    x.res = results;
    if (n) {
        memset(results, 0, n * sizeof *results);
    }
    x.hit_cap = (uint32_t *)calloc(n ? n : 1, sizeof *x.hit_cap);
    x.cancelled = (int *)calloc(n ? n : 1, sizeof *x.cancelled);
    if (!x.hit_cap || !x.cancelled) {
        rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t e = 0; e < n; e++) {
        x.any_ends |= (events[e].want & C2_RETURN_PHOTONS) != 0;
    }
    {
        /* window: as many photons as fit twice in the pool */
        const size_t per = rt_slot_bytes(x.any_ends);
        uint64_t W = rt->params.window ? rt->params.window : rt->pool_bytes / per;
        if (rt->params.wavefront) {
            if (b.total > (1ull << 31)) {
                rc = c2i_fail(err, C2_ELIMIT, "cuda runtime: wavefront mode runs batches of at most 2^31 photons, "
                                              "not %llu", (unsigned long long)b.total);
                goto out;
            }
            W = b.total; /* the baseline runs the batch in one piece */
        }
        W = W < b.total ? W : b.total;
        W = W ? W : 1;
        if (W > (1ull << 31)) {
            W = 1ull << 31; /* keys are 32-bit */
        }
        x.d.window = W;
        x.d.total = b.total;
        x.d.nevents = n;
        /* control words: next limit abort | wdone[2] nhits[2] ncompleted | wave counter at [64] */
        const size_t ctl_bytes = 80 * sizeof(unsigned long long) + (size_t)n * sizeof(unsigned long long);
        struct {
            rt_buf *buf;
            size_t size;
            int host;
        } need[] = {
            {&rt->dev[RT_D_BATCH], b.size, 0},
            {&rt->dev[RT_D_CTL], ctl_bytes, 0},
            {&rt->dev[RT_D_STAT], (n ? n : 1) * sizeof(rt_evstat), 0},
            {&rt->dev[RT_D_HITS], 2 * W * sizeof(c2_hit), 0},
            {&rt->dev[RT_D_KEYS], 2 * W * sizeof(uint32_t), 0},
            {&rt->dev[RT_D_ENDS], x.any_ends ? 2 * W * sizeof(c2_photon) : 0, 0},
            {&rt->dev[RT_D_WAVE], rt->params.wavefront ? 2 * b.total * sizeof(c2_photon) : 0, 0},
            {&rt->host[RT_H_BATCH], b.size, 1},
            {&rt->host[RT_H_HITS], W * sizeof(c2_hit), 1},
            {&rt->host[RT_H_KEYS], W * sizeof(uint32_t) + 64, 1},
            {&rt->host[RT_H_ENDS], x.any_ends ? W * sizeof(c2_photon) : 0, 1},
            {&rt->host[RT_H_MAPPED], 2 * sizeof(unsigned long long) + (size_t)(n ? n : 1) * sizeof(uint32_t), 1},
            {&rt->host[RT_H_SORT], (2 * W + 65537) * sizeof(uint32_t), 1},
        };
        for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
            if (need[i].size && rt_grow(need[i].buf, need[i].size, need[i].host) != cudaSuccess) {
                rc = c2i_fail(err, C2_ENOMEM,
                              "cuda runtime: cannot allocate %zu bytes of %s memory (batch of %u events, %llu "
                              "photons, window %llu)",
                              need[i].size, need[i].host ? "pinned host" : "device", n,
                              (unsigned long long)b.total, (unsigned long long)W);
                goto out;
            }
        }
        char *dbatch = (char *)rt->dev[RT_D_BATCH].p, *hbatch = (char *)rt->host[RT_H_BATCH].p;
        c2c_batch_fill(dg, &b, events, hbatch, dbatch);
        x.first = (const uint64_t *)(hbatch + b.off[C2C_B_FIRST]);
        x.d.g = *c2c_geometry_view(dg);
        x.d.events = (const c2k_event *)(dbatch + b.off[C2C_B_EVENTS]);
        x.d.first = (const uint64_t *)(dbatch + b.off[C2C_B_FIRST]);
        unsigned long long *ctl = (unsigned long long *)rt->dev[RT_D_CTL].p;
        x.d.next = ctl;
        x.d.limit = ctl + 1;
        x.d.abort = ctl + 2;
        x.d.wdone = (uint32_t *)(ctl + 3);
        x.d.nhits = (uint32_t *)(ctl + 4);
        x.d.ncompleted = (uint32_t *)(ctl + 5);
        x.d.cancel = ctl + 80;
        x.d.stat = (rt_evstat *)rt->dev[RT_D_STAT].p;
        x.d.hits = (c2_hit *)rt->dev[RT_D_HITS].p;
        x.d.keys = (uint32_t *)rt->dev[RT_D_KEYS].p;
        x.d.ends = x.any_ends ? (c2_photon *)rt->dev[RT_D_ENDS].p : NULL;
        /* mapped host words: the device writes them through these pointers */
        char *mapped = (char *)rt->host[RT_H_MAPPED].p;
        memset(mapped, 0xff, rt->host[RT_H_MAPPED].size);
        memset(mapped, 0, 2 * sizeof(unsigned long long));
        void *dmapped = NULL;
        C2C_CHECK(cudaHostGetDevicePointer(&dmapped, mapped, 0), "mapping host memory");
        x.d.win_posted = (unsigned long long *)dmapped;
        x.posted = (unsigned long long *)mapped;
        x.d.completed = (uint32_t *)((char *)dmapped + 2 * sizeof(unsigned long long));
        for (uint32_t e = 0; e < n; e++) {
            if ((events[e].want & C2_RETURN_PHOTONS) && x.first[e + 1] > x.first[e] &&
                !(results[e].photons = (c2_photon *)malloc((x.first[e + 1] - x.first[e]) * sizeof(c2_photon)))) {
                rc = c2i_fail(err, C2_ENOMEM, "out of memory for end states");
                goto out;
            }
        }
        /* stage the batch; release the first two windows with it */
        const unsigned long long limit0 = 2 * W < b.total ? 2 * W : b.total;
        /* a doorbell of the last run may still be on its way: it must land
         * before the control words are cleared, not in this run */
        C2C_CHECK(cudaStreamSynchronize(rt->ds), "finishing doorbells");
        C2C_CHECK(cudaStreamSynchronize(rt->cs), "finishing doorbells");
        C2C_CHECK(cudaMemsetAsync(ctl, 0, ctl_bytes, rt->ks), "staging");
        C2C_CHECK(cudaMemsetAsync(x.d.stat, 0, (n ? n : 1) * sizeof(rt_evstat), rt->ks), "staging");
        C2C_CHECK(cudaMemcpyAsync(x.d.limit, &limit0, sizeof limit0, cudaMemcpyHostToDevice, rt->ks), "staging");
        C2C_CHECK(cudaMemcpyAsync(dbatch, hbatch, b.size, cudaMemcpyHostToDevice, rt->ks), "staging");
        C2C_CHECK(cudaStreamSynchronize(rt->ks), "staging the batch"); /* limit0 is on this stack frame */
    }
    {
        const unsigned long long W = x.d.window, nwin = b.total ? (b.total + W - 1) / W : 0;
        uint32_t warps = 0;
        C2C_CHECK(cudaEventRecord(rt->k0, rt->ks), "timing");
        launched = 1;
        if (++rt->runs == rt->params.fault_run) {
            rt_fault<<<1, 1, 0, rt->ks>>>(x.d.next);
            C2C_CHECK(cudaStreamSynchronize(rt->ks), "running the kernel");
        }
        if (b.total && rt->params.wavefront) {
            C2C_CHECK(cudaEventRecord(rt->k1, rt->ks), "timing"); /* recorded again at the end */
            if ((rc = rt_wavefront(&x, err))) {
                goto out;
            }
        } else if (b.total) {
            uint32_t per_sm = rt->params.warps_per_sm ? rt->params.warps_per_sm : 64; /* as many as fit */
            uint32_t blocks_per_sm = (per_sm + RT_BLOCK / 32 - 1) / (RT_BLOCK / 32);
            blocks_per_sm = blocks_per_sm < (uint32_t)rt->per_sm ? blocks_per_sm : (uint32_t)rt->per_sm;
            uint32_t blocks = blocks_per_sm * (uint32_t)rt->sms;
            warps = blocks * (RT_BLOCK / 32);
            void *args[] = {&x.d};
            /* cooperative: all blocks resident at once, as sized. The kernel
             * does not need it (a block not yet running holds no tickets), so
             * where other work holds SMs (MPS) an ordinary launch serves */
            cudaError_t le = cudaLaunchCooperativeKernel((void *)rt_persistent, blocks, RT_BLOCK, args, 0, rt->ks);
            if (le == cudaErrorCooperativeLaunchTooLarge) {
                cudaGetLastError(); /* not sticky */
                rt_persistent<<<blocks, RT_BLOCK, 0, rt->ks>>>(x.d);
                le = cudaGetLastError();
            }
            C2C_CHECK(le, "launching the persistent kernel");
        }
        C2C_CHECK(cudaEventRecord(rt->k1, rt->ks), "timing");
        for (unsigned long long k = 0; k < nwin; k++) {
            if ((rc = rt_wait_window(&x, k, err))) {
                goto out;
            }
            double t_drain = c2c_now();
            if ((rc = rt_drain(&x, k, err))) {
                goto out;
            }
            x.host_seconds += c2c_now() - t_drain;
            unsigned long long lim = (k + 3) * W < b.total ? (k + 3) * W : b.total;
            if (k + 2 < nwin && rt->write64(rt->cs, (CUdeviceptr)x.d.limit, lim, 0) != CUDA_SUCCESS) {
                rc = c2i_fail(err, C2_EIO, "cuda: ringing the feed doorbell failed");
                goto out;
            }
        }
        C2C_CHECK(cudaEventSynchronize(rt->k1), "running the kernel");
        if (stats) {
            float ms = 0;
            C2C_CHECK(cudaEventElapsedTime(&ms, rt->k0, rt->k1), "timing");
            stats->kernel_seconds = 1e-3 * ms;
            stats->photons = b.total;
            stats->window = W;
            stats->windows = (uint32_t)nwin;
            stats->warps = warps;
        }
    }
    t_results = c2c_now();
    {
        /* counters, and the completion queue's check: each event once, every photon counted */
        rt_evstat *st = (rt_evstat *)malloc((n ? n : 1) * sizeof *st);
        if (!st) {
            rc = c2i_fail(err, C2_ENOMEM, "out of memory");
            goto out;
        }
        cudaError_t ce = cudaMemcpy(st, x.d.stat, n * sizeof *st, cudaMemcpyDeviceToHost);
        if (ce != cudaSuccess) {
            free(st);
            C2C_CHECK(ce, "reading the counters");
        }
        const uint32_t *completed = (const uint32_t *)((char *)rt->host[RT_H_MAPPED].p + 2 * sizeof(unsigned long long));
        uint32_t ndone = 0;
        unsigned char *seen = (unsigned char *)calloc(n ? n : 1, 1);
        if (!seen) {
            free(st);
            rc = c2i_fail(err, C2_ENOMEM, "out of memory");
            goto out;
        }
        for (uint32_t s = 0; s < n && completed[s] != UINT32_MAX; s++) {
            uint32_t e = completed[s];
            ndone += e < n && x.first[e + 1] > x.first[e] && !seen[e]++;
        }
        free(seen);
        uint32_t nonempty = 0;
        for (uint32_t e = 0; e < n; e++) {
            nonempty += x.first[e + 1] > x.first[e];
            c2_event_result *r = &results[e];
            if (st[e].done != x.first[e + 1] - x.first[e]) {
                char why[200];
                snprintf(why, sizeof why, "cuda runtime: event %u finished %u of %llu photons", e, st[e].done,
                         (unsigned long long)(x.first[e + 1] - x.first[e]));
                free(st);
                rt_break(rt, why);
                rc = c2i_fail(err, C2_EIO, "%s", why);
                goto out;
            }
            r->ntotal = (uint32_t)(x.first[e + 1] - x.first[e]);
            r->nphotons = r->photons ? r->ntotal : 0;
            r->steps = st[e].steps;
            r->nreemit = st[e].reemit;
            r->nmaxsteps = st[e].maxsteps;
            r->nnan = st[e].nan;
            if ((events[e].want & C2_RETURN_CHANNELS) && c2i_result_channels(r, &events[e])) {
                free(st);
                rc = c2i_fail(err, C2_ENOMEM, "out of memory");
                goto out;
            }
            if (!(events[e].want & C2_RETURN_HITS)) {
                free(r->hits);
                r->hits = NULL;
                r->nhits = 0;
            }
        }
        free(st);
        if (ndone != nonempty) {
            rt_break(rt, "cuda runtime: the completion queue lost events");
            rc = c2i_fail(err, C2_EIO, "cuda runtime: %u of %u events reached the completion queue", ndone,
                          nonempty);
            goto out;
        }
    }
out:
    if (rc && launched && cudaEventQuery(rt->k1) == cudaErrorNotReady) {
        /* the kernel may wait for windows that will not come: send it away */
        rt->write64(rt->ds, (CUdeviceptr)x.d.abort, 1, 0);
        const double t_give_up = c2c_now() + 5.0;
        while (cudaEventQuery(rt->k1) == cudaErrorNotReady && c2c_now() < t_give_up) {
            struct timespec nap = {0, 1000000};
            nanosleep(&nap, NULL);
        }
        if (cudaEventQuery(rt->k1) == cudaErrorNotReady) {
            rt_break(rt, "cuda runtime: the persistent kernel did not stop when told to");
        }
    }
    if (rc == C2_EIO) { /* a CUDA call failed: sticky or not, the device is no longer trusted */
        rt_break(rt, err ? err->msg : "cuda runtime: a CUDA call failed");
    }
    if (rc) {
        for (uint32_t e = 0; e < n; e++) {
            c2_event_result_free(&results[e]);
        }
    }
    if (stats) {
        stats->seconds = c2c_now() - t_call;
        stats->host_seconds = x.host_seconds + (rc ? 0.0 : c2c_now() - t_results);
    }
    free(x.hit_cap);
    free(x.cancelled);
    return rc;
}

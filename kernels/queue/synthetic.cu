/*
 * synthetic.cu: the synthetic workload of queue_int.h run three ways, with
 * the checks that make it the queues' gating test and the benchmark that
 * compares the ways (tools/bench_gpu.c).
 *
 * An item is a float; a step reads a table entry at a pseudo-random place
 * (latency, as a photon step reading the geometry) and does FLOPS of
 * arithmetic with it. An item lives
 * syn_life(id) steps (uniform or geometric) and may spawn one child (id n + parent) when it ends,
 * so every way does exactly the same work and the host can compute every
 * item's final value bit for bit (fmaf is exact on both sides).
 *
 * Memory: every buffer is allocated before the kernels start and freed
 * after they end: cudaMalloc may wait for a running kernel, and the
 * persistent kernel runs until the host closes its feed.
 */
#include <cuda.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cuda/cuda_int.h"
#include "queue_int.h"
#include "ring.cuh"

#define SYN_MAX_LIFE 39u
#define SYN_BLOCK 256
#define SYN_REFILL 4u           /* a warp refills when at least this many lanes are empty */
#define SYN_STEPS_PER_CHECK 4u  /* steps between refill checks */

__host__ __device__ static inline uint32_t syn_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}
/* An item's lifetime: uniform 1..39, or (geo given) geometric with mean
 * 20, as photon histories are (absorption and scattering are memoryless),
 * drawn from a table of its 1024 quantiles so that host and device agree
 * bit for bit. */
#define SYN_GEO_TABLE 1024u
__host__ __device__ static inline uint32_t syn_life(const uint8_t *geo, uint32_t id)
{
    const uint32_t h = syn_hash(id);
    return geo ? geo[h & (SYN_GEO_TABLE - 1)] : 1u + h % SYN_MAX_LIFE;
}
static void syn_geo_fill(uint8_t *t)
{
    for (uint32_t i = 0; i < SYN_GEO_TABLE; i++) { /* 1 + floor(X), X exponential with P(X >= k) = 0.95^k */
        t[i] = (uint8_t)(1.0 + floor(log1p(-(i + 0.5) / SYN_GEO_TABLE) / log(0.95)));
    }
}
__host__ __device__ static inline float syn_x0(uint32_t id)
{
    return (float)(syn_hash(id ^ 0x9e3779b9u) & 0xffffu) * (1.0f / 65536.0f);
}
__host__ __device__ static inline bool syn_spawns(uint32_t id, uint32_t n, uint32_t every)
{
    return every && id < n && id % every == 0;
}
/* The lookup table every step reads at a pseudo-random place, as a photon
 * step reads the geometry: latency, not just arithmetic. */
#define SYN_TABLE (1u << 18)
__host__ __device__ static inline float syn_table_value(uint32_t i) { return 0.99f + (float)(syn_hash(i) & 1023u) * 1e-5f; }

/* A step: a table read, then FLOPS of arithmetic. Up to 64 flops it is
 * one dependent chain of fmaf (latency-bound, like the read); from 256 it
 * is four independent chains, averaged, that keep the FMA pipes busy: a
 * compute-bound step, where a lane without work wastes issue slots. */
template <int FLOPS> __host__ __device__ static inline float syn_step(const float *table, uint32_t id, uint32_t step, float x)
{
    constexpr int CH = FLOPS >= 256 ? 4 : 1;
    const float a = table[syn_hash(id * 64u + step) & (SYN_TABLE - 1)];
    /* distinct starts, so that no compiler merges the chains; constants, so
     * each is one rounded add on host and device (a product could be
     * contracted into an fma on one side only) */
    const float start[4] = {0.0f, 0.001f, 0.002f, 0.003f};
    float c[CH];
    for (int k = 0; k < CH; k++) {
        c[k] = x + start[k];
    }
    for (int i = 0; i < FLOPS / 2 / CH; i++) {
        for (int k = 0; k < CH; k++) {
            c[k] = fmaf(c[k], a, 0.0007f);
        }
    }
    if (CH == 1) {
        return c[0];
    }
    return (c[0] + c[1] + c[2 % CH] + c[3 % CH]) * 0.25f;
}

/* What every way writes when an item ends. */
struct syn_out {
    const float *table; /* SYN_TABLE values */
    const uint8_t *geo; /* geometric lifetimes' table, or NULL: uniform */
    float *x;
    uint32_t *steps;
    uint32_t *ends; /* times the item ended: 1 when right */
};

__device__ static inline void syn_end(const syn_out &o, uint32_t id, float x, uint32_t steps)
{
    o.x[id] = x;
    o.steps[id] = steps;
    atomicAdd(&o.ends[id], 1u);
}

/* ---- per-thread loop ---- */

template <int FLOPS> __global__ void syn_loop(syn_out o, uint32_t n, uint32_t every)
{
    uint32_t id = blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= n) {
        return;
    }
    for (;;) {
        float x = syn_x0(id);
        uint32_t life = syn_life(o.geo, id);
        for (uint32_t s = 0; s < life; s++) {
            x = syn_step<FLOPS>(o.table, id, s, x);
        }
        syn_end(o, id, x, life);
        if (!syn_spawns(id, n, every)) {
            return;
        }
        id += n;
    }
}

/* ---- wavefront: one step per launch ---- */

struct syn_wave {
    const uint32_t *id;
    const float *x;
    const uint32_t *steps;
    uint32_t *nid;
    float *nx;
    uint32_t *nsteps;
    uint32_t *ncount;
};

__global__ void syn_wave_init(syn_wave w, uint32_t n)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        w.nid[i] = i;
        w.nx[i] = syn_x0(i);
        w.nsteps[i] = 0;
    }
}

template <int FLOPS> __global__ void syn_wave_step(syn_wave w, uint32_t count, syn_out o, uint32_t n, uint32_t every)
{
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) {
        return;
    }
    uint32_t id = w.id[i], steps = w.steps[i] + 1;
    float x = syn_step<FLOPS>(o.table, id, steps - 1, w.x[i]);
    bool ended = steps == syn_life(o.geo, id);
    if (ended) {
        syn_end(o, id, x, steps);
    }
    bool child = ended && syn_spawns(id, n, every);
    bool keep = !ended || child;
    if (child) {
        id += n;
        x = syn_x0(id);
        steps = 0;
    }
    uint32_t slot = c2q_append_slot(__activemask(), keep, w.ncount);
    if (keep) {
        w.nid[slot] = id;
        w.nx[slot] = x;
        w.nsteps[slot] = steps;
    }
}

/* ---- persistent ---- */

struct syn_dev {
    c2q_ring active, spawn;
    const uint32_t *staging;     /* input ids, copied in by the host */
    unsigned long long *avail;   /* doorbell, host-written: ids staged so far */
    unsigned long long *closed;  /* doorbell, host-written: 1 when no more input comes */
    unsigned long long *next;    /* staged positions reserved by warps (may pass avail) */
    unsigned long long *taken;   /* staged ids taken into lanes */
    unsigned long long *live;    /* admitted and not ended: in lanes or in rings */
    float *px;                   /* the pool: state of items pushed back, by id */
    uint32_t *pleft, *psteps;
    unsigned long long *ops;     /* [0] pushes, [1] pops */
    syn_out o;
    uint32_t n, every, yield;
};

typedef cuda::atomic_ref<unsigned long long, cuda::thread_scope_device> syn_u64_ref;

/* Per-warp state of the input feed and of the warp's share of the global
 * counters, held by lane 0. The global counters are shared by thousands
 * of warps, and one word updated by all of them serialises them: a warp
 * adds its claims and ends to them only when it goes idle, and reserves
 * input SYN_CLAIM positions at a time. */
#define SYN_CLAIM 128u
struct syn_warp {
    unsigned long long pend_lo, pend_hi; /* reserved staged positions not yet taken */
    unsigned long long end;              /* avail as last read */
    long long claimed, finished;         /* not yet added to taken and live */
};

/* Takes up to k staged ids for the warp: positions from its reserved range
 * as far as the host has staged them, reserving a new range (one
 * fetch-and-add on next, which may run past avail: such a range is kept
 * until the host stages that far, or dropped once the input is closed).
 * Returns the count; *first is the first position. */
__device__ static inline int syn_claim_input(const syn_dev &d, int k, syn_warp &w, unsigned long long *first)
{
    int got = 0;
    unsigned long long at = 0;
    if (c2q_lane() == 0) {
        syn_u64_ref avail(*d.avail), closed(*d.closed), next(*d.next);
        /* read the doorbells when the warp has no staged position left: a
         * stale end would keep it from reserving more */
        if (w.pend_lo >= w.end || w.pend_lo == w.pend_hi) {
            int done = closed.load(cuda::memory_order_acquire) != 0; /* before avail: then avail is final */
            w.end = avail.load(cuda::memory_order_acquire);
            if (done && w.pend_lo >= w.end) {
                w.pend_lo = w.pend_hi; /* past the end of the input */
            }
        }
        if (w.pend_lo == w.pend_hi && next.load(cuda::memory_order_relaxed) < w.end) {
            w.pend_lo = atomicAdd(d.next, (unsigned long long)SYN_CLAIM);
            w.pend_hi = w.pend_lo + SYN_CLAIM;
        }
        if (w.pend_lo < w.end) {
            unsigned long long take = min(min(w.pend_hi, w.end) - w.pend_lo, (unsigned long long)k);
            at = w.pend_lo;
            w.pend_lo += take;
            w.claimed += (long long)take;
            got = (int)take;
        }
    }
    *first = __shfl_sync(C2Q_FULL_MASK, at, 0);
    return __shfl_sync(C2Q_FULL_MASK, got, 0);
}

/* An idle warp adds its share to the global counters (live before taken,
 * so whoever sees every staged item taken sees them live) and says whether
 * the run is over: input closed, all of it taken, nothing live. */
__device__ static inline bool syn_idle_done(const syn_dev &d, syn_warp &w)
{
    int stop = 0;
    if (c2q_lane() == 0) {
        syn_u64_ref closed(*d.closed), avail(*d.avail), taken(*d.taken), live(*d.live);
        if (w.claimed || w.finished) {
            live.fetch_add((unsigned long long)(w.claimed - w.finished), cuda::memory_order_relaxed);
            taken.fetch_add((unsigned long long)w.claimed, cuda::memory_order_release);
            w.claimed = w.finished = 0;
        }
        stop = closed.load(cuda::memory_order_acquire) &&
               taken.load(cuda::memory_order_acquire) == avail.load(cuda::memory_order_relaxed) &&
               live.load(cuda::memory_order_relaxed) == 0;
    }
    return __shfl_sync(C2Q_FULL_MASK, stop, 0) != 0;
}

template <int FLOPS> __global__ void __launch_bounds__(SYN_BLOCK) syn_persistent(syn_dev d)
{
    bool has = false;
    uint32_t id = 0, left = 0, steps = 0, since = 0;
    float x = 0.0f;
    unsigned nap = 32;
    unsigned long long pushes = 0, pops = 0;
    syn_warp w = {0, 0, 0, 0, 0};
    const bool via_rings = d.yield != 0;
    for (;;) {
        if (__popc(__ballot_sync(C2Q_FULL_MASK, !has)) >= (int)SYN_REFILL) {
            uint32_t it;
            if (via_rings) { /* pushed-back items first (they are oldest), then children */
                if (c2q_pop(d.active, !has, &it)) {
                    id = it;
                    x = __ldcg(&d.px[id]);
                    left = __ldcg(&d.pleft[id]);
                    steps = __ldcg(&d.psteps[id]);
                    has = true;
                    since = 0;
                    pops++;
                }
                if (c2q_pop(d.spawn, !has, &it)) {
                    id = it;
                    x = syn_x0(id);
                    left = syn_life(d.o.geo, id);
                    steps = 0;
                    has = true;
                    since = 0;
                    pops++;
                }
            }
            unsigned want = __ballot_sync(C2Q_FULL_MASK, !has);
            if (want) { /* then new input */
                unsigned long long first;
                int k = syn_claim_input(d, __popc(want), w, &first);
                int rank = __popc(want & c2q_lanes_below());
                if (!has && rank < k) {
                    id = __ldcg(&d.staging[first + (unsigned long long)rank]);
                    x = syn_x0(id);
                    left = syn_life(d.o.geo, id);
                    steps = 0;
                    has = true;
                    since = 0;
                }
            }
        }
        if (!__ballot_sync(C2Q_FULL_MASK, has)) { /* idle: the end, or wait for work */
            if (syn_idle_done(d, w)) {
                break;
            }
            __nanosleep(nap);
            nap = min(nap * 2, 4096u);
            continue;
        }
        nap = 32;
#pragma unroll 1
        for (uint32_t k = 0; k < SYN_STEPS_PER_CHECK; k++) {
            if (has && left) {
                x = syn_step<FLOPS>(d.o.table, id, steps, x);
                left--;
                steps++;
                since++;
            }
        }
        bool ended = has && left == 0;
        if (ended) {
            syn_end(d.o, id, x, steps);
        }
        bool child = ended && syn_spawns(id, d.n, d.every);
        if (via_rings) { /* the child goes through the spawn ring, taking its parent's place in live */
            pushes += c2q_push(d.spawn, child, d.n + id) ? child : 0;
        } else if (child) { /* it starts in its parent's lane */
            id += d.n;
            x = syn_x0(id);
            left = syn_life(d.o.geo, id);
            steps = 0;
            ended = false;
        }
        unsigned fin = __ballot_sync(C2Q_FULL_MASK, ended && !child);
        if (c2q_lane() == 0) {
            w.finished += __popc(fin);
        }
        bool yield = has && !ended && via_rings && since >= d.yield;
        if (yield) { /* the state goes to the pool before the push publishes it */
            __stcg(&d.px[id], x);
            __stcg(&d.pleft[id], left);
            __stcg(&d.psteps[id], steps);
        }
        if (via_rings) {
            pushes += c2q_push(d.active, yield, id) ? yield : 0;
        }
        if (ended || yield) {
            has = false;
        }
    }
    atomicAdd(&d.ops[0], pushes);
    atomicAdd(&d.ops[1], pops);
}

/* ---- host ---- */


static uint32_t syn_log2_ceil(uint64_t v)
{
    uint32_t l = 0;
    while ((1ull << l) < v) {
        l++;
    }
    return l;
}

/* A zeroed device buffer, remembered in buf[] for freeing. */
static cudaError_t syn_alloc(void **ptr, size_t bytes, void **buf, int *nbuf)
{
    cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 4);
    if (e == cudaSuccess) {
        buf[(*nbuf)++] = *ptr;
        e = cudaMemset(*ptr, 0, bytes ? bytes : 4);
    }
    return e;
}

/* Checks every item against the host's arithmetic. */
template <int FLOPS>
static void syn_verify(const c2q_synth_params *p, const float *table, const uint8_t *geo, const float *x,
                       const uint32_t *steps, const uint32_t *ends, c2q_synth_result *r)
{
    uint32_t n = p->nitems;
    for (uint64_t id = 0; id < 2ull * n; id++) {
        bool exists = id < n || syn_spawns((uint32_t)(id - n), n, p->spawn_every);
        if (!exists) {
            r->duplicated += ends[id] != 0; /* ended without existing: counted as a duplicate */
            continue;
        }
        uint32_t life = syn_life(geo, (uint32_t)id);
        r->expected_items++;
        r->expected_steps += life;
        if (ends[id] == 0) {
            r->lost++;
            continue;
        }
        r->items += ends[id];
        r->steps += steps[id];
        r->duplicated += ends[id] > 1;
        float v = syn_x0((uint32_t)id);
        for (uint32_t s = 0; p->check_values && s < life; s++) {
            v = syn_step<FLOPS>(table, (uint32_t)id, s, v);
        }
        r->wrong += steps[id] != life || (p->check_values && memcmp(&v, &x[id], sizeof v) != 0);
    }
}

template <int FLOPS> static int syn_run(const c2q_synth_params *p, c2q_synth_result *r, c2_error *err)
{
    int rc = 0;
    const uint32_t n = p->nitems;
    const size_t n2 = 2 * (size_t)n;
    const double watchdog = p->watchdog_s > 0 ? p->watchdog_s : 60.0;
    void *buf[24] = {0};
    int nbuf = 0;
    uint32_t *host_ids = NULL;
    float *htable = NULL;
    uint8_t hgeo[SYN_GEO_TABLE];
    float *hx = (float *)malloc(n2 * sizeof(float));
    uint32_t *hsteps = (uint32_t *)malloc(n2 * sizeof(uint32_t)), *hends = (uint32_t *)malloc(n2 * sizeof(uint32_t));
    cudaStream_t ks = NULL, fs = NULL, ws = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    syn_out o;
    unsigned long long counters[8] = {0}; /* avail closed next live ops[2] */
    unsigned long long *dc = NULL;
#define SYN_ALLOC(ptr, bytes) C2C_CHECK(syn_alloc((void **)&(ptr), (bytes), buf, &nbuf), "cudaMalloc")
    if (!hx || !hsteps || !hends) {
        rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        goto out;
    }
    if (n == 0 || n > (1u << 30) || (p->mode != C2Q_PERSISTENT && p->mode != C2Q_WAVEFRONT && p->mode != C2Q_LOOP)) {
        rc = c2i_fail(err, C2_EINVAL, "synthetic run: nitems %u (1..2^30) or mode %d", n, (int)p->mode);
        goto out;
    }
    htable = (float *)malloc(SYN_TABLE * sizeof(float));
    if (!htable) {
        rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < SYN_TABLE; i++) {
        htable[i] = syn_table_value(i);
    }
    syn_geo_fill(hgeo);
    {
        float *dtable;
        uint8_t *dgeo;
        SYN_ALLOC(dtable, SYN_TABLE * sizeof(float));
        SYN_ALLOC(dgeo, sizeof hgeo);
        C2C_CHECK(cudaMemcpy(dtable, htable, SYN_TABLE * sizeof(float), cudaMemcpyHostToDevice), "table");
        C2C_CHECK(cudaMemcpy(dgeo, hgeo, sizeof hgeo, cudaMemcpyHostToDevice), "table");
        o.table = dtable;
        o.geo = p->geometric ? dgeo : NULL;
    }
    SYN_ALLOC(o.x, n2 * sizeof(float));
    SYN_ALLOC(o.steps, n2 * sizeof(uint32_t));
    SYN_ALLOC(o.ends, n2 * sizeof(uint32_t));
    C2C_CHECK(cudaStreamCreateWithFlags(&ks, cudaStreamNonBlocking), "stream");
    C2C_CHECK(cudaStreamCreateWithFlags(&fs, cudaStreamNonBlocking), "stream");
    C2C_CHECK(cudaStreamCreateWithFlags(&ws, cudaStreamNonBlocking), "stream");
    C2C_CHECK(cudaEventCreate(&e0), "event");
    C2C_CHECK(cudaEventCreate(&e1), "event");
    C2C_CHECK(cudaDeviceSynchronize(), "memset");

    if (p->mode == C2Q_LOOP) {
        C2C_CHECK(cudaEventRecord(e0, ks), "event");
        syn_loop<FLOPS><<<(n + SYN_BLOCK - 1) / SYN_BLOCK, SYN_BLOCK, 0, ks>>>(o, n, p->spawn_every);
        C2C_CHECK(cudaGetLastError(), "launch");
        C2C_CHECK(cudaEventRecord(e1, ks), "event");
    } else if (p->mode == C2Q_WAVEFRONT) {
        syn_wave a, b;
        uint32_t *counts; /* two counters, one per buffer */
        SYN_ALLOC(a.nid, n * sizeof(uint32_t));
        SYN_ALLOC(a.nx, n * sizeof(float));
        SYN_ALLOC(a.nsteps, n * sizeof(uint32_t));
        SYN_ALLOC(b.nid, n * sizeof(uint32_t));
        SYN_ALLOC(b.nx, n * sizeof(float));
        SYN_ALLOC(b.nsteps, n * sizeof(uint32_t));
        SYN_ALLOC(counts, 2 * sizeof(uint32_t));
        a.id = b.nid, a.x = b.nx, a.steps = b.nsteps, a.ncount = counts + 1; /* a reads b's, writes its own */
        b.id = a.nid, b.x = a.nx, b.steps = a.nsteps, b.ncount = counts;
        C2C_CHECK(cudaEventRecord(e0, ks), "event");
        syn_wave_init<<<(n + SYN_BLOCK - 1) / SYN_BLOCK, SYN_BLOCK, 0, ks>>>(b, n); /* fills b.n* = a's input */
        uint32_t count = n;
        for (int launch = 0; count; launch++) {
            syn_wave &w = (launch & 1) ? b : a;
            C2C_CHECK(cudaMemsetAsync(w.ncount, 0, sizeof(uint32_t), ks), "memset");
            syn_wave_step<FLOPS><<<(count + SYN_BLOCK - 1) / SYN_BLOCK, SYN_BLOCK, 0, ks>>>(w, count, o, n,
                                                                                          p->spawn_every);
            C2C_CHECK(cudaGetLastError(), "launch");
            C2C_CHECK(cudaMemcpyAsync(&count, w.ncount, sizeof count, cudaMemcpyDeviceToHost, ks), "count");
            C2C_CHECK(cudaStreamSynchronize(ks), "wavefront step");
        }
        C2C_CHECK(cudaEventRecord(e1, ks), "event");
    } else {
        int dev, sms, per_sm;
        C2C_CHECK(cudaGetDevice(&dev), "device");
        C2C_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "attribute");
        C2C_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, syn_persistent<FLOPS>, SYN_BLOCK, 0),
                  "occupancy");
        /* 16 warps per SM by default: more only contend for the shared
         * words (H200, 2^22 items: 48 warps/SM 79, 16 104, 4 35 G steps/s) */
        uint32_t blocks = (uint32_t)(min(per_sm, 16 / (SYN_BLOCK / 32)) * sms);
        if (p->max_warps && p->max_warps < (uint32_t)(per_sm * sms) * (SYN_BLOCK / 32)) {
            blocks = (p->max_warps + SYN_BLOCK / 32 - 1) / (SYN_BLOCK / 32);
        }
        r->warps = blocks * (SYN_BLOCK / 32);
        uint32_t need = syn_log2_ceil(2ull * blocks * SYN_BLOCK); /* every lane's item, twice: see the rings */
        uint32_t l2 = p->log2cap ? p->log2cap : need;
        if (l2 < need || l2 > 30) {
            rc = c2i_fail(err, C2_EINVAL, "ring capacity 2^%u: needs 2^%u..2^30 for %u warps", l2, need, r->warps);
            goto out;
        }
        r->capacity = 1u << l2;
        syn_dev d;
        memset(&d, 0, sizeof d);
        c2q_ring *rings[2] = {&d.active, &d.spawn};
        for (int k = 0; k < 2; k++) {
            rings[k]->log2cap = l2;
            SYN_ALLOC(rings[k]->items, (size_t)r->capacity * sizeof(uint32_t));
            SYN_ALLOC(rings[k]->seq, (size_t)r->capacity * sizeof(unsigned long long));
        }
        SYN_ALLOC(dc, 16 * sizeof(unsigned long long));
        d.avail = dc, d.closed = dc + 1, d.next = dc + 2, d.live = dc + 3, d.ops = dc + 4, d.taken = dc + 12;
        d.active.head = dc + 6, d.active.tail = dc + 7, d.active.count = (int *)(dc + 8);
        d.spawn.head = dc + 9, d.spawn.tail = dc + 10, d.spawn.count = (int *)(dc + 11);
        uint32_t *staging;
        SYN_ALLOC(staging, n * sizeof(uint32_t));
        d.staging = staging;
        SYN_ALLOC(d.px, n2 * sizeof(float));
        SYN_ALLOC(d.pleft, n2 * sizeof(uint32_t));
        SYN_ALLOC(d.psteps, n2 * sizeof(uint32_t));
        d.o = o, d.n = n, d.every = p->spawn_every, d.yield = p->yield_steps;
        C2C_CHECK(cudaMallocHost((void **)&host_ids, n * sizeof(uint32_t)), "cudaMallocHost");
        for (uint32_t i = 0; i < n; i++) {
            host_ids[i] = i;
        }
        c2c_write64_fn write64 = c2c_driver_write64(err);
        if (!write64) {
            rc = C2_EIO;
            goto out;
        }
        if (!p->batch) { /* all the input staged before the launch: the kernel alone is timed */
            unsigned long long doors[2] = {n, 1};
            C2C_CHECK(cudaMemcpy(staging, host_ids, n * sizeof(uint32_t), cudaMemcpyHostToDevice), "stage");
            C2C_CHECK(cudaMemcpy(d.avail, doors, sizeof doors, cudaMemcpyHostToDevice), "doorbells");
        }
        C2C_CHECK(cudaDeviceSynchronize(), "setup");
        C2C_CHECK(cudaEventRecord(e0, ks), "event");
        void *args[] = {&d};
        C2C_CHECK(cudaLaunchCooperativeKernel((void *)syn_persistent<FLOPS>, blocks, SYN_BLOCK, args, 0, ks),
                  "cooperative launch");
        C2C_CHECK(cudaEventRecord(e1, ks), "event");
        /* feed the input while the kernel runs: copy a batch, then ring the
         * doorbell after it on the same stream */
        for (uint32_t off = 0, batch = p->batch; batch && off < n; off += batch) {
            uint32_t len = n - off < batch ? n - off : batch;
            C2C_CHECK(cudaMemcpyAsync(staging + off, host_ids + off, len * sizeof(uint32_t), cudaMemcpyHostToDevice,
                                      fs),
                      "feed");
            if (write64(fs, (CUdeviceptr)d.avail, off + len, 0) != CUDA_SUCCESS) {
                rc = c2i_fail(err, C2_EIO, "cuda: cuStreamWriteValue64 failed");
                goto out;
            }
        }
        if (p->batch && write64(fs, (CUdeviceptr)d.closed, 1, 0) != CUDA_SUCCESS) {
            rc = c2i_fail(err, C2_EIO, "cuda: cuStreamWriteValue64 failed");
            goto out;
        }
        /* the watchdog: a persistent kernel that never ends would eat the machine's time */
        double t_end = c2c_now() + watchdog;
        cudaError_t q1;
        while ((q1 = cudaEventQuery(e1)) == cudaErrorNotReady && c2c_now() < t_end) {
            struct timespec nap = {0, 1000000};
            nanosleep(&nap, NULL);
        }
        if (q1 == cudaErrorNotReady) {
            cudaMemcpyAsync(counters, dc, 8 * sizeof(unsigned long long), cudaMemcpyDeviceToHost, ws);
            cudaStreamSynchronize(ws);
            rc = c2i_fail(err, C2_EIO,
                          "persistent kernel still running after %.0f s: avail %llu closed %llu next %llu live %llu",
                          watchdog, counters[0], counters[1], counters[2], counters[3]);
            goto out;
        }
        C2C_CHECK(q1, "persistent kernel");
        C2C_CHECK(cudaMemcpy(counters, dc, 8 * sizeof(unsigned long long), cudaMemcpyDeviceToHost), "counters");
        r->pushes = counters[4];
        r->pops = counters[5];
    }
    C2C_CHECK(cudaEventSynchronize(e1), "run");
    {
        float ms = 0;
        C2C_CHECK(cudaEventElapsedTime(&ms, e0, e1), "timing");
        r->seconds = 1e-3 * ms;
    }
    C2C_CHECK(cudaMemcpy(hx, o.x, n2 * sizeof(float), cudaMemcpyDeviceToHost), "results");
    C2C_CHECK(cudaMemcpy(hsteps, o.steps, n2 * sizeof(uint32_t), cudaMemcpyDeviceToHost), "results");
    C2C_CHECK(cudaMemcpy(hends, o.ends, n2 * sizeof(uint32_t), cudaMemcpyDeviceToHost), "results");
    syn_verify<FLOPS>(p, htable, p->geometric ? hgeo : NULL, hx, hsteps, hends, r);
out:
    if (rc && rc != C2_EINVAL && p->mode == C2Q_PERSISTENT) {
        /* a kernel may still be running: leave its buffers, the process must exit */
        free(htable);
        free(hx);
        free(hsteps);
        free(hends);
        return rc;
    }
    for (int i = 0; i < nbuf; i++) {
        cudaFree(buf[i]);
    }
    cudaFreeHost(host_ids);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (ks) cudaStreamDestroy(ks);
    if (fs) cudaStreamDestroy(fs);
    if (ws) cudaStreamDestroy(ws);
    free(htable);
    free(hx);
    free(hsteps);
    free(hends);
    return rc;
#undef SYN_ALLOC
}

extern "C" int c2q_synth_run(const c2q_synth_params *p, c2q_synth_result *r, c2_error *err)
{
    memset(r, 0, sizeof *r);
    if (p->flops == 4) {
        return syn_run<4>(p, r, err);
    }
    if (p->flops == 64) {
        return syn_run<64>(p, r, err);
    }
    if (p->flops == 1024) {
        return syn_run<1024>(p, r, err);
    }
    return c2i_fail(err, C2_EINVAL, "synthetic run: flops %u (4, 64 or 1024)", p->flops);
}

/*
 * ring.cuh: a lock-free multi-producer multi-consumer ring of 32-bit items
 * in device memory, pushed and popped a warp at a time (device code only).
 *
 * Design (after the broker queue of Kerbl et al., ICS 2018): a power-of-two
 * ring; 64-bit head and tail tickets (they never wrap in practice: 2^64
 * operations); a sequence word per slot saying whose turn it is: 2r means
 * free for the push of round r, 2r + 1 full for the pop of round r (round
 * = ticket >> log2cap). A push takes tail tickets, waits until its slot is
 * free for its round, writes the item and publishes the slot with a
 * release store; a pop waits for the slot with an acquire load, reads the
 * item and frees the slot for the next round with a release store. So the
 * item, and anything the pusher wrote before pushing it (the photon's state
 * in its pool slot), is visible to the popper by construction.
 *
 * A pop must not take a ticket that no push will fill (it would wait for
 * ever when the ring is nearly empty and the kernel is draining): `count`
 * brokers the pops. It holds the published items not yet claimed; a warp
 * reads it first and takes nothing when it is <= 0, so idle warps polling
 * an empty ring do not drive it down (the livelock seen with a naive ring),
 * and a claim that overshoots (others subtracting at once) gives the excess
 * back. Pushes are not brokered: callers size the ring to hold every item
 * that can be in it at once (the runtime: every photon slot), so a push
 * only ever waits for a pop of the previous round that is in progress.
 *
 * Every function here is called by all 32 lanes of a converged warp.
 */
#ifndef C2Q_RING_CUH
#define C2Q_RING_CUH

#include <cuda/atomic>
#include <stdint.h>

#define C2Q_FULL_MASK 0xffffffffu

typedef struct c2q_ring {
    uint32_t *items;           /* capacity items */
    unsigned long long *seq;   /* capacity sequence words, zeroed at start */
    unsigned long long *head;  /* next pop ticket */
    unsigned long long *tail;  /* next push ticket */
    int *count;                /* published and unclaimed items (the broker) */
    uint32_t log2cap;
} c2q_ring;

typedef cuda::atomic_ref<unsigned long long, cuda::thread_scope_device> c2q_seq_ref;

__device__ __forceinline__ unsigned c2q_lane(void) { return threadIdx.x & 31u; }
__device__ __forceinline__ unsigned c2q_lanes_below(void) { return (1u << c2q_lane()) - 1u; }

/* Warp-aggregated append to a counted array: each lane of active where
 * keep is true gets a slot of its own (one atomic per warp). Called by
 * every lane of active; the slot means nothing where keep is false. */
__device__ __forceinline__ uint32_t c2q_append_slot(unsigned active, bool keep, uint32_t *count)
{
    unsigned m = __ballot_sync(active, keep);
    int leader = __ffs(active) - 1;
    uint32_t base = 0;
    if ((int)c2q_lane() == leader && m) {
        base = atomicAdd(count, (uint32_t)__popc(m));
    }
    base = __shfl_sync(active, base, leader);
    return base + (uint32_t)__popc(m & c2q_lanes_below());
}

/* Pushes item from every lane where has is true; returns how many the warp
 * pushed. */
__device__ __forceinline__ int c2q_push(const c2q_ring &q, bool has, uint32_t item)
{
    unsigned m = __ballot_sync(C2Q_FULL_MASK, has);
    if (!m) {
        return 0;
    }
    int n = __popc(m), leader = __ffs(m) - 1;
    unsigned long long t0 = 0;
    if ((int)c2q_lane() == leader) {
        t0 = atomicAdd(q.tail, (unsigned long long)n);
    }
    t0 = __shfl_sync(C2Q_FULL_MASK, t0, leader);
    if (has) {
        unsigned long long t = t0 + (unsigned long long)__popc(m & c2q_lanes_below());
        uint32_t slot = (uint32_t)(t & ((1ull << q.log2cap) - 1));
        unsigned long long round = t >> q.log2cap;
        c2q_seq_ref s(q.seq[slot]);
        while (s.load(cuda::memory_order_acquire) != 2 * round) { /* the previous round's pop is finishing */
            __nanosleep(20);
        }
        q.items[slot] = item;
        s.store(2 * round + 1, cuda::memory_order_release);
    }
    __syncwarp();
    if ((int)c2q_lane() == leader) {
        atomicAdd(q.count, n); /* after the warp's slots are published */
    }
    return n;
}

/* Pops one item into *item for each lane where want is true, as far as the
 * ring has them; returns true on the lanes that got one. Never waits for a
 * push that has not begun. */
__device__ __forceinline__ bool c2q_pop(const c2q_ring &q, bool want, uint32_t *item)
{
    unsigned m = __ballot_sync(C2Q_FULL_MASK, want);
    if (!m) {
        return false;
    }
    int leader = __ffs(m) - 1;
    int got = 0;
    unsigned long long h0 = 0;
    if ((int)c2q_lane() == leader) {
        cuda::atomic_ref<int, cuda::thread_scope_device> count(*q.count);
        int avail = count.load(cuda::memory_order_relaxed);
        if (avail > 0) {
            int take = min(avail, __popc(m));
            int before = atomicSub(q.count, take);
            if (before < take) { /* others claimed meanwhile: keep what was there */
                int keep = max(before, 0);
                atomicAdd(q.count, take - keep);
                take = keep;
            }
            got = take;
            if (got) {
                h0 = atomicAdd(q.head, (unsigned long long)got);
            }
        }
    }
    got = __shfl_sync(C2Q_FULL_MASK, got, leader);
    h0 = __shfl_sync(C2Q_FULL_MASK, h0, leader);
    int rank = __popc(m & c2q_lanes_below());
    if (!want || rank >= got) {
        return false;
    }
    unsigned long long t = h0 + (unsigned long long)rank;
    uint32_t slot = (uint32_t)(t & ((1ull << q.log2cap) - 1));
    unsigned long long round = t >> q.log2cap;
    c2q_seq_ref s(q.seq[slot]);
    while (s.load(cuda::memory_order_acquire) != 2 * round + 1) { /* its push has a ticket: it is coming */
        __nanosleep(20);
    }
    *item = q.items[slot];
    s.store(2 * round + 2, cuda::memory_order_release);
    return true;
}

#endif

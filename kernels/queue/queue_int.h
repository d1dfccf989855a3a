/*
 * queue_int.h: the device work queues' host API for tests and benchmarks:
 * a synthetic photon-like workload (items that live a number of steps, each
 * step a table lookup at a pseudo-random place and some arithmetic, and
 * may spawn a child when they end) run three ways on the GPU:
 *
 *   C2Q_PERSISTENT  one cooperative launch sized by occupancy; each warp
 *                   keeps up to 32 items in its lanes and refills empty
 *                   lanes from the rings (active: items pushed back; spawn:
 *                   children) and from the host feed; the host feeds the
 *                   input in batches while the kernel runs (doorbell
 *                   words written with cuStreamWriteValue64)
 *   C2Q_WAVEFRONT   one step per launch, survivors compacted with a
 *                   warp-aggregated atomic, children appended
 *   C2Q_LOOP        one thread per item, every step in a loop, its child after it
 *
 * Every item's end is recorded (how many times it ended, its steps, its
 * final value), and the run is checked against a host computation of the
 * same arithmetic: lost, duplicated and wrong items are counted.
 * Internal (c2q_ prefix). Blocks the calling thread.
 */
#ifndef C2Q_QUEUE_INT_H
#define C2Q_QUEUE_INT_H

#include <stdint.h>

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { C2Q_PERSISTENT = 0, C2Q_WAVEFRONT = 1, C2Q_LOOP = 2 } c2q_mode;

typedef struct c2q_synth_params {
    c2q_mode mode;
    uint32_t nitems;      /* original items; each lives 1..39 steps (mean 20), a hash of its id */
    int geometric;        /* lifetimes geometric instead (mean 20, up to 149), as photon histories */
    uint32_t flops;       /* arithmetic per step: 4 (light), 64 (one dependent chain: latency-bound)
                             or 1024 (four chains: compute-bound) */
    uint32_t spawn_every; /* every k-th original item spawns one child when it ends (0: none) */
    /* persistent only: */
    uint32_t batch;       /* the host feeds the input in batches of this many while the kernel
                             runs (0: all staged before the launch) */
    uint32_t yield_steps; /* a lane pushes its item back to the active ring after this many
                             steps (0: keeps it to its end); 1 sends every step through the ring */
    uint32_t log2cap;     /* ring capacity (0: the smallest power of two holding every lane) */
    uint32_t max_warps;   /* resident warps to launch, up to as many as fit (0: 16 per SM) */
    double watchdog_s;    /* give up after this long (0: 60 s), reporting the counters */
    int check_values;     /* also recompute every item's value on the host (slow for millions) */
} c2q_synth_params;

typedef struct c2q_synth_result {
    double seconds;      /* device time of the run (events around the kernels) */
    uint64_t items;      /* items that ended (original and children) */
    uint64_t steps;      /* steps executed, by the items' records */
    uint64_t expected_items, expected_steps;
    uint64_t lost, duplicated, wrong; /* never ended, ended more than once, wrong steps or value */
    uint32_t warps, capacity;         /* persistent: resident warps, ring capacity */
    uint64_t pushes, pops;            /* persistent: ring operations (items) */
} c2q_synth_result;

/* Runs the workload once. 0 on success (the counts in r say whether it was
 * right), C2_EIO with the reason when CUDA fails or the watchdog fires. */
int c2q_synth_run(const c2q_synth_params *p, c2q_synth_result *r, c2_error *err);

#ifdef __cplusplus
}
#endif
#endif

/*
 * cuda_int.h: the CUDA parts of libchroma2-engine. Internal (c2c_ prefix):
 * not installed.
 *
 *   device.cu   device count, device copies of geometries, the batch layout
 *               every executor reads, the driver's stream-memory writes
 *   loop.cu     the per-thread-loop executor: one thread per photon from
 *               start to end; the GPU reference for parity tests
 *   runtime.cu  the runtime: a persistent kernel that keeps every lane busy
 *               with photons it claims while it runs, fed events by the
 *               host while it runs; the daemon's cuda backend
 *
 * Threads: a c2c_geometry may be read by any number of runs at once; a
 * c2c_runtime serves one thread (feed, poll and run from the same one).
 */
#ifndef C2C_CUDA_INT_H
#define C2C_CUDA_INT_H

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (> 0), or a negative C2_E* code with the
 * driver's reason in err (no driver, no device, ...). */
int c2c_device_count(c2_error *err);
/* "NVIDIA H200 (sm_90, 132 SMs, 143771 MiB)" for the current device. */
void c2c_device_name(char *buf, size_t len);

typedef struct c2c_geometry c2c_geometry;

/* Copies a built geometry to the current device. g must outlive the copy
 * (events are validated against it). Free with c2c_geometry_free. */
c2c_geometry *c2c_geometry_upload(const c2_geometry *g, c2_error *err);
void c2c_geometry_free(c2c_geometry *dg); /* NULL is fine */
const c2_geometry *c2c_geometry_host(const c2c_geometry *dg);

/* Runs the events on the device, one thread per photon from start to end,
 * and copies each event's end states into ends[e] (caller-owned arrays, one
 * c2_photon per photon id). Events are validated first, as by the CPU
 * engine. kernel_seconds (may be NULL) gets the kernel's device time. */
int c2c_loop_run(const c2c_geometry *dg, const c2_event *events, uint32_t nevents, c2_photon *const *ends,
                 double *kernel_seconds, c2_error *err);

/* ---- the runtime ---- */
typedef struct c2c_runtime c2c_runtime;

typedef struct c2c_runtime_params {
    /* Device memory for photons in flight (hits, end states), at least two
     * windows; 0: a quarter of the free device memory, at most 4 GiB.
     * Events are cut into windows of at most `window` photons that stream
     * through it: the kernel runs ahead while the host drains the windows
     * that finished. */
    uint64_t pool_bytes;
    uint64_t window; /* photons per window at most (0: 2^19, fewer if the pool is small); tests force small ones */
    uint32_t host_threads; /* threads (the polling one included) that order a window's hits (0: half the
                              CPUs the process may use, at most 8) */
    /* Where the host team starts to pay: windows of at least team_min_hits
     * hits are ordered on it, result arrays growing by at least
     * touch_min_bytes have their pages pre-faulted by it (0: 4096 hits,
     * 8 MiB). Tests set 1 to run the team on small events. */
    uint32_t team_min_hits;
    uint64_t touch_min_bytes;
    uint32_t warps_per_sm; /* resident warps of the persistent kernel (0: as many as fit, 32 on
                              an H200; benchmarks table 2) */
    /* Two other ways to launch, for c2c_runtime_run only (c2c_runtime_feed
     * refuses them otherwise), one at most: wavefront, one step per launch
     * (the benchmark's baseline); one_launch, the persistent kernel
     * launched once the call's windows are all released, told to leave
     * when idle: it then runs without the host, so Nsight Compute's kernel
     * replay can profile it (tools/gpu-run profile); the call must fit the
     * pool at once. */
    int wavefront;
    int one_launch;
    double watchdog_s;     /* windows in flight and none finished for this long: abort (0: 300 s) */
    /* Tests of failure handling only: feed number fault_run (1 = the first)
     * makes an illegal memory access instead, a real sticky CUDA error. */
    uint32_t fault_run;
} c2c_runtime_params;

typedef struct c2c_run_stats {
    double kernel_seconds; /* the call's start to the last window seen finished (the resident kernel
                              outlives it); wavefront mode: its launches, device clock */
    double seconds;        /* the whole call, host clock */
    double host_seconds;   /* of which the host spent on window drains and results */
    uint64_t photons, window;
    uint32_t windows, warps;
    uint64_t team_rounds; /* rounds the host team ran on more than one thread (ordering, page touch, channels) */
} c2c_run_stats;

/* Sets up the runtime on the current device (params may be NULL). Pools
 * are sized when the kernel starts and kept. */
c2c_runtime *c2c_runtime_new(const c2c_runtime_params *params, c2_error *err);
/* NULL is fine. Events fed and not delivered are dropped without a call. */
void c2c_runtime_free(c2c_runtime *rt);

/* Called once for each event fed, by c2c_runtime_poll on the polling
 * thread, when results[i] is complete (rc 0) or the event failed (rc a
 * C2_E* code, results[i] empty). After it the caller may free events[i],
 * results[i] and what they point to. It must not call the runtime. */
typedef void (*c2c_done_fn)(void *arg, uint32_t i, int rc);

/* Feeds n events to the runtime: the persistent kernel is started if it
 * is not running (or restarted, once what runs is delivered, when the
 * geometry changes or the pools must grow) and takes them while it runs
 * the events fed before. Events are validated first (nothing is fed on an
 * error). events[] and results[] stay the caller's and must live until
 * done(arg, i, rc) was called for each i; results[] is filled exactly as
 * c2_engine_run fills it. May poll (and so call done functions) while it
 * waits for room. Returns 0 or a C2_E* code. */
int c2c_runtime_feed(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *events, uint32_t n,
                     c2_event_result *results, c2c_done_fn done, void *arg, c2_error *err);

/* Moves what was fed along: drains finished windows, delivers finished
 * events (their done calls), rings cancel doorbells for events whose stop
 * flag was set. Returns the number of events delivered, waiting up to
 * wait_s seconds for the first; a negative C2_E* code when the device
 * failed (every event in flight is then delivered with that code, and the
 * runtime is broken). */
int c2c_runtime_poll(c2c_runtime *rt, double wait_s, c2_error *err);

/* Events fed and not yet delivered. */
uint32_t c2c_runtime_inflight(const c2c_runtime *rt);
/* Times the persistent kernel was started so far. */
uint32_t c2c_runtime_launches(const c2c_runtime *rt);

/* Polls until everything fed is delivered, then lets the kernel end (it
 * leaves the SMs to other work; the next feed starts it again). */
int c2c_runtime_quiesce(c2c_runtime *rt, c2_error *err);

/* Feeds the events, polls until all are delivered and quiesces: results
 * [0..n) as c2_engine_run fills them (histories equal up to float
 * rounding). An event whose stop flag is set while it runs has its
 * remaining photons skipped. stats may be NULL. On error no result is
 * filled; when the device itself failed (a sticky CUDA error, a kernel
 * that had to be aborted) the runtime is broken from then on. */
int c2c_runtime_run(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *events, uint32_t n,
                    c2_event_result *results, c2c_run_stats *stats, c2_error *err);

/* NULL while usable, else why not ("cuda: an illegal memory access ...");
 * the process must exit to get the device back. */
const char *c2c_runtime_broken(const c2c_runtime *rt);

#ifdef __cplusplus
}
#endif

/* ---- for the .cu files ---- */
#ifdef __CUDACC__
#include <cuda.h>
#include <cuda_runtime.h>

#include "../errors.h"
#include "../physics/propagate.h"

/* Fails the enclosing function (int rc, c2_error *err, label out) when a
 * CUDA call fails, naming what was being done. */
#define C2C_CHECK(call, what)                                                                                      \
    do {                                                                                                           \
        cudaError_t e_ = (call);                                                                                   \
        if (e_ != cudaSuccess) {                                                                                   \
            rc = c2i_fail(err, e_ == cudaErrorMemoryAllocation ? C2_ENOMEM : C2_EIO, "cuda: %s: %s", what,         \
                          cudaGetErrorString(e_));                                                                 \
            goto out;                                                                                              \
        }                                                                                                          \
    } while (0)

/* The geometry's device view (device pointers). */
const c2k_geom *c2c_geometry_view(const c2c_geometry *dg);

/* A batch as the kernels read it, in one block of memory: the events
 * (c2k_event, pointing into the block's device copy), first[nevents + 1]
 * (ticket of each event's first photon: tickets number the batch's photons
 * event by event), source bases, photons, sources, spectra. */
enum { C2C_B_EVENTS, C2C_B_FIRST, C2C_B_BASES, C2C_B_PHOTONS, C2C_B_SOURCES, C2C_B_SPECTRA, C2C_B_N };
typedef struct c2c_batch {
    size_t off[C2C_B_N], size;
    uint64_t total; /* photons of the batch */
    uint32_t nevents;
} c2c_batch;

/* Validates the events against dg's geometry and lays them out. */
int c2c_batch_plan(const c2c_geometry *dg, const c2_event *events, uint32_t n, c2c_batch *b, c2_error *err);
/* Writes the batch into host (b->size bytes), pointing at dev, where the
 * caller will copy it. */
void c2c_batch_fill(const c2c_geometry *dg, const c2c_batch *b, const c2_event *events, char *host, char *dev);

/* cuStreamWriteValue64 through the runtime's driver entry point (no link
 * against libcuda): a doorbell written in stream order, so after the copies
 * queued before it, without waiting for a running kernel. NULL and err
 * filled when the driver lacks it. */
typedef CUresult (*c2c_write64_fn)(CUstream, CUdeviceptr, cuuint64_t, unsigned int);
typedef CUresult (*c2c_write32_fn)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
c2c_write64_fn c2c_driver_write64(c2_error *err);
c2c_write32_fn c2c_driver_write32(c2_error *err); /* cuStreamWriteValue32, the same way */

/* Monotonic host seconds. */
double c2c_now(void);
#endif
#endif

/*
 * cuda_int.h: the CUDA parts of libchroma2-engine. Internal (c2c_ prefix):
 * not installed.
 *
 *   device.cu   device count, device copies of geometries, the batch layout
 *               every executor reads, the driver's stream-memory writes
 *   loop.cu     the per-thread-loop executor: one thread per photon from
 *               start to end; the GPU reference for parity tests
 *   runtime.cu  the runtime: a persistent kernel that keeps every lane busy
 *               with photons it claims while it runs, fed window by window
 *               by the host; the daemon's cuda backend
 *
 * Threads: a c2c_geometry may be read by any number of runs at once; a
 * c2c_runtime serves one call at a time (its caller's thread blocks).
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
    /* Device memory for photons in flight (hits, end states, sort space);
     * 0: a quarter of the free device memory, at most 4 GiB. The batch is
     * cut into windows of photons that fit twice in it: the kernel runs one
     * window while the host drains the one before. */
    uint64_t pool_bytes;
    uint64_t window;       /* photons per window (0: from pool_bytes); tests force small ones */
    uint32_t warps_per_sm; /* resident warps of the persistent kernel (0: as many as fit, 24 on
                              an H200: 1.2-1.3x the photons/s of 16, benchmarks table 2) */
    int wavefront;         /* one step per launch instead (the benchmark's baseline) */
    double watchdog_s;     /* no window finished for this long: abort the kernel (0: 300 s) */
    /* Tests of failure handling only: run number fault_run (1 = the first)
     * makes an illegal memory access instead, a real sticky CUDA error. */
    uint32_t fault_run;
} c2c_runtime_params;

typedef struct c2c_run_stats {
    double kernel_seconds; /* launch to the kernel's end, device clock */
    double seconds;        /* the whole call, host clock */
    double host_seconds;   /* of which the host spent on window drains and results */
    uint64_t photons, window;
    uint32_t windows, warps;
} c2c_run_stats;

/* Sets up the runtime on the current device (params may be NULL). The
 * pools grow on the first runs that need them and are kept. */
c2c_runtime *c2c_runtime_new(const c2c_runtime_params *params, c2_error *err);
void c2c_runtime_free(c2c_runtime *rt); /* NULL is fine */

/* Propagates the events to completion on the device and fills
 * results[0..n) exactly as c2_engine_run does (same ordering, same
 * counters; histories equal up to float rounding). Events are validated
 * first. An event whose stop flag is set while it runs has its remaining
 * photons skipped. stats may be NULL. On error no result is filled; when
 * the device itself failed (a sticky CUDA error, a kernel that had to be
 * aborted) the runtime is broken from then on: see c2c_runtime_broken. */
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

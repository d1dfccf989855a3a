/*
 * cuda_int.h: the CUDA parts of libchroma2-engine as far as they exist:
 * device copies of a geometry and the per-thread-loop executor, the GPU
 * reference that runs the shared physics one thread per photon. The
 * persistent-kernel runtime and the daemon's cuda backend build on these.
 * Internal (c2c_ prefix): not installed.
 *
 * Threads: each call blocks the calling thread until the device is done;
 * calls on one c2c_geometry must not overlap.
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

typedef struct c2c_geometry c2c_geometry;

/* Copies a built geometry to the current device. g must outlive the copy
 * (events are validated against it). Free with c2c_geometry_free. */
c2c_geometry *c2c_geometry_upload(const c2_geometry *g, c2_error *err);
void c2c_geometry_free(c2c_geometry *dg); /* NULL is fine */

/* Runs the events on the device, one thread per photon from start to end,
 * and copies each event's end states into ends[e] (caller-owned arrays, one
 * c2_photon per photon id). Events are validated first, as by the CPU
 * engine. kernel_seconds (may be NULL) gets the kernel's device time. */
int c2c_loop_run(const c2c_geometry *dg, const c2_event *events, uint32_t nevents, c2_photon *const *ends,
                 double *kernel_seconds, c2_error *err);

#ifdef __cplusplus
}
#endif
#endif

/*
 * loop.cu: the per-thread-loop executor: each thread makes one photon
 * (explicit or from a source) and steps it to the end with the same physics
 * headers as the CPU engine. It is the GPU reference for parity tests: the
 * simplest way to run the physics on the device.
 *
 * Memory: every device buffer of a call is allocated and freed inside it.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_int.h"

__global__ void loop_kernel(c2k_geom g, const c2k_event *events, const uint64_t *first, uint32_t nevents,
                            uint64_t total, c2_photon *out)
{
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        uint32_t e = c2k_find(first, nevents, i);
        c2_photon p;
        c2k_make_photon(&g, &events[e], e, (uint32_t)(i - first[e]), &p);
        c2k_run_photon(&g, &events[e], &p);
        out[i] = p;
    }
}

extern "C" int c2c_loop_run(const c2c_geometry *dg, const c2_event *events, uint32_t nevents,
                            c2_photon *const *ends, double *kernel_seconds, c2_error *err)
{
    int rc = 0;
    char *host = NULL, *dev = NULL;
    c2_photon *dout = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    c2c_batch b;
    if ((rc = c2c_batch_plan(dg, events, nevents, &b, err))) {
        return rc;
    }
    const uint64_t total = b.total;
    const uint64_t *first = NULL;
    host = (char *)malloc(b.size);
    if (!host) {
        return c2i_fail(err, C2_ENOMEM, "cuda: out of host memory for the batch");
    }
    C2C_CHECK(cudaMalloc((void **)&dev, b.size), "allocating the batch");
    c2c_batch_fill(dg, &b, events, host, dev);
    first = (const uint64_t *)(host + b.off[C2C_B_FIRST]);
    C2C_CHECK(cudaMemcpy(dev, host, b.size, cudaMemcpyHostToDevice), "copying the batch");
    C2C_CHECK(cudaMalloc((void **)&dout, (total ? total : 1) * sizeof(c2_photon)), "allocating end states");
    C2C_CHECK(cudaEventCreate(&t0), "creating events");
    C2C_CHECK(cudaEventCreate(&t1), "creating events");
    if (total) {
        const int block = 128;
        uint64_t blocks = (total + block - 1) / block;
        C2C_CHECK(cudaEventRecord(t0), "timing");
        loop_kernel<<<(unsigned)(blocks < 65535u * 16u ? blocks : 65535u * 16u), block>>>(
            *c2c_geometry_view(dg), (const c2k_event *)(dev + b.off[C2C_B_EVENTS]),
            (const uint64_t *)(dev + b.off[C2C_B_FIRST]), nevents, total, dout);
        C2C_CHECK(cudaGetLastError(), "launching the kernel");
        C2C_CHECK(cudaEventRecord(t1), "timing");
        C2C_CHECK(cudaEventSynchronize(t1), "running the kernel");
    }
    if (kernel_seconds) {
        float ms = 0.0f;
        if (total) {
            C2C_CHECK(cudaEventElapsedTime(&ms, t0, t1), "timing");
        }
        *kernel_seconds = 1e-3 * ms;
    }
    for (uint32_t e = 0; e < nevents; e++) {
        C2C_CHECK(cudaMemcpy(ends[e], dout + first[e], (first[e + 1] - first[e]) * sizeof(c2_photon),
                             cudaMemcpyDeviceToHost),
                  "copying end states back");
    }
out:
    if (t0) {
        cudaEventDestroy(t0);
    }
    if (t1) {
        cudaEventDestroy(t1);
    }
    cudaFree(dout);
    cudaFree(dev);
    free(host);
    return rc;
}

/*
 * loop.cu: device geometry and the per-thread-loop executor: each thread
 * makes one photon (explicit or from a source) and steps it to the end with
 * the same physics headers as the CPU engine. It is the GPU reference for
 * parity tests and the "per-thread loop" baseline of the queue benchmarks.
 *
 * Memory: every device buffer of a call is allocated and freed inside the
 * call; the geometry's buffers live from upload to c2c_geometry_free.
 */
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

#include "../geometry/geometry_int.h"
#include "../physics/propagate.h"
#include "cuda_int.h"

struct c2c_geometry {
    const c2_geometry *host;
    c2k_geom view; /* device pointers */
    void *buf[8];
};

#define LOOP_CHECK(call, what)                                                                                     \
    do {                                                                                                           \
        cudaError_t e_ = (call);                                                                                   \
        if (e_ != cudaSuccess) {                                                                                   \
            rc = c2i_fail(err, e_ == cudaErrorMemoryAllocation ? C2_ENOMEM : C2_EIO, "cuda: %s: %s", what,         \
                          cudaGetErrorString(e_));                                                                 \
            goto out;                                                                                              \
        }                                                                                                          \
    } while (0)

extern "C" int c2c_device_count(c2_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        return c2i_fail(err, C2_EIO, "no CUDA device: %s", cudaGetErrorString(e));
    }
    return n > 0 ? n : c2i_fail(err, C2_EIO, "no CUDA device: the driver reports none");
}

/* Copies n bytes to a new device buffer; at least 4 bytes so that empty
 * tables still get a valid pointer. */
static cudaError_t loop_upload(void **dst, const void *src, size_t n)
{
    cudaError_t e = cudaMalloc(dst, n ? n : 4);
    return e != cudaSuccess || n == 0 ? e : cudaMemcpy(*dst, src, n, cudaMemcpyHostToDevice);
}

extern "C" c2c_geometry *c2c_geometry_upload(const c2_geometry *g, c2_error *err)
{
    int rc = 0;
    c2c_geometry *dg = (c2c_geometry *)calloc(1, sizeof *dg);
    if (!dg || !g || !g->built) {
        free(dg);
        c2i_fail(err, dg ? C2_ESTATE : C2_ENOMEM, dg ? "geometry is not built" : "out of memory");
        return NULL;
    }
    c2k_geom h = c2i_geometry_view(g);
    dg->host = g;
    dg->view = h;
    {
        const size_t nwl = h.nwl;
        const void *src[8] = {h.mat, h.mat_tau, h.surf, h.surf_model, h.surf_tau, h.verts, h.tri, h.nodes};
        const size_t bytes[8] = {h.nmaterials * C2K_MAT_NPROP * nwl * sizeof(float),
                                 h.nmaterials * sizeof(float),
                                 h.nsurfaces * C2K_SURF_NPROP * nwl * sizeof(float),
                                 h.nsurfaces * sizeof(uint32_t),
                                 h.nsurfaces * sizeof(float),
                                 (size_t)h.ntriangles * 9 * sizeof(float),
                                 (size_t)h.ntriangles * sizeof(c2k_tri_info),
                                 (size_t)h.nnodes * sizeof(c2k_node)};
        for (int i = 0; i < 8; i++) {
            LOOP_CHECK(loop_upload(&dg->buf[i], src[i], bytes[i]), "uploading the geometry");
        }
    }
    dg->view.mat = (const float *)dg->buf[0];
    dg->view.mat_tau = (const float *)dg->buf[1];
    dg->view.surf = (const float *)dg->buf[2];
    dg->view.surf_model = (const uint32_t *)dg->buf[3];
    dg->view.surf_tau = (const float *)dg->buf[4];
    dg->view.verts = (const float *)dg->buf[5];
    dg->view.tri = (const c2k_tri_info *)dg->buf[6];
    dg->view.nodes = (const c2k_node *)dg->buf[7];
out:
    if (rc) {
        c2c_geometry_free(dg);
        return NULL;
    }
    return dg;
}

extern "C" void c2c_geometry_free(c2c_geometry *dg)
{
    if (!dg) {
        return;
    }
    for (int i = 0; i < 8; i++) {
        cudaFree(dg->buf[i]);
    }
    free(dg);
}

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

/* The batch in one host block, laid out as it goes to the device: events,
 * event offsets, source bases, photons, sources, spectra. */
typedef struct loop_layout {
    size_t off[6], size;
} loop_layout;

static size_t loop_align(size_t x) { return (x + 63) & ~(size_t)63; }

extern "C" int c2c_loop_run(const c2c_geometry *dg, const c2_event *events, uint32_t nevents,
                            c2_photon *const *ends, double *kernel_seconds, c2_error *err)
{
    int rc = 0;
    char *host = NULL, *dev = NULL;
    c2_photon *dout = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    uint64_t total = 0, nsrc = 0, nph = 0, nspec = 0;
    loop_layout L;
    for (uint32_t e = 0; e < nevents; e++) {
        if ((rc = c2_event_validate(dg->host, &events[e], err))) {
            return rc;
        }
        nph += events[e].nphotons;
        nsrc += events[e].nsources;
        nspec += (uint64_t)events[e].nspectra * dg->view.nwl;
    }
    L.off[0] = 0;
    L.off[1] = loop_align(L.off[0] + nevents * sizeof(c2k_event));
    L.off[2] = loop_align(L.off[1] + (nevents + 1) * sizeof(uint64_t));
    L.off[3] = loop_align(L.off[2] + (nsrc + nevents) * sizeof(uint64_t));
    L.off[4] = loop_align(L.off[3] + nph * sizeof(c2_photon));
    L.off[5] = loop_align(L.off[4] + nsrc * sizeof(c2_source));
    L.size = L.off[5] + nspec * sizeof(float);
    host = (char *)malloc(L.size);
    if (!host) {
        return c2i_fail(err, C2_ENOMEM, "cuda: out of host memory for the batch");
    }
    LOOP_CHECK(cudaMalloc((void **)&dev, L.size), "allocating the batch");
    {
        c2k_event *kev = (c2k_event *)(host + L.off[0]);
        uint64_t *first = (uint64_t *)(host + L.off[1]);
        uint64_t *sb = (uint64_t *)(host + L.off[2]);
        size_t sb_i = 0, ph_i = 0, src_i = 0, spec_i = 0;
        first[0] = 0;
        for (uint32_t e = 0; e < nevents; e++) {
            const c2_event *ev = &events[e];
            uint64_t *base = sb + sb_i;
            base[0] = ev->nphotons;
            for (uint32_t s = 0; s < ev->nsources; s++) {
                base[s + 1] = base[s] + ev->sources[s].nphotons;
            }
            first[e + 1] = first[e] + base[ev->nsources];
            memcpy(host + L.off[3] + ph_i * sizeof(c2_photon), ev->photons, ev->nphotons * sizeof(c2_photon));
            memcpy(host + L.off[4] + src_i * sizeof(c2_source), ev->sources, ev->nsources * sizeof(c2_source));
            memcpy(host + L.off[5] + spec_i * sizeof(float), ev->spectra,
                   (size_t)ev->nspectra * dg->view.nwl * sizeof(float));
            /* the same event, pointing at where its arrays will be on the device */
            c2k_event k;
            memset(&k, 0, sizeof k);
            k.id = ev->id;
            k.seed = ev->seed;
            k.max_steps = ev->max_steps ? ev->max_steps : C2_DEFAULT_MAX_STEPS;
            k.nphotons = ev->nphotons;
            k.nsources = ev->nsources;
            k.photons = (const c2_photon *)(dev + L.off[3]) + ph_i;
            k.sources = (const c2_source *)(dev + L.off[4]) + src_i;
            k.source_base = (const uint64_t *)(dev + L.off[2]) + sb_i;
            k.spectra = (const float *)(dev + L.off[5]) + spec_i;
            kev[e] = k;
            sb_i += ev->nsources + 1;
            ph_i += ev->nphotons;
            src_i += ev->nsources;
            spec_i += (size_t)ev->nspectra * dg->view.nwl;
        }
        total = first[nevents];
    }
    LOOP_CHECK(cudaMemcpy(dev, host, L.size, cudaMemcpyHostToDevice), "copying the batch");
    LOOP_CHECK(cudaMalloc((void **)&dout, (total ? total : 1) * sizeof(c2_photon)), "allocating end states");
    LOOP_CHECK(cudaEventCreate(&t0), "creating events");
    LOOP_CHECK(cudaEventCreate(&t1), "creating events");
    if (total) {
        const int block = 128;
        uint64_t blocks = (total + block - 1) / block;
        LOOP_CHECK(cudaEventRecord(t0), "timing");
        loop_kernel<<<(unsigned)(blocks < 65535u * 16u ? blocks : 65535u * 16u), block>>>(
            dg->view, (const c2k_event *)(dev + L.off[0]), (const uint64_t *)(dev + L.off[1]), nevents, total, dout);
        LOOP_CHECK(cudaGetLastError(), "launching the kernel");
        LOOP_CHECK(cudaEventRecord(t1), "timing");
        LOOP_CHECK(cudaEventSynchronize(t1), "running the kernel");
    }
    if (kernel_seconds) {
        float ms = 0.0f;
        if (total) {
            LOOP_CHECK(cudaEventElapsedTime(&ms, t0, t1), "timing");
        }
        *kernel_seconds = 1e-3 * ms;
    }
    {
        const uint64_t *first = (const uint64_t *)(host + L.off[1]);
        for (uint32_t e = 0; e < nevents; e++) {
            LOOP_CHECK(cudaMemcpy(ends[e], dout + first[e], (first[e + 1] - first[e]) * sizeof(c2_photon),
                                  cudaMemcpyDeviceToHost),
                       "copying end states back");
        }
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

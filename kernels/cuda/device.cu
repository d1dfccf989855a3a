/*
 * device.cu: what every GPU executor shares: the device's presence and
 * name, device copies of geometries, the batch layout and the driver's
 * stream-ordered memory writes.
 *
 * Memory: a c2c_geometry's buffers live from upload to c2c_geometry_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cpu/engine_int.h"
#include "../geometry/geometry_int.h"
#include "cuda_int.h"

struct c2c_geometry {
    const c2_geometry *host;
    c2k_geom view; /* device pointers */
    void *buf[8];
};

extern "C" int c2c_device_count(c2_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        return c2i_fail(err, C2_EIO, "no CUDA device: %s", cudaGetErrorString(e));
    }
    return n > 0 ? n : c2i_fail(err, C2_EIO, "no CUDA device: the driver reports none");
}

extern "C" void c2c_device_name(char *buf, size_t len)
{
    int dev = 0;
    cudaDeviceProp p;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        snprintf(buf, len, "cuda device (properties unreadable)");
        return;
    }
    snprintf(buf, len, "%s (sm_%d%d, %d SMs, %zu MiB)", p.name, p.major, p.minor, p.multiProcessorCount,
             p.totalGlobalMem >> 20);
}

/* Copies n bytes to a new device buffer; at least 4 bytes so that empty
 * tables still get a valid pointer. */
static cudaError_t dev_upload(void **dst, const void *src, size_t n)
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
            C2C_CHECK(dev_upload(&dg->buf[i], src[i], bytes[i]), "uploading the geometry");
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

extern "C" const c2_geometry *c2c_geometry_host(const c2c_geometry *dg) { return dg->host; }
const c2k_geom *c2c_geometry_view(const c2c_geometry *dg) { return &dg->view; }

/* ---- batches ---- */

static size_t dev_align(size_t x) { return (x + 63) & ~(size_t)63; }

int c2c_batch_plan(const c2c_geometry *dg, const c2_event *events, uint32_t n, c2c_batch *b, c2_error *err)
{
    uint64_t nsrc = 0, nph = 0, nspec = 0, total = 0;
    if (n && !events) {
        return c2i_fail(err, C2_EINVAL, "events is NULL");
    }
    for (uint32_t e = 0; e < n; e++) {
        int rc = c2_event_validate(dg->host, &events[e], err);
        if (rc) {
            if (err) { /* name the event in front of the message, as the CPU engine does */
                char msg[sizeof err->msg];
                memcpy(msg, err->msg, sizeof msg);
                snprintf(err->msg, sizeof err->msg, "event %u (id %llu): %.200s", e,
                         (unsigned long long)events[e].id, msg);
            }
            return rc;
        }
        nph += events[e].nphotons;
        nsrc += events[e].nsources;
        nspec += (uint64_t)events[e].nspectra * dg->view.nwl;
        total += events[e].nphotons;
        for (uint32_t s = 0; s < events[e].nsources; s++) {
            total += events[e].sources[s].nphotons;
        }
    }
    b->nevents = n;
    b->total = total;
    b->off[C2C_B_EVENTS] = 0;
    b->off[C2C_B_FIRST] = dev_align(n * sizeof(c2k_event));
    b->off[C2C_B_BASES] = dev_align(b->off[C2C_B_FIRST] + (n + 1) * sizeof(uint64_t));
    b->off[C2C_B_PHOTONS] = dev_align(b->off[C2C_B_BASES] + (nsrc + n) * sizeof(uint64_t));
    b->off[C2C_B_SOURCES] = dev_align(b->off[C2C_B_PHOTONS] + nph * sizeof(c2_photon));
    b->off[C2C_B_SPECTRA] = dev_align(b->off[C2C_B_SOURCES] + nsrc * sizeof(c2_source));
    b->size = b->off[C2C_B_SPECTRA] + nspec * sizeof(float);
    return 0;
}

void c2c_batch_fill(const c2c_geometry *dg, const c2c_batch *b, const c2_event *events, char *host, char *dev)
{
    c2k_event *kev = (c2k_event *)(host + b->off[C2C_B_EVENTS]);
    uint64_t *first = (uint64_t *)(host + b->off[C2C_B_FIRST]);
    uint64_t *sb = (uint64_t *)(host + b->off[C2C_B_BASES]);
    const size_t nwl = dg->view.nwl;
    size_t sb_i = 0, ph_i = 0, src_i = 0, spec_i = 0;
    first[0] = 0;
    for (uint32_t e = 0; e < b->nevents; e++) {
        const c2_event *ev = &events[e];
        uint64_t *base = sb + sb_i;
        base[0] = ev->nphotons;
        for (uint32_t s = 0; s < ev->nsources; s++) {
            base[s + 1] = base[s] + ev->sources[s].nphotons;
        }
        first[e + 1] = first[e] + base[ev->nsources];
        if (ev->nphotons) { /* records, or columns made into records */
            c2i_event_photons(ev, 0, ev->nphotons, (c2_photon *)(host + b->off[C2C_B_PHOTONS]) + ph_i);
        }
        if (ev->nsources) {
            memcpy(host + b->off[C2C_B_SOURCES] + src_i * sizeof(c2_source), ev->sources,
                   ev->nsources * sizeof(c2_source));
        }
        if (ev->nspectra) {
            memcpy(host + b->off[C2C_B_SPECTRA] + spec_i * sizeof(float), ev->spectra,
                   ev->nspectra * nwl * sizeof(float));
        }
        c2k_event k;
        memset(&k, 0, sizeof k);
        k.id = ev->id;
        k.seed = ev->seed;
        k.max_steps = ev->max_steps ? ev->max_steps : C2_DEFAULT_MAX_STEPS;
        k.nphotons = ev->nphotons;
        k.nsources = ev->nsources;
        k.want = ev->want;
        k.photons = (const c2_photon *)(dev + b->off[C2C_B_PHOTONS]) + ph_i;
        k.sources = (const c2_source *)(dev + b->off[C2C_B_SOURCES]) + src_i;
        k.source_base = (const uint64_t *)(dev + b->off[C2C_B_BASES]) + sb_i;
        k.spectra = (const float *)(dev + b->off[C2C_B_SPECTRA]) + spec_i;
        kev[e] = k;
        sb_i += ev->nsources + 1;
        ph_i += ev->nphotons;
        src_i += ev->nsources;
        spec_i += (size_t)ev->nspectra * nwl;
    }
}

/* ---- the driver ---- */

static void *dev_entry(const char *name, c2_error *err)
{
    void *f = NULL;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion(name, &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess || !f) {
        c2i_fail(err, C2_EIO, "cuda: the driver has no %s", name);
        return NULL;
    }
    return f;
}

c2c_write64_fn c2c_driver_write64(c2_error *err) { return (c2c_write64_fn)dev_entry("cuStreamWriteValue64", err); }
c2c_write32_fn c2c_driver_write32(c2_error *err) { return (c2c_write32_fn)dev_entry("cuStreamWriteValue32", err); }

double c2c_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

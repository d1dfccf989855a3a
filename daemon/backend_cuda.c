/*
 * backend_cuda.c: the GPU runtime (kernels/cuda/runtime.cu) as a streaming
 * backend: batches are fed to the persistent kernel while it runs the ones
 * before, and each event is answered as it finishes.
 *
 * Geometries are uploaded on first use and kept while loaded: the
 * scheduler calls forget when it frees one (never while one of its events
 * runs). Everything here runs on the backend thread except forget, which
 * any thread may call: the cache is under a mutex, and forget only moves
 * the device copy to a list the backend thread frees while no kernel runs
 * (cudaFree waits for a running kernel; the resident one ends only when
 * this thread tells it to). Uploads, too, wait for the kernel to end.
 *
 * A runtime that broke (a sticky CUDA error, a kernel that had to be
 * aborted) stays broken: broken() says why and the daemon exits non-zero so
 * that systemd restarts it on a clean device.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cuda/cuda_int.h"
#include "daemon.h"

#define CUDA_CACHE C2D_MAX_GEOMETRIES

typedef struct cuda_backend {
    c2c_runtime *rt;
    pthread_mutex_t mu;
    struct {
        const c2_geometry *g;
        c2c_geometry *dg;
        uint64_t used; /* run counter at last use */
    } cache[CUDA_CACHE];
    /* forgotten, freed by the backend thread: at most every cached copy,
     * and those uploaded between a free and the next */
    c2c_geometry *doomed[2 * CUDA_CACHE];
    uint32_t ndoomed;
    uint64_t runs;
} cuda_backend;

/* Frees what forget set aside: on the backend thread, between batches. */
static void cuda_free_doomed(cuda_backend *cb)
{
    pthread_mutex_lock(&cb->mu);
    c2c_geometry *d[2 * CUDA_CACHE];
    uint32_t n = cb->ndoomed;
    memcpy(d, cb->doomed, n * sizeof *d);
    cb->ndoomed = 0;
    pthread_mutex_unlock(&cb->mu);
    for (uint32_t i = 0; i < n; i++) {
        c2c_geometry_free(d[i]);
    }
}

/* The device copy of g, uploaded now if needed; the least recently used
 * copy makes room when the cache is full. */
static c2c_geometry *cuda_geometry(cuda_backend *cb, const c2_geometry *g, c2_error *err)
{
    pthread_mutex_lock(&cb->mu);
    int slot = -1, lru = 0;
    for (int i = 0; i < CUDA_CACHE; i++) {
        if (cb->cache[i].g == g) {
            cb->cache[i].used = ++cb->runs;
            pthread_mutex_unlock(&cb->mu);
            return cb->cache[i].dg;
        }
        if (!cb->cache[i].g && slot < 0) {
            slot = i;
        }
        if (cb->cache[i].used < cb->cache[lru].used) {
            lru = i;
        }
    }
    if (slot < 0) {
        slot = lru;
        c2c_geometry_free(cb->cache[slot].dg);
        cb->cache[slot].g = NULL;
        cb->cache[slot].dg = NULL; /* the upload below may fail */
    }
    pthread_mutex_unlock(&cb->mu);
    c2c_geometry *dg = c2c_geometry_upload(g, err); /* only this thread fills slots */
    pthread_mutex_lock(&cb->mu);
    if (dg) {
        cb->cache[slot].g = g;
        cb->cache[slot].dg = dg;
        cb->cache[slot].used = ++cb->runs;
    }
    pthread_mutex_unlock(&cb->mu);
    return dg;
}

/* The device copy of g if it is cached and nothing waits to be freed:
 * then the running kernel may go on. */
static c2c_geometry *cuda_cached(cuda_backend *cb, const c2_geometry *g)
{
    c2c_geometry *dg = NULL;
    pthread_mutex_lock(&cb->mu);
    for (int i = 0; i < CUDA_CACHE && !cb->ndoomed; i++) {
        if (cb->cache[i].g == g) {
            dg = cb->cache[i].dg;
            cb->cache[i].used = ++cb->runs;
        }
    }
    pthread_mutex_unlock(&cb->mu);
    return dg;
}

static int cuda_feed(c2d_backend *b, const c2_geometry *g, const c2_event *ev, uint32_t n, c2_event_result *res,
                     c2d_done_fn done, void *arg, c2_error *err)
{
    cuda_backend *cb = b->impl;
    const char *broken = c2c_runtime_broken(cb->rt);
    if (broken) { /* no CUDA call now: it could wait for ever on a kernel that did not stop */
        return c2i_fail(err, C2_EIO, "%s", broken);
    }
    c2c_geometry *dg = cuda_cached(cb, g);
    if (!dg) { /* an upload, or a free: with no kernel running (what runs finishes first) */
        int rc = c2c_runtime_quiesce(cb->rt, err);
        if (rc) {
            return rc;
        }
        cuda_free_doomed(cb);
        if (!(dg = cuda_geometry(cb, g, err))) {
            return err && err->code ? err->code : C2_EIO;
        }
    }
    return c2c_runtime_feed(cb->rt, dg, ev, n, res, done, arg, err);
}

static int cuda_poll(c2d_backend *b, double wait_s, c2_error *err)
{
    return c2c_runtime_poll(((cuda_backend *)b->impl)->rt, wait_s, err);
}

static void cuda_idle(c2d_backend *b)
{
    cuda_backend *cb = b->impl;
    c2_error err = {0};
    if (!c2c_runtime_broken(cb->rt) && c2c_runtime_quiesce(cb->rt, &err) == 0) {
        cuda_free_doomed(cb);
    }
}

static void cuda_forget(c2d_backend *b, const c2_geometry *g)
{
    cuda_backend *cb = b->impl;
    pthread_mutex_lock(&cb->mu);
    for (int i = 0; i < CUDA_CACHE; i++) {
        if (cb->cache[i].g == g) {
            cb->doomed[cb->ndoomed++] = cb->cache[i].dg; /* at most one slot per g; room for every slot */
            memset(&cb->cache[i], 0, sizeof cb->cache[i]);
        }
    }
    pthread_mutex_unlock(&cb->mu);
}

static const char *cuda_broken(c2d_backend *b)
{
    return c2c_runtime_broken(((cuda_backend *)b->impl)->rt);
}

static void cuda_free(c2d_backend *b)
{
    cuda_backend *cb = b->impl;
    if (!c2c_runtime_broken(cb->rt)) { /* else CUDA calls may wait for ever: leave it to the exit */
        cuda_free_doomed(cb);
        for (int i = 0; i < CUDA_CACHE; i++) {
            c2c_geometry_free(cb->cache[i].dg);
        }
    }
    c2c_runtime_free(cb->rt);
    pthread_mutex_destroy(&cb->mu);
    free(cb);
    b->impl = NULL;
}

int c2d_backend_cuda_init(c2d_backend *b, uint64_t pool_bytes, c2_error *err)
{
    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb) {
        return c2i_fail(err, C2_ENOMEM, "out of memory");
    }
    c2c_runtime_params p;
    memset(&p, 0, sizeof p);
    p.pool_bytes = pool_bytes;
    /* the failure tests' hook (doc/reliability.md): batch N hits a real sticky CUDA error */
    const char *fault = getenv("CHROMA2_TEST_CUDA_FAULT");
    p.fault_run = fault ? (uint32_t)strtoul(fault, NULL, 10) : 0;
    if (!(cb->rt = c2c_runtime_new(&p, err))) {
        free(cb);
        return err && err->code ? err->code : C2_EIO;
    }
    pthread_mutex_init(&cb->mu, NULL);
    memset(b, 0, sizeof *b);
    b->name = "cuda";
    b->impl = cb;
    b->feed = cuda_feed;
    b->poll = cuda_poll;
    b->idle = cuda_idle;
    b->forget = cuda_forget;
    b->broken = cuda_broken;
    b->free = cuda_free;
    c2c_device_name(b->device, sizeof b->device);
    return 0;
}

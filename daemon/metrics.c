/*
 * metrics.c: the optional health and metrics endpoint, NNG's HTTP server
 * on the configured URL (off by default):
 *   GET /metrics  Prometheus text format: counters, rates, queue, memory
 *   GET /healthz  200 while the process serves requests (liveness)
 *   GET /readyz   200 when it accepts events, 503 while draining
 * Handlers run on NNG's threads and read the scheduler's counters under its
 * lock; nothing here blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

#include <nng/supplemental/http/http.h>

struct c2d_metrics {
    nng_http_server *server;
    c2d_sched *sched;
    c2d_backend *backend;
};

static void metrics_reply(nng_aio *aio, uint16_t status, const char *type, const char *body, size_t len)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, status);
    nng_http_res_set_header(res, "Content-Type", type);
    nng_http_res_copy_data(res, body, len);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static c2d_metrics *metrics_of(nng_aio *aio)
{
    return nng_http_handler_get_data((nng_http_handler *)nng_aio_get_input(aio, 1));
}

static void metrics_prometheus(nng_aio *aio)
{
    c2d_metrics *m = metrics_of(aio);
    c2d_counts c;
    c2d_sched_counts(m->sched, &c);
    char buf[4096];
    int n = snprintf(
        buf, sizeof buf,
        "# HELP chroma2_events_total Events by outcome since start.\n"
        "# TYPE chroma2_events_total counter\n"
        "chroma2_events_total{outcome=\"accepted\"} %llu\n"
        "chroma2_events_total{outcome=\"completed\"} %llu\n"
        "chroma2_events_total{outcome=\"failed\"} %llu\n"
        "chroma2_events_total{outcome=\"cancelled\"} %llu\n"
        "chroma2_events_total{outcome=\"expired\"} %llu\n"
        "chroma2_events_total{outcome=\"rejected_busy\"} %llu\n"
        "# HELP chroma2_photons_total Photons propagated since start.\n"
        "# TYPE chroma2_photons_total counter\n"
        "chroma2_photons_total %llu\n"
        "# HELP chroma2_photons_per_second Photons per second over the last stats window.\n"
        "# TYPE chroma2_photons_per_second gauge\n"
        "chroma2_photons_per_second %g\n"
        "# HELP chroma2_ns_per_photon Backend time per photon over the last stats window.\n"
        "# TYPE chroma2_ns_per_photon gauge\n"
        "chroma2_ns_per_photon %g\n"
        "# HELP chroma2_backend_busy_ratio Fraction of the last stats window the backend was running (streaming backends: had events in flight).\n"
        "# TYPE chroma2_backend_busy_ratio gauge\n"
        "chroma2_backend_busy_ratio{backend=\"%s\"} %g\n"
        "# HELP chroma2_reply_busy_ratio Fraction of the last stats window the backend thread spent answering.\n"
        "# TYPE chroma2_reply_busy_ratio gauge\n"
        "chroma2_reply_busy_ratio %g\n"
        "# HELP chroma2_batches_total Backend runs since start (events batched together run as one).\n"
        "# TYPE chroma2_batches_total counter\n"
        "chroma2_batches_total %llu\n"
        "# HELP chroma2_events Events waiting or running now.\n"
        "# TYPE chroma2_events gauge\n"
        "chroma2_events{state=\"queued\"} %llu\n"
        "chroma2_events{state=\"running\"} %llu\n"
        "# HELP chroma2_pool_bytes Memory held by accepted events and by the packed answers of submit_events requests not yet sent, and its limit.\n"
        "# TYPE chroma2_pool_bytes gauge\n"
        "chroma2_pool_bytes %llu\n"
        "chroma2_pool_limit_bytes %llu\n"
        "# HELP chroma2_resident_memory_bytes Resident memory of chroma2d.\n"
        "# TYPE chroma2_resident_memory_bytes gauge\n"
        "chroma2_resident_memory_bytes %llu\n"
        "# HELP chroma2_geometries Geometries loaded.\n"
        "# TYPE chroma2_geometries gauge\n"
        "chroma2_geometries %u\n"
        "# HELP chroma2_ready 1 when chroma2d accepts events.\n"
        "# TYPE chroma2_ready gauge\n"
        "chroma2_ready %d\n",
        (unsigned long long)c.accepted, (unsigned long long)c.completed, (unsigned long long)c.failed,
        (unsigned long long)c.cancelled, (unsigned long long)c.expired, (unsigned long long)c.rejected_busy,
        (unsigned long long)c.photons, c.photons_per_s, c.ns_per_photon, m->backend->name, c.busy,
        c.reply_busy, (unsigned long long)c.batches, (unsigned long long)c.queued, (unsigned long long)c.running, (unsigned long long)c.pool_bytes,
        (unsigned long long)c.pool_limit, (unsigned long long)c.rss_bytes, c.geometries, !c.draining);
    metrics_reply(aio, 200, "text/plain; version=0.0.4", buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
}

static void metrics_healthz(nng_aio *aio) { metrics_reply(aio, 200, "text/plain", "ok\n", 3); }

static void metrics_readyz(nng_aio *aio)
{
    c2d_counts c;
    c2d_sched_counts(metrics_of(aio)->sched, &c);
    if (c.broken[0]) {
        char body[300];
        int n = snprintf(body, sizeof body, "failed: %s\n", c.broken);
        metrics_reply(aio, 503, "text/plain", body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1);
    } else if (c.draining) {
        metrics_reply(aio, 503, "text/plain", "draining\n", 9);
    } else {
        metrics_reply(aio, 200, "text/plain", "ready\n", 6);
    }
}

c2d_metrics *c2d_metrics_start(const char *url, c2d_sched *sched, c2d_backend *backend, c2_error *err)
{
    static const struct {
        const char *path;
        void (*cb)(nng_aio *);
    } routes[] = {{"/metrics", metrics_prometheus}, {"/healthz", metrics_healthz}, {"/readyz", metrics_readyz}};
    c2d_metrics *m = calloc(1, sizeof *m);
    nng_url *u = NULL;
    int rv = m ? nng_url_parse(&u, url) : NNG_ENOMEM;
    if (rv == 0) {
        m->sched = sched;
        m->backend = backend;
        rv = nng_http_server_hold(&m->server, u);
    }
    for (size_t i = 0; rv == 0 && i < sizeof routes / sizeof routes[0]; i++) {
        nng_http_handler *h;
        if ((rv = nng_http_handler_alloc(&h, routes[i].path, routes[i].cb)) == 0) {
            nng_http_handler_set_method(h, "GET");
            nng_http_handler_set_data(h, m, NULL);
            if ((rv = nng_http_server_add_handler(m->server, h)) != 0) {
                nng_http_handler_free(h);
            }
        }
    }
    if (rv == 0) {
        rv = nng_http_server_start(m->server);
    }
    if (u) {
        nng_url_free(u);
    }
    if (rv != 0) {
        snprintf(err->msg, sizeof err->msg, "metrics endpoint %s: %s", url, nng_strerror(rv));
        err->code = C2_EIO;
        if (m && m->server) {
            nng_http_server_release(m->server);
        }
        free(m);
        return NULL;
    }
    c2d_log(C2D_LOG_INFO, "metrics and health on %s/metrics, /healthz, /readyz", url);
    return m;
}

void c2d_metrics_stop(c2d_metrics *m)
{
    if (m) {
        nng_http_server_stop(m->server);
        nng_http_server_release(m->server);
        free(m);
    }
}

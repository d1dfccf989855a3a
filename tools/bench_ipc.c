/*
 * bench_ipc.c: `make bench-ipc`. Starts chroma2d (build/bin/chroma2d, the
 * default detector) on a temporary ipc socket and measures, in one run:
 *   1. ping round trips, p50 and p99;
 *   2. the request path of a 1 M-photon event (pack, send, scan, unpack,
 *      decode, reply), its photons given as columns and as records, against
 *      raw NNG ipc moving the same bytes to a REP socket that only replies;
 *   3. 100-photon events per second from 16 concurrent clients;
 *   4. the time per such event through the daemon against the engine alone;
 *   5. photons/s of 1000-photon events from 16 clients (16, then 48 in
 *      flight each, then 48 as 3 submit_events of 16) against photons/s of one 10 M-photon event, both
 *      through the daemon (the GPU issue's "many small events" benchmark;
 *      run it with --backend cuda there);
 *   6. the raw NNG rate of such small round trips (16 clients, a REP
 *      server with contexts that only answers): the ceiling of 5.
 * Prints a markdown table for doc/benchmarks.md. A benchmark, not a test.
 *
 * Usage: bench-ipc [--backend cpu|cuda|auto]   (default: the daemon's, auto)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "../proto/proto.h"
#include "../tests/util.h"
#include "chroma2/client.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench-ipc: %s: %s\n", what, msg);
    exit(1);
}

/* ---- the raw NNG reference: a REP socket that answers every message ---- */

static void *raw_server(void *arg)
{
    nng_socket *s = arg;
    for (;;) {
        nng_msg *m;
        if (nng_recvmsg(*s, &m, 0) != 0) {
            return NULL;
        }
        nng_msg_clear(m);
        nng_msg_append(m, "ok", 2);
        if (nng_sendmsg(*s, m, 0) != 0) {
            nng_msg_free(m);
        }
    }
}

/* Seconds per round trip of buf through a REQ socket dialled to url. */
static double raw_round_trip(const char *url, const void *buf, size_t len, int reps)
{
    nng_socket s;
    if (nng_req0_open(&s) || nng_dial(s, url, NULL, 0)) {
        die("raw", "cannot dial the reference socket");
    }
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        nng_msg *m;
        nng_msg_alloc(&m, 0);
        nng_msg_append(m, buf, len);
        nng_sendmsg(s, m, 0);
        nng_recvmsg(s, &m, 0);
        nng_msg_free(m);
        best = fmin(best, now_s() - t0);
    }
    nng_close(s);
    return best;
}

enum { CLIENTS = 16 }; /* concurrent clients of the small-event benchmarks */

/* ---- the raw NNG message rate: what small events through any REP server
 * over ipc are bounded by ---- */

enum { RAW_REQ = 200, RAW_REPLY = 3000, RAW_CTXS = 1024 }; /* a 1000-photon source event and its hits */

typedef struct raw_ctx {
    nng_ctx ctx;
    nng_aio *aio;
    int sending;
    atomic_long *done; /* clients: round trips completed */
    atomic_int *busy;  /* clients: contexts with a request out */
    double until;
} raw_ctx;

static void raw_echo_cb(void *p) /* server: each context receives, answers RAW_REPLY bytes, again */
{
    raw_ctx *x = p;
    if (nng_aio_result(x->aio) != 0) {
        return;
    }
    if (!x->sending) {
        nng_msg *m = nng_aio_get_msg(x->aio);
        nng_msg_realloc(m, RAW_REPLY);
        nng_aio_set_msg(x->aio, m);
        x->sending = 1;
        nng_ctx_send(x->ctx, x->aio);
    } else {
        x->sending = 0;
        nng_ctx_recv(x->ctx, x->aio);
    }
}

static void raw_ask_cb(void *p) /* client: each context sends RAW_REQ bytes, receives, again */
{
    raw_ctx *x = p;
    if (nng_aio_result(x->aio) != 0) {
        atomic_fetch_sub(x->busy, 1);
        return;
    }
    if (x->sending) {
        x->sending = 0;
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    nng_msg_free(nng_aio_get_msg(x->aio));
    atomic_fetch_add(x->done, 1);
    nng_msg *m;
    if (now_s() < x->until && nng_msg_alloc(&m, RAW_REQ) == 0) {
        nng_aio_set_msg(x->aio, m);
        x->sending = 1;
        nng_ctx_send(x->ctx, x->aio);
    } else {
        atomic_fetch_sub(x->busy, 1);
    }
}

/* Round trips/s of CLIENTS REQ sockets with window contexts each against a
 * REP server with contexts in another process, for 3 s. */
static double raw_message_rate(const char *url, uint32_t window)
{
    pid_t pid = fork();
    if (pid == 0) {
        nng_socket s;
        static raw_ctx x[RAW_CTXS];
        if (nng_rep0_open(&s) || nng_listen(s, url, NULL, 0)) {
            _exit(1);
        }
        for (int i = 0; i < RAW_CTXS; i++) {
            if (nng_ctx_open(&x[i].ctx, s) == 0 && nng_aio_alloc(&x[i].aio, raw_echo_cb, &x[i]) == 0) {
                nng_ctx_recv(x[i].ctx, x[i].aio);
            }
        }
        pause(); /* until killed */
        _exit(0);
    }
    atomic_long done = 0;
    atomic_int busy = 0;
    nng_socket socks[CLIENTS];
    raw_ctx *x = calloc((size_t)CLIENTS * window, sizeof *x);
    double until = now_s() + 3.0;
    for (int c = 0; c < CLIENTS; c++) {
        int up = nng_req0_open(&socks[c]) == 0;
        for (int k = 0; up && k < 200 && nng_dial(socks[c], url, NULL, 0) != 0; k++) {
            usleep(10000); /* the server is starting */
        }
        for (uint32_t k = 0; up && k < window; k++) {
            raw_ctx *r = &x[c * window + k];
            nng_msg *m;
            r->done = &done;
            r->busy = &busy;
            r->until = until;
            r->sending = 1;
            if (nng_ctx_open(&r->ctx, socks[c]) == 0 && nng_aio_alloc(&r->aio, raw_ask_cb, r) == 0 &&
                nng_msg_alloc(&m, RAW_REQ) == 0) {
                nng_aio_set_msg(r->aio, m);
                atomic_fetch_add(&busy, 1);
                nng_ctx_send(r->ctx, r->aio);
            }
        }
    }
    double t0 = now_s();
    while (now_s() < until) {
        usleep(10000);
    }
    double rate = (double)atomic_load(&done) / (now_s() - t0);
    /* no socket closes with a reply awaited: NNG 1.5.2 can hang there (#1543) */
    for (int k = 0; k < 500 && atomic_load(&busy) > 0; k++) {
        usleep(10000);
    }
    for (int c = 0; c < CLIENTS; c++) {
        nng_close(socks[c]);
    }
    for (uint32_t i = 0; i < CLIENTS * window; i++) {
        nng_aio_free(x[i].aio);
    }
    free(x);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rate;
}

/* ---- many small events from many clients ---- */

typedef struct small_arg {
    const char *url;
    double until;
    uint32_t photons, window, per; /* per event; requests each client keeps in flight; events per request */
    long done;
} small_arg;

static void *small_client(void *p)
{
    small_arg *a = p;
    c2_client *c;
    c2_error err;
    if (c2_client_open(a->url, &c, &err)) {
        die("client", err.msg);
    }
    c2_source src = {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 420.0f, -1, a->photons, 0};
    enum { IN_FLIGHT_MAX = 64 };
    const uint32_t per = a->per, window = a->window * per <= IN_FLIGHT_MAX ? a->window : IN_FLIGHT_MAX / per;
    c2_future *f[IN_FLIGHT_MAX] = {0};
    c2_event ev[IN_FLIGHT_MAX];
    uint64_t id = 0;
    while (now_s() < a->until) {
        for (uint32_t k = 0; k < window; k++) { /* keep window requests of per events in flight */
            c2_future **g = &f[k * per];
            for (uint32_t i = 0; g[0] && i < per; i++) {
                const c2_event_result *r;
                c2_future_wait(g[i], 0);
                a->done += c2_future_result(g[i], &r, &err) == 0;
                c2_future_free(g[i]);
            }
            for (uint32_t i = 0; i < per; i++) {
                ev[i] = (c2_event){.id = id++, .seed = 1, .sources = &src, .nsources = 1, .want = C2_RETURN_HITS};
            }
            if (per == 1 ? c2_client_submit(c, ev, NULL, g, &err) : c2_client_submit_many(c, ev, per, NULL, g, &err)) {
                die("submit", err.msg);
            }
        }
    }
    for (uint32_t i = 0; i < window * per; i++) {
        c2_future_wait(f[i], 0);
        c2_future_free(f[i]);
    }
    c2_client_close(c);
    return NULL;
}

/* A top-level field of the reply to a request of this type, read with
 * the codec's typed readers: a number (returned; -1 when absent), or,
 * with str, a string copied into it. */
static double reply_value(c2_client *c, const char *type, const char *key, char *str, size_t len)
{
    c2_reply *r;
    c2_error err = {0};
    double v = -1;
    if (c2_client_call(c, type, NULL, 0, 0, 5000, &r, &err) != 0) {
        die(type, err.msg);
    }
    size_t n;
    const void *data = c2_reply_data(r, &n);
    c2p_msg m;
    c2p_map map;
    c2p_err perr;
    if (c2p_parse_reply(&m, data, n, &perr) == 0) {
        if (c2p_map_open_body(&map, &m, type, &perr) == 0) {
            if (str) {
                c2p_get_str(&map, key, 0, str, len, &perr);
            } else {
                c2p_get_f64(&map, key, 0, -1e300, 1e300, &v, &perr);
            }
        }
        c2p_msg_free(&m);
    }
    c2_reply_free(r);
    return v;
}

/* Runs 16 clients submitting n-photon events, window requests of per
 * events in flight each, for 5 s; returns photons/s, sets events/s and the
 * daemon's batches and reply_busy share over the run. */
static double small_events(c2_client *c, const char *url, uint32_t n, uint32_t window, uint32_t per,
                           double *events_per_s, double *per_batch, double *reply_busy)
{
    fprintf(stderr, "bench-ipc: %u-photon events, 16 clients x %u requests of %u in flight\n", n, window, per);
    double b0 = reply_value(c, "stats", "batches", NULL, 0);
    small_arg a[CLIENTS];
    pthread_t th[CLIENTS];
    double t0 = now_s();
    for (int i = 0; i < CLIENTS; i++) {
        a[i] = (small_arg){url, t0 + 5.0, n, window, per, 0};
        pthread_create(&th[i], NULL, small_client, &a[i]);
    }
    long done = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        done += a[i].done;
    }
    *events_per_s = (double)done / (now_s() - t0);
    *per_batch = (double)done / (reply_value(c, "stats", "batches", NULL, 0) - b0);
    *reply_busy = reply_value(c, "stats", "reply_busy", NULL, 0); /* the last stats interval's */
    return *events_per_s * n;
}

/* photons/s of one event of n photons from 10,000 point sources, best of 3 */
static double large_event(c2_client *c, uint32_t n)
{
    enum { NSRC = 10000 };
    c2_source *src = calloc(NSRC, sizeof *src);
    c2_photon *pos = c2t_ball_photons(NSRC, 5000.0f);
    for (uint32_t i = 0; i < NSRC; i++) {
        src[i] = (c2_source){{pos[i].pos[0], pos[i].pos[1], pos[i].pos[2]}, 0, {0, 0, 1}, -1.0f, 400.0f, -1,
                             n / NSRC + (i < n % NSRC), 0};
    }
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        c2_event ev = {.id = (uint64_t)rep, .seed = 1, .sources = src, .nsources = NSRC,
                       .want = C2_RETURN_HITS | C2_RETURN_CHANNELS};
        c2_future *f;
        const c2_event_result *r;
        c2_error err = {0};
        double t0 = now_s();
        if (c2_client_submit(c, &ev, NULL, &f, &err) || c2_future_wait(f, 600000) ||
            c2_future_result(f, &r, &err)) {
            die("large event", err.msg);
        }
        double t = now_s() - t0;
        best = t < best ? t : best;
        c2_future_free(f);
    }
    free(pos);
    free(src);
    return n / best;
}

int main(int argc, char **argv)
{
    const char *backend = "auto";
    if (argc == 3 && !strcmp(argv[1], "--backend")) {
        backend = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench-ipc [--backend cpu|cuda|auto]\n");
        return 2;
    }
    char path[64], url[80], raw_url[80];
    snprintf(path, sizeof path, "/tmp/c2-bench-%d.sock", (int)getpid());
    snprintf(url, sizeof url, "ipc://%s", path);
    snprintf(raw_url, sizeof raw_url, "ipc:///tmp/c2-bench-raw-%d.sock", (int)getpid());
    /* 6. first, while no NNG thread exists yet to be lost by its fork: the
     * raw message rate of small round trips */
    double raw_rate = raw_message_rate(raw_url, 16);
    unlink(raw_url + strlen("ipc://"));
    pid_t daemon = fork();
    if (daemon == 0) {
        execl("build/bin/chroma2d", "chroma2d", "--listen", url, "--log-level", "warn", "--backend", backend,
              (char *)NULL);
        _exit(127);
    }
    c2_client *c;
    c2_error err = {0};
    if (c2_client_open(url, &c, &err)) {
        die("client", err.msg);
    }
    int up = 0;
    for (int i = 0; i < 300 && !up; i++) {
        up = c2_client_ping(c, 200, NULL, &err) == 0;
    }
    if (!up) {
        die("chroma2d", "did not start (run from the repository root after make)");
    }

    fprintf(stderr, "bench-ipc: pings, then a 1 M-photon request\n");
    /* 1. ping */
    enum { PINGS = 5000 };
    static double rtt[PINGS];
    for (int i = 0; i < PINGS; i++) {
        c2_client_ping(c, 2000, &rtt[i], &err);
    }
    qsort(rtt, PINGS, sizeof rtt[0], cmp_double);

    /* 2. a 1 M-photon request whose last photon has a direction of length
     * 2: the daemon receives, scans, decodes and validates all of it, then
     * refuses it (naming photon 999999) instead of running it */
    const uint32_t n = 1000000;
    c2_photon *ph = c2t_ball_photons(n, 5000.0f);
    ph[n - 1].dir[0] = ph[n - 1].dir[1] = 0.0f;
    ph[n - 1].dir[2] = 2.0f;
    c2p_event pe;
    memset(&pe, 0, sizeof pe);
    strcpy(pe.geometry, "default");
    pe.want = C2_RETURN_HITS;
    pe.max_steps = 1000;
    pe.photons = ph;
    pe.nphotons = n;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_event(&pk, 1, &pe);
    c2_submit_opts o = {0};
    /* the photons as columns (numpy's and the Python client's form, packed
     * as they are) and as c2_photon records (gathered into columns while
     * packing): the same bytes on the wire */
    float *colbuf = malloc((size_t)n * 48);
    c2_photon_columns cols = {colbuf, colbuf + 3 * (size_t)n, colbuf + 6 * (size_t)n, colbuf + 7 * (size_t)n,
                              colbuf + 10 * (size_t)n, colbuf + 11 * (size_t)n};
    for (uint32_t i = 0; i < n; i++) {
        memcpy(colbuf + 3 * (size_t)i, ph[i].pos, 12);
        memcpy(colbuf + 3 * ((size_t)n + i), ph[i].dir, 12);
        colbuf[6 * (size_t)n + i] = ph[i].wavelength;
        memcpy(colbuf + 7 * (size_t)n + 3 * (size_t)i, ph[i].pol, 12);
        colbuf[10 * (size_t)n + i] = ph[i].time;
        colbuf[11 * (size_t)n + i] = ph[i].weight;
    }
    c2_event as_cols = {.id = 0, .seed = 1, .nphotons = n, .columns = cols, .want = C2_RETURN_HITS};
    c2_event as_recs = {.id = 0, .seed = 1, .photons = ph, .nphotons = n, .want = C2_RETURN_HITS};
    const c2_event *forms[2] = {&as_cols, &as_recs};
    double best[2] = {1e30, 1e30};
    for (int i = 0; i < 10; i++) {
        double t0 = now_s();
        c2_future *f;
        const c2_event_result *r;
        c2_client_submit(c, forms[i % 2], &o, &f, &err);
        c2_future_wait(f, 0);
        if (c2_future_result(f, &r, &err) != C2_REMOTE_BAD_REQUEST || !strstr(err.msg, "photon 999999")) {
            die("submit", "expected BAD_REQUEST naming photon 999999");
        }
        c2_future_free(f);
        best[i % 2] = fmin(best[i % 2], now_s() - t0);
    }
    free(colbuf);
    nng_socket raw;
    pthread_t raw_th;
    if (nng_rep0_open(&raw) || nng_socket_set_size(raw, NNG_OPT_RECVMAXSZ, 0) || nng_listen(raw, raw_url, NULL, 0)) {
        die("raw", "cannot listen");
    }
    pthread_create(&raw_th, NULL, raw_server, &raw);
    double raw_best = raw_round_trip(raw_url, sb.data, sb.size, 5);
    /* the same ping through raw NNG, for scale */
    static double raw_rtt[PINGS];
    {
        nng_socket rs;
        if (nng_req0_open(&rs) || nng_dial(rs, raw_url, NULL, 0)) {
            die("raw", "cannot dial the reference socket");
        }
        for (int i = 0; i < PINGS; i++) {
            double t = now_s();
            nng_msg *m;
            nng_msg_alloc(&m, 0);
            nng_msg_append(m, "ping", 4);
            nng_sendmsg(rs, m, 0);
            nng_recvmsg(rs, &m, 0);
            nng_msg_free(m);
            raw_rtt[i] = now_s() - t;
        }
        nng_close(rs);
        qsort(raw_rtt, PINGS, sizeof raw_rtt[0], cmp_double);
    }
    nng_close(raw);
    pthread_join(raw_th, NULL);

    /* 3. 100-photon events from 16 clients for 5 s */
    double small_rate = 0, kilo_rate = 0, deep_rate = 0, many_rate = 0, per_batch[4], reply_busy[4];
    small_events(c, url, 100, 4, 1, &small_rate, &per_batch[0], &reply_busy[0]);
    /* 5. 1000-photon events from 16 clients, 16 in flight each, then 48
     * (768 of the daemon's default 1024: how far the rate is latency-bound),
     * then 48 as 3 requests of 16 events (c2_client_submit_many); one large
     * event */
    double kilo_photons = small_events(c, url, 1000, 16, 1, &kilo_rate, &per_batch[1], &reply_busy[1]);
    double kilo_busy = reply_value(c, "stats", "backend_busy", NULL, 0); /* the last stats interval's */
    double deep_photons = small_events(c, url, 1000, 48, 1, &deep_rate, &per_batch[2], &reply_busy[2]);
    double deep_busy = reply_value(c, "stats", "backend_busy", NULL, 0);
    double many_photons = small_events(c, url, 1000, 3, 16, &many_rate, &per_batch[3], &reply_busy[3]);
    double many_busy = reply_value(c, "stats", "backend_busy", NULL, 0);
    fprintf(stderr, "bench-ipc: one 10 M-photon event\n");
    double large_photons = large_event(c, 10000000u);
    char hello_backend[64] = "";
    reply_value(c, "status", "backend", hello_backend, sizeof hello_backend);
    /* 4. the engine alone on 100-photon events, batched as the daemon does */
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_geometry *g = c2_detector_build(&p, NULL, &err);
    enum { NSMALL = 2000 };
    c2_source src = {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 420.0f, -1, 100, 0};
    c2_event *evs = calloc(NSMALL, sizeof *evs);
    c2_event_result *res = calloc(NSMALL, sizeof *res);
    for (int i = 0; i < NSMALL; i++) {
        evs[i] = (c2_event){.id = (uint64_t)i, .seed = 1, .sources = &src, .nsources = 1, .want = C2_RETURN_HITS};
    }
    double t0 = now_s();
    c2_engine_run(g, evs, NSMALL, res, 0, &err);
    double engine_per_event = (now_s() - t0) / NSMALL;
    for (int i = 0; i < NSMALL; i++) {
        c2_event_result_free(&res[i]);
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("| measurement | value |\n|---|---|\n");
    printf("| ping round trip p50 / p99 (%d pings) | %.1f us / %.1f us |\n", PINGS, 1e6 * rtt[PINGS / 2],
           1e6 * rtt[PINGS * 99 / 100]);
    printf("| raw NNG ipc REQ/REP round trip p50 / p99, same run | %.1f us / %.1f us |\n", 1e6 * raw_rtt[PINGS / 2],
           1e6 * raw_rtt[PINGS * 99 / 100]);
    printf("| 1 M-photon submit_event, %.1f MB, photons as columns: request path to the daemon's reply | %.1f ms, "
           "%.0f MB/s |\n", sb.size / 1e6, 1e3 * best[0], sb.size / 1e6 / best[0]);
    printf("| the same event, photons as c2_photon records | %.1f ms, %.0f MB/s |\n", 1e3 * best[1],
           sb.size / 1e6 / best[1]);
    printf("| the same bytes over raw NNG ipc to a REP socket that only replies | %.1f ms, %.0f MB/s |\n",
           1e3 * raw_best, sb.size / 1e6 / raw_best);
    printf("| chroma2d request path / raw NNG: columns, records | %.0f%%, %.0f%% |\n", 100.0 * raw_best / best[0],
           100.0 * raw_best / best[1]);
    printf("| 100-photon events/s, %d clients x 4 in flight (%ld cores); events per batch | %.0f; %.1f |\n", CLIENTS,
           cores, small_rate, per_batch[0]);
    printf("| time per 100-photon event: through chroma2d / engine alone | %.1f us / %.1f us |\n",
           1e6 / small_rate, 1e6 * engine_per_event);
    printf("| overhead per event over the engine alone | %.1f us |\n", 1e6 / small_rate - 1e6 * engine_per_event);
    printf("| backend | %s |\n", hello_backend);
    printf("| 1000-photon events, %d clients x 16 in flight: events/s, photons/s | %.0f, %.3g |\n", CLIENTS,
           kilo_rate, kilo_photons);
    printf("| backend running / answering while they ran (the daemon's last stats interval); events per batch | "
           "%.0f%% / %.0f%%; %.1f |\n", 100.0 * kilo_busy, 100.0 * reply_busy[1], per_batch[1]);
    printf("| one 10 M-photon event (10,000 sources), hits returned: photons/s | %.3g |\n", large_photons);
    printf("| the same, 16 clients x 48 in flight: events/s, photons/s; running / answering; events per batch | "
           "%.0f, %.3g; %.0f%% / %.0f%%; %.1f |\n", deep_rate, deep_photons, 100.0 * deep_busy, 100.0 * reply_busy[2],
           per_batch[2]);
    printf("| the same as 3 requests of 16 events each in flight (submit_events): events/s, photons/s; running / "
           "answering; events per batch | %.0f, %.3g; %.0f%% / %.0f%%; %.1f |\n", many_rate, many_photons,
           100.0 * many_busy, 100.0 * reply_busy[3], per_batch[3]);
    printf("| raw NNG ipc REQ/REP, %d clients x 16 in flight, %d-byte requests, %d-byte replies from a REP "
           "server with contexts: round trips/s | %.0f |\n", CLIENTS, RAW_REQ, RAW_REPLY, raw_rate);
    printf("| many small events / one large event: 16, 48 in flight; 48 as 3 x 16 | %.0f%%, %.0f%%; %.0f%% |\n",
           100.0 * kilo_photons / large_photons, 100.0 * deep_photons / large_photons,
           100.0 * many_photons / large_photons);

    c2_client_close(c);
    kill(daemon, SIGTERM);
    waitpid(daemon, NULL, 0);
    msgpack_sbuffer_destroy(&sb);
    free(ph);
    free(evs);
    free(res);
    c2_geometry_free(g);
    return 0;
}

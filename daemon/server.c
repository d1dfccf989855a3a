/*
 * server.c: the NNG side of chroma2d. A REP socket with a pool of contexts;
 * each context is one work item, a flat state machine driven by its aio
 * (after nng's demo/async/server.c):
 *
 *   RECV  a request arrived: parse it; answer at once (SEND), or hand a
 *         submit_event to the scheduler or a load_geometry to the builder
 *         thread (WAIT), which answers it later
 *   WAIT  the scheduler or the builder owns the item until c2d_work_reply,
 *         which queues the reply for the sender threads
 *   SEND  the reply went out (or the peer is gone): receive again
 *
 * The pool size caps requests held at once; it is the scheduler's queue
 * limit plus room for control requests, so a full queue still answers
 * status and ping. Callbacks run on NNG's threads and never block.
 *
 * Connections that close are reported by nng_pipe_notify with the socket
 * lock held, so the callback only queues the pipe id and wakes the libuv
 * loop, which cancels that connection's events.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "../proto/nng_packer.h"
#include "daemon.h"

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#define SERVER_SPARE_CONTEXTS 64
#define SERVER_SENDERS 4 /* threads that send replies made by the scheduler's threads */

enum { W_RECV, W_WAIT, W_SEND };

/* An item of a server_queue: the first member of what is queued. */
typedef struct server_item {
    struct server_item *next;
} server_item;

/* A FIFO with threads of its own (the reply senders, the geometry
 * builder): any thread pushes, the queue's threads take items oldest first
 * and call fn on each. A stopped queue refuses pushes; its threads take
 * what is left (fn is told the queue stops), then end. */
typedef struct server_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    server_item *head, **tail;
    int stop;                /* under mu */
    int nthreads;            /* written once, before anything is pushed */
    pthread_t threads[SERVER_SENDERS];
    struct c2d_server *srv;
    void (*fn)(struct c2d_server *srv, server_item *it, int stopping);
} server_queue;

typedef struct c2d_work {
    server_item item; /* in the senders' queue, first: a queued item is its work */
    int state;
    nng_aio *aio;
    nng_msg *reply;    /* queued for a sender */
    size_t reply_len;  /* of the reply being sent */
    nng_ctx ctx;
    struct c2d_server *srv;
} c2d_work;

typedef struct server_listener {
    const char *url;
    nng_listener l;
    int up;
} server_listener;

struct c2d_server {
    const c2d_config *cfg;
    c2d_sched *sched;
    c2d_backend *backend;
    nng_socket sock;
    server_listener listeners[C2D_MAX_LISTEN];
    int nlisteners;
    c2d_work *works;
    uint32_t nworks;
    uv_async_t closed_async; /* wakes the loop when connections closed */
    pthread_mutex_t closed_mu;
    uint32_t *closed;
    uint32_t nclosed, capclosed;
    atomic_uint sending;                     /* replies queued for the senders or handed to NNG, not yet sent */
    atomic_uint_fast64_t linger_ns;          /* when the large replies NNG took are written, at the latest
                                                (server_linger); a stop waits for it */
    atomic_int shutdown_requested;           /* set on an NNG thread, read by the loop */
    char lost[256];                          /* a listener that could not be re-created: written once by */
    atomic_int lost_set;                     /* the checker thread before lost_set (read without a lock) */
    atomic_uint_fast64_t shutdown_timeout_ms; /* 0: the configured drain timeout */
    double t_start;
    server_queue builds; /* waiting loads, for the builder thread: seconds of BVH work must not hold an NNG thread */
    /* Senders: a REP send writes to the socket when the connection is idle,
     * on the calling thread; done by the backend thread it was most of its
     * time when it answered many small events. */
    server_queue sends; /* replies made by the scheduler's and builder's threads */
    pthread_t checker; /* the listener self-check, off the loop thread */
    pthread_mutex_t check_mu;
    pthread_cond_t check_cv;
    int checking, check_stop;
};

static uint64_t server_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static double server_now(void) { return 1e-9 * (double)server_now_ns(); }

void c2d_packer_init(msgpack_packer *pk, nng_msg *msg) { c2p_nng_packer_init(pk, msg); }

nng_msg *c2d_error_msg(uint64_t id, c2p_type type, int code, const char *message)
{
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, 0) != 0) {
        return NULL;
    }
    msgpack_packer pk;
    c2d_packer_init(&pk, m);
    c2p_pack_error(&pk, id, type, code, message);
    if (c2p_nng_failed(m)) {
        nng_msg_free(m);
        return NULL;
    }
    return m;
}

/* A REP send completes when NNG hands the message to its connection (once
 * the one before on that connection is written), not when the transport
 * has written it, and NNG has no linger: closing the socket drops what is
 * unwritten. So a stop waits, after the last send completed, until every
 * large reply could have been written since its hand-over at
 * SERVER_LINGER_BPS, at most SERVER_LINGER_MAX_NS: a slow reader's pace
 * (clients decode results at 400-600 MB/s, but one under a sanitizer or on
 * a loaded machine lost a 20 MB reply at 100 MB/s). Connections write in
 * parallel, so the latest end counts, not a sum. */
#define SERVER_LINGER_BPS 20e6
#define SERVER_LINGER_MIN 65536
#define SERVER_LINGER_MAX_NS 10000000000ull

static void server_linger(c2d_server *srv, size_t len)
{
    if (len < SERVER_LINGER_MIN) {
        return; /* the stop's fixed pause covers small ones */
    }
    const uint64_t end = server_now_ns() + (uint64_t)(1e9 * (double)len / SERVER_LINGER_BPS);
    uint64_t cur = atomic_load(&srv->linger_ns);
    while (cur < end && !atomic_compare_exchange_weak(&srv->linger_ns, &cur, end)) {
    }
}

/* Sends w's reply (NULL: none could be made, receive again). */
static void server_send(c2d_work *w, nng_msg *msg)
{
    if (!msg) { /* no memory even for an error: drop it, keep serving */
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    w->state = W_SEND;
    atomic_fetch_add(&w->srv->sending, 1);
    w->reply_len = nng_msg_len(msg);
    nng_aio_set_msg(w->aio, msg);
    nng_ctx_send(w->ctx, w->aio);
}

static void *server_queue_main(void *arg)
{
    server_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop) {
            pthread_cond_wait(&q->cv, &q->mu);
        }
        server_item *it = q->head;
        if (!it) {
            break; /* stopping, and nothing left */
        }
        if (!(q->head = it->next)) {
            q->tail = &q->head;
        }
        const int stopping = q->stop;
        pthread_mutex_unlock(&q->mu);
        q->fn(q->srv, it, stopping);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Starts up to n threads (at most SERVER_SENDERS) on q; returns how many. */
static int server_queue_start(server_queue *q, struct c2d_server *srv,
                              void (*fn)(struct c2d_server *, server_item *, int), int n)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->tail = &q->head;
    q->srv = srv;
    q->fn = fn;
    while (q->nthreads < n && q->nthreads < SERVER_SENDERS &&
           pthread_create(&q->threads[q->nthreads], NULL, server_queue_main, q) == 0) {
        q->nthreads++;
    }
    return q->nthreads;
}

/* Queues it; 0, or -1 when q has no threads or stops (the caller keeps it). */
static int server_queue_push(server_queue *q, server_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&q->mu);
    const int ok = q->nthreads && !q->stop; /* decided under the lock: a stopped queue takes nothing */
    if (ok) {
        *q->tail = it;
        q->tail = &it->next;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return ok ? 0 : -1;
}

/* Refuses further pushes and joins the threads, which take what is left. */
static void server_queue_stop(server_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthreads; i++) {
        pthread_join(q->threads[i], NULL);
    }
}

static void server_queue_destroy(server_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
}

/* A sender: sends a queued reply (the rest too when stopping). */
static void server_send_queued(struct c2d_server *srv, server_item *it, int stopping)
{
    (void)stopping;
    c2d_work *w = (c2d_work *)it;
    nng_msg *m = w->reply;
    w->reply = NULL;
    server_send(w, m);
    atomic_fetch_sub(&srv->sending, 1); /* counted as sending since it was queued */
}

void c2d_work_reply(c2d_work *w, nng_msg *msg)
{
    c2d_server *srv = w->srv;
    if (msg) {
        atomic_fetch_add(&srv->sending, 1); /* a stop waits for it from now */
        w->reply = msg;
        if (server_queue_push(&srv->sends, &w->item) == 0) {
            return;
        }
        w->reply = NULL;
        atomic_fetch_sub(&srv->sending, 1);
    }
    server_send(w, msg); /* nothing to send, or no senders (any more): on this thread */
}

/* out, or NULL with err set when its packing ran out of memory (the
 * caller then answers with the error). */
static nng_msg *server_whole(nng_msg *out, c2p_err *err)
{
    if (out && c2p_nng_failed(out)) {
        nng_msg_free(out);
        c2i_fail(err, C2P_INTERNAL, "out of memory for the reply");
        return NULL;
    }
    return out;
}

/* ---- request handlers: each returns the reply, or NULL when the
 * scheduler took the request ---- */

static nng_msg *server_reply_begin(msgpack_packer *pk, const c2p_msg *req, uint32_t n)
{
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, 0) != 0) {
        return NULL;
    }
    c2d_packer_init(pk, m);
    c2p_pack_reply_head(pk, req->id, req->type, n);
    return m;
}

static void server_pack_geometries(msgpack_packer *pk, c2d_server *srv)
{
    c2p_pack_key(pk, "geometries");
    c2d_sched_pack_geometries(srv->sched, pk);
}

/* Requests without fields: refuse any key beyond the envelope. */
static int server_no_fields(const c2p_msg *req, c2p_err *err)
{
    c2p_map m;
    int rc = c2p_map_open_body(&m, req, c2p_type_name(req->type), err);
    return rc ? rc : c2p_map_done(&m, err);
}

static nng_msg *server_hello(c2d_server *srv, const c2p_msg *req, c2p_err *err)
{
    c2p_map m;
    char client[128] = "";
    int rc = c2p_map_open_body(&m, req, "hello", err);
    const msgpack_object *v = c2p_map_get(&m, "versions");
    if (rc || (rc = c2p_get_str(&m, "client", 0, client, sizeof client, err)) || (rc = c2p_map_done(&m, err))) {
        return NULL;
    }
    int common = 0;
    for (uint32_t i = 0; v && v->type == MSGPACK_OBJECT_ARRAY && i < v->via.array.size; i++) {
        const msgpack_object *x = &v->via.array.ptr[i];
        common |= x->type == MSGPACK_OBJECT_POSITIVE_INTEGER && x->via.u64 == C2P_PROTOCOL_VERSION;
    }
    if (!v || v->type != MSGPACK_OBJECT_ARRAY) {
        c2i_fail(err, C2P_BAD_REQUEST, "hello: 'versions' (an array of unsigned integers) is required");
        return NULL;
    }
    if (!common) {
        c2i_fail(err, C2P_VERSION, "no common protocol version: this daemon speaks %d", C2P_PROTOCOL_VERSION);
        return NULL;
    }
    c2d_log(C2D_LOG_DEBUG, "hello from '%s'", client);
    msgpack_packer pk;
    nng_msg *out = server_reply_begin(&pk, req, 6);
    if (!out) {
        return NULL;
    }
    char server[64];
    snprintf(server, sizeof server, "chroma2d %s", C2D_VERSION);
    c2p_pack_kv_u64(&pk, "version", C2P_PROTOCOL_VERSION);
    c2p_pack_kv_str(&pk, "server", server);
    c2p_pack_kv_str(&pk, "backend", srv->backend->name);
    c2p_pack_key(&pk, "devices");
    msgpack_pack_array(&pk, 1);
    c2p_pack_key(&pk, srv->backend->device);
    c2p_pack_key(&pk, "limits");
    msgpack_pack_map(&pk, 7);
    c2p_pack_kv_u64(&pk, "max_message_bytes", srv->cfg->max_message_bytes);
    c2p_pack_kv_u64(&pk, "max_photons_per_event", srv->cfg->max_photons);
    c2p_pack_kv_u64(&pk, "max_events_queued", srv->cfg->max_queued);
    c2p_pack_kv_u64(&pk, "max_events_per_client", srv->cfg->max_per_client);
    c2p_pack_kv_u64(&pk, "max_bytes_per_client", srv->cfg->max_client_bytes);
    c2p_pack_kv_u64(&pk, "max_geometry_bytes", srv->cfg->max_message_bytes);
    c2p_pack_kv_u64(&pk, "max_events_per_request", C2P_MAX_GROUP);
    server_pack_geometries(&pk, srv);
    return out;
}

static nng_msg *server_status(c2d_server *srv, const c2p_msg *req)
{
    c2d_counts c;
    c2d_sched_counts(srv->sched, &c);
    msgpack_packer pk;
    nng_msg *out = server_reply_begin(&pk, req, 8);
    if (!out) {
        return NULL;
    }
    c2p_pack_kv_bool(&pk, "ready", !c.draining);
    c2p_pack_kv_str(&pk, "state", c.broken[0] ? "failed" : c.draining ? "draining" : "serving");
    c2p_pack_kv_str(&pk, "reason", c.broken[0]  ? c.broken
                                   : c.draining ? "draining: accepted events finish, new ones are refused"
                                                : "");
    c2p_pack_kv_f64(&pk, "uptime_s", server_now() - srv->t_start);
    c2p_pack_kv_str(&pk, "backend", srv->backend->name);
    c2p_pack_kv_u64(&pk, "queued", c.queued);
    c2p_pack_kv_u64(&pk, "running", c.running);
    c2p_pack_kv_u64(&pk, "geometries", c.geometries);
    return out;
}

static nng_msg *server_stats(c2d_server *srv, const c2p_msg *req)
{
    c2d_counts c;
    c2d_sched_counts(srv->sched, &c);
    msgpack_packer pk;
    nng_msg *out = server_reply_begin(&pk, req, 12);
    if (!out) {
        return NULL;
    }
    c2p_pack_key(&pk, "events");
    msgpack_pack_map(&pk, 6);
    c2p_pack_kv_u64(&pk, "accepted", c.accepted);
    c2p_pack_kv_u64(&pk, "completed", c.completed);
    c2p_pack_kv_u64(&pk, "failed", c.failed);
    c2p_pack_kv_u64(&pk, "cancelled", c.cancelled);
    c2p_pack_kv_u64(&pk, "expired", c.expired);
    c2p_pack_kv_u64(&pk, "rejected_busy", c.rejected_busy);
    c2p_pack_kv_u64(&pk, "photons", c.photons);
    c2p_pack_kv_f64(&pk, "photons_per_s", c.photons_per_s);
    c2p_pack_kv_f64(&pk, "ns_per_photon", c.ns_per_photon);
    c2p_pack_kv_u64(&pk, "queued", c.queued);
    c2p_pack_kv_u64(&pk, "running", c.running);
    c2p_pack_kv_f64(&pk, "backend_busy", c.busy);
    c2p_pack_kv_f64(&pk, "reply_busy", c.reply_busy);
    c2p_pack_kv_u64(&pk, "batches", c.batches);
    c2p_pack_kv_u64(&pk, "rss_bytes", c.rss_bytes);
    c2p_pack_kv_u64(&pk, "pool_bytes", c.pool_bytes);
    c2p_pack_kv_u64(&pk, "pool_limit_bytes", c.pool_limit);
    return out;
}

/* The peer's uid (ipc), or C2D_UID_UNKNOWN. */
static uint64_t server_peer_uid(nng_pipe p)
{
    uint64_t uid;
    return nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0 ? uid : C2D_UID_UNKNOWN;
}

static nng_msg *server_cancel(c2d_server *srv, const c2p_msg *req, nng_pipe p, c2p_err *err)
{
    c2p_map m;
    uint64_t ticket = 0, request = 0;
    int rc = c2p_map_open_body(&m, req, "cancel", err);
    if (rc || (rc = c2p_get_u64(&m, "ticket", 0, 1, UINT64_MAX, &ticket, err)) ||
        (rc = c2p_get_u64(&m, "request", 0, 0, UINT64_MAX, &request, err)) || (rc = c2p_map_done(&m, err))) {
        return NULL;
    }
    if (!ticket && !c2p_map_get(&m, "request")) {
        c2i_fail(err, C2P_BAD_REQUEST, "cancel: give 'ticket' or 'request'");
        return NULL;
    }
    int cancelled = c2d_sched_cancel(srv->sched, ticket, (uint32_t)nng_pipe_id(p), server_peer_uid(p), request);
    if (cancelled < 0) {
        c2i_fail(err, C2P_NOT_FOUND, "cancel: ticket %llu is another user's event", (unsigned long long)ticket);
        return NULL;
    }
    msgpack_packer pk;
    nng_msg *out = server_reply_begin(&pk, req, 1);
    if (out) {
        c2p_pack_kv_bool(&pk, "cancelled", cancelled);
    }
    return out;
}

static nng_msg *server_shutdown(c2d_server *srv, const c2p_msg *req, c2p_err *err)
{
    c2p_map m;
    uint64_t timeout = 0;
    int rc = c2p_map_open_body(&m, req, "shutdown", err);
    if (rc || (rc = c2p_get_u64(&m, "timeout_ms", 0, 0, UINT32_MAX, &timeout, err)) ||
        (rc = c2p_map_done(&m, err))) {
        return NULL;
    }
    c2d_log(C2D_LOG_INFO, "shutdown requested by a client");
    c2d_sched_drain(srv->sched);
    atomic_store(&srv->shutdown_timeout_ms, timeout);
    atomic_store(&srv->shutdown_requested, 1);
    msgpack_packer pk;
    return server_reply_begin(&pk, req, 0);
}

/* Builds the geometry (its BVH too) on this NNG thread: seconds for
 * millions of triangles, during which this one context is busy. */
static nng_msg *server_load_geometry(c2d_server *srv, const c2p_msg *req, c2p_err *err)
{
    c2d_geometry *g = calloc(1, sizeof *g);
    int replace = 0;
    c2_build_stats st;
    if (!g) {
        c2i_fail(err, C2P_TOO_LARGE, "load_geometry: no memory");
        return NULL;
    }
    if (c2p_decode_geometry(req, g->name, &replace, &g->g, &st, err)) {
        free(g);
        return NULL;
    }
    c2d_geometry_digest(g);
    char name[C2P_NAME_MAX + 1], digest[65];
    memcpy(name, g->name, sizeof name);
    memcpy(digest, g->digest, sizeof digest);
    uint32_t ntri = c2_geometry_ntriangles(g->g), nch = c2_geometry_nchannels(g->g);
    if (c2d_sched_add_geometry(srv->sched, g, replace, err)) {
        c2_geometry_free(g->g);
        free(g);
        return NULL;
    }
    c2d_log(C2D_LOG_INFO, "geometry '%s' loaded: %u triangles, %u channels, BVH in %.2f s, digest %s", name, ntri,
            nch, st.seconds, digest);
    msgpack_packer pk;
    nng_msg *out = server_reply_begin(&pk, req, 5);
    if (out) {
        c2p_pack_kv_str(&pk, "name", name);
        c2p_pack_kv_str(&pk, "digest", digest);
        c2p_pack_kv_u64(&pk, "triangles", ntri);
        c2p_pack_kv_u64(&pk, "channels", nch);
        c2p_pack_kv_f64(&pk, "build_s", st.seconds);
    }
    return out;
}

/* ---- the geometry builder thread ---- */

/* A load_geometry request waiting for the builder: it owns msg and req,
 * the request as parsed from msg on the NNG thread (it points into msg). */
struct server_build {
    server_item item; /* in the builder's queue, first */
    c2d_work *w;
    nng_msg *msg;
    c2p_msg req;
};

/* Decodes, builds and answers one load (on the builder thread); refuse:
 * answers SHUTTING_DOWN instead. */
static void server_build_one(c2d_server *srv, struct server_build *b, int refuse)
{
    c2p_err err = {0};
    nng_msg *out = NULL;
    if (refuse) {
        c2i_fail(&err, C2P_SHUTTING_DOWN, "the daemon stopped before this geometry was built");
    } else {
        out = server_load_geometry(srv, &b->req, &err);
    }
    out = server_whole(out, &err);
    if (!out) {
        c2d_log(C2D_LOG_INFO, "request %llu (load_geometry): %s: %s", (unsigned long long)b->req.id,
                c2p_error_name(err.code), err.msg);
        out = c2d_error_msg(b->req.id, C2P_T_LOAD_GEOMETRY, err.code ? err.code : C2P_INTERNAL, err.msg);
    }
    c2p_msg_free(&b->req);
    nng_msg_free(b->msg);
    c2d_work_reply(b->w, out);
    free(b);
}

/* The builder: builds and answers a queued load (refuses those still
 * waiting when the queue stops). */
static void server_build_queued(c2d_server *srv, server_item *it, int stopping)
{
    server_build_one(srv, (struct server_build *)it, stopping);
}

/* Hands a parsed load_geometry request (req and its msg) to the builder;
 * 0 when it took them (req is then left empty). The work item waits until
 * the builder answers. */
static int server_build_later(c2d_server *srv, c2d_work *w, nng_msg *msg, c2p_msg *req)
{
    struct server_build *b = malloc(sizeof *b);
    if (!b) {
        return -1;
    }
    b->w = w;
    b->msg = msg;
    w->state = W_WAIT;
    c2p_msg_move(&b->req, req);
    if (server_queue_push(&srv->builds, &b->item)) {
        c2p_msg_move(req, &b->req); /* the caller's again */
        w->state = W_RECV;
        free(b);
        return -1;
    }
    return 0;
}

static nng_msg *server_unload_geometry(c2d_server *srv, const c2p_msg *req, c2p_err *err)
{
    c2p_map m;
    char name[C2P_NAME_MAX + 1];
    int rc = c2p_map_open_body(&m, req, "unload_geometry", err);
    if (rc || (rc = c2p_get_str(&m, "name", 1, name, sizeof name, err)) || (rc = c2p_map_done(&m, err)) ||
        (rc = c2d_sched_unload_geometry(srv->sched, name, err))) {
        return NULL;
    }
    c2d_log(C2D_LOG_INFO, "geometry '%s' unloaded", name);
    msgpack_packer pk;
    return server_reply_begin(&pk, req, 0);
}

/* Who is at the other end of a connection, for the log and the events
 * list: ipc tells the peer's pid and uid (returns 1), tcp only the
 * connection (returns 0). */
static int server_peer_name(nng_pipe p, char *out, size_t cap)
{
    uint64_t pid = 0, uid = 0;
    if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0 &&
        nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0) {
        snprintf(out, cap, "pid %llu uid %llu", (unsigned long long)pid, (unsigned long long)uid);
        return 1;
    }
    snprintf(out, cap, "connection %u", (unsigned)nng_pipe_id(p));
    return 0;
}

/* Handles one request, parsed from msg. Returns the reply, or NULL when
 * the scheduler took the request, msg with it (or on failure, with err
 * set). */
static nng_msg *server_handle(c2d_server *srv, c2d_work *w, const c2p_msg *req, nng_msg *msg, int *taken,
                              c2p_err *err)
{
    nng_pipe p = nng_msg_get_pipe(msg);
    uint32_t pipe = (uint32_t)nng_pipe_id(p);
    msgpack_packer pk;
    nng_msg *out = NULL;
    *taken = 0;
    switch (req->type) {
    case C2P_T_HELLO:
        return server_hello(srv, req, err);
    case C2P_T_CANCEL:
        return server_cancel(srv, req, p, err);
    case C2P_T_SHUTDOWN:
        return server_shutdown(srv, req, err);
    case C2P_T_SUBMIT_EVENT: {
        c2p_event ev;
        uint64_t ticket = 0;
        if (c2p_decode_event(req, srv->cfg->max_photons, &ev, err)) {
            return NULL;
        }
        char peer[64];
        server_peer_name(p, peer, sizeof peer);
        /* WAIT before the scheduler sees it: its reply may come at once,
         * from the backend thread */
        w->state = W_WAIT;
        c2d_target to = {w, NULL, 0};
        if (c2d_sched_submit(srv->sched, to, pipe, peer, server_peer_uid(p), req->id, &ev, msg, &ticket, err)) {
            w->state = W_RECV;
            c2p_event_free(&ev);
            return NULL;
        }
        *taken = 1;
        return NULL;
    }
    case C2P_T_SUBMIT_EVENTS: {
        c2p_event *evs;
        uint32_t n;
        if (c2p_decode_events(req, srv->cfg->max_photons, &evs, &n, err)) {
            return NULL;
        }
        c2d_group *g = c2d_group_new(w, req->id, msg, n);
        if (!g) {
            c2p_events_free(evs, n);
            c2i_fail(err, C2P_BUSY, "out of memory for %u events", n);
            return NULL;
        }
        char peer[64];
        server_peer_name(p, peer, sizeof peer);
        uint64_t uid = server_peer_uid(p), id = req->id, ticket;
        /* each event is admitted or refused on its own, and answered in its
         * slot; the group (msg with it) is the answers' from here on, and
         * is gone once the last slot is answered, maybe in this loop */
        w->state = W_WAIT;
        *taken = 1;
        for (uint32_t i = 0; i < n; i++) {
            c2p_err e = {0};
            c2d_target to = {NULL, g, i};
            if (c2d_sched_submit(srv->sched, to, pipe, peer, uid, id, &evs[i], NULL, &ticket, &e)) {
                c2d_answer_error(to, id, e.code, e.msg);
            }
        }
        c2p_events_free(evs, n); /* the refused ones; the taken ones were emptied */
        return NULL;
    }
    case C2P_T_LOAD_GEOMETRY:
        return server_load_geometry(srv, req, err);
    case C2P_T_UNLOAD_GEOMETRY:
        return server_unload_geometry(srv, req, err);
    default:
        break;
    }
    /* the rest take no fields */
    if (server_no_fields(req, err)) {
        return NULL;
    }
    switch (req->type) {
    case C2P_T_PING:
        if ((out = server_reply_begin(&pk, req, 1))) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            c2p_pack_kv_u64(&pk, "time_ns", (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec);
        }
        return out;
    case C2P_T_STATUS:
        return server_status(srv, req);
    case C2P_T_STATS:
        return server_stats(srv, req);
    case C2P_T_LIST_GEOMETRIES:
        if ((out = server_reply_begin(&pk, req, 1))) {
            server_pack_geometries(&pk, srv);
        }
        return out;
    case C2P_T_EVENTS:
        if ((out = server_reply_begin(&pk, req, 1))) {
            c2p_pack_key(&pk, "events");
            c2d_sched_pack_events(srv->sched, &pk);
        }
        return out;
    case C2P_T_DRAIN:
        c2d_log(C2D_LOG_INFO, "drain requested by a client");
        c2d_sched_drain(srv->sched);
        return server_reply_begin(&pk, req, 0);
    default:
        c2i_fail(err, C2P_INTERNAL, "request type %d has no handler", req->type);
        return NULL;
    }
}

static void server_work_cb(void *arg)
{
    c2d_work *w = arg;
    c2d_server *srv = w->srv;
    int rv = nng_aio_result(w->aio);
    switch (w->state) {
    case W_RECV: {
        if (rv != 0) {
            if (rv != NNG_ECLOSED && rv != NNG_ECANCELED) {
                nng_ctx_recv(w->ctx, w->aio); /* a transient error: keep serving */
            }
            return;
        }
        nng_msg *msg = nng_aio_get_msg(w->aio);
        nng_pipe p = nng_msg_get_pipe(msg);
        uint32_t pipe = (uint32_t)nng_pipe_id(p);
        c2p_msg req;
        c2p_err err = {0};
        int taken = 0;
        nng_msg *out = NULL;
        if (c2p_parse_request(&req, nng_msg_body(msg), nng_msg_len(msg), &err) == 0) {
            if (req.type == C2P_T_LOAD_GEOMETRY && server_build_later(srv, w, msg, &req) == 0) {
                return; /* the builder owns msg and req, and answers */
            }
            out = server_whole(server_handle(srv, w, &req, msg, &taken, &err), &err);
        }
        if (!taken && !out) {
            c2d_log(C2D_LOG_INFO, "connection %u request %llu (%s): %s: %s", pipe, (unsigned long long)req.id,
                    c2p_type_name(req.type), c2p_error_name(err.code), err.msg);
            out = c2d_error_msg(req.id, req.type, err.code ? err.code : C2P_INTERNAL, err.msg);
        }
        c2p_msg_free(&req);
        if (!taken) { /* else the scheduler has msg, and replies */
            nng_msg_free(msg);
            server_send(w, out); /* on an NNG thread already */
        }
        return;
    }
    case W_SEND:
        if (rv == 0) {
            server_linger(w->srv, w->reply_len); /* before the count: a stop that sees it drop sees this */
        }
        atomic_fetch_sub(&w->srv->sending, 1);
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio)); /* not sent: still ours */
            if (rv == NNG_ECLOSED) {
                return;
            }
        }
        w->state = W_RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    default:
        return;
    }
}

/* ---- connections ---- */

/* The allow-list: the daemon's own user, then allow-uids; without a list,
 * anyone who can open the socket. A TLS peer whose certificate was
 * verified (tls-client-ca) is allowed; another peer without credentials
 * (tcp) is refused when there is a list. */
static int server_peer_allowed(const c2d_config *cfg, nng_pipe p, uint64_t uid)
{
    bool verified = false;
    if (!cfg->nallow_uids) {
        return 1;
    }
    if (uid == C2D_UID_UNKNOWN) {
        return cfg->tls_client_ca && nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) == 0 && verified;
    }
    if (uid == (uint64_t)getuid()) {
        return 1;
    }
    for (int i = 0; i < cfg->nallow_uids; i++) {
        if (uid == cfg->allow_uids[i]) {
            return 1;
        }
    }
    return 0;
}

static void server_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    c2d_server *srv = arg;
    if (ev == NNG_PIPE_EV_ADD_PRE) { /* before the socket uses it: a refused peer never sends a request */
        uint64_t uid = server_peer_uid(p);
        if (!server_peer_allowed(srv->cfg, p, uid)) {
            if (uid == C2D_UID_UNKNOWN) {
                c2d_log(C2D_LOG_WARN, "connection refused: a peer without credentials (allow-uids is set)");
            } else {
                c2d_log(C2D_LOG_WARN, "connection refused: uid %llu is not in allow-uids", (unsigned long long)uid);
            }
            nng_pipe_close(p);
        }
        return;
    }
    if (ev == NNG_PIPE_EV_ADD_POST) {
        char who[64];
        if (server_peer_name(p, who, sizeof who)) {
            c2d_log(C2D_LOG_INFO, "connection %d from %s", nng_pipe_id(p), who);
        } else {
            c2d_log(C2D_LOG_INFO, "connection %d", nng_pipe_id(p));
        }
        return;
    }
    /* NNG_PIPE_EV_REM_POST: the socket lock is held; queue it for the loop */
    pthread_mutex_lock(&srv->closed_mu);
    if (srv->nclosed == srv->capclosed) {
        uint32_t cap = srv->capclosed ? 2 * srv->capclosed : 64;
        uint32_t *q = realloc(srv->closed, cap * sizeof *q);
        if (q) {
            srv->closed = q;
            srv->capclosed = cap;
        }
    }
    if (srv->nclosed < srv->capclosed) {
        srv->closed[srv->nclosed++] = (uint32_t)nng_pipe_id(p);
    }
    pthread_mutex_unlock(&srv->closed_mu);
    uv_async_send(&srv->closed_async);
}

static void server_closed_cb(uv_async_t *a)
{
    c2d_server *srv = a->data;
    for (;;) { /* uv_async_send calls coalesce: drain the whole queue */
        pthread_mutex_lock(&srv->closed_mu);
        uint32_t pipe = 0;
        int have = srv->nclosed > 0;
        if (have) {
            pipe = srv->closed[--srv->nclosed];
        }
        pthread_mutex_unlock(&srv->closed_mu);
        if (!have) {
            return;
        }
        c2d_sched_pipe_closed(srv->sched, pipe);
    }
}

/* ---- listeners ---- */

static int server_listen(c2d_server *srv, server_listener *sl, c2_error *err)
{
    int rv = nng_listener_create(&sl->l, srv->sock, sl->url);
    if (rv == 0) {
        nng_listener_set_size(sl->l, NNG_OPT_RECVMAXSZ, (size_t)srv->cfg->max_message_bytes);
        if (strncmp(sl->url, "ipc://", 6) == 0) {
            nng_listener_set_int(sl->l, NNG_OPT_IPC_PERMISSIONS, (int)srv->cfg->socket_mode);
        } else if (strncmp(sl->url, "tls+tcp://", 10) == 0) {
            const char *ca = srv->cfg->tls_client_ca;
            rv = nng_listener_set_string(sl->l, NNG_OPT_TLS_CERT_KEY_FILE, srv->cfg->tls_cert_key);
            if (rv == 0 && ca) { /* mutual TLS: the handshake fails without a certificate ca signed */
                rv = nng_listener_set_string(sl->l, NNG_OPT_TLS_CA_FILE, ca);
                rv = rv ? rv : nng_listener_set_int(sl->l, NNG_OPT_TLS_AUTH_MODE, NNG_TLS_AUTH_MODE_REQUIRED);
            }
        }
        rv = rv ? rv : nng_listener_start(sl->l, 0);
        if (rv != 0) {
            nng_listener_close(sl->l);
        }
    }
    if (rv != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot listen on %s: %s", sl->url, nng_strerror(rv));
        err->code = C2_EIO;
        return C2_EIO;
    }
    sl->up = 1;
    c2d_log(C2D_LOG_INFO, "listening on %s", sl->url);
    return 0;
}

/* The URL to dial to reach a listener: wildcard addresses become loopback;
 * NULL when it cannot be dialled from here (tls+tcp needs a certificate). */
static const char *server_dial_url(const char *url, char *buf, size_t cap)
{
    if (strncmp(url, "ipc://", 6) == 0) {
        return url;
    }
    const char *port;
    if (strncmp(url, "tcp://*:", 8) == 0 || strncmp(url, "tcp://0.0.0.0:", 14) == 0) {
        port = strrchr(url, ':');
        snprintf(buf, cap, "tcp://127.0.0.1%s", port);
        return buf;
    }
    if (strncmp(url, "tcp://[::]:", 11) == 0) {
        snprintf(buf, cap, "tcp://[::1]%s", url + 10);
        return buf;
    }
    return strncmp(url, "tcp://", 6) == 0 ? url : NULL;
}

/* One ping through a fresh REQ socket, 3 s to answer. Control requests
 * always find a free context (admission keeps spares), so only a listener
 * that stopped serving, or a daemon starved of CPU for seconds, misses it. */
static int server_self_ping(const char *url)
{
    nng_socket s;
    nng_msg *m = NULL;
    int ok = 0;
    if (nng_req0_open(&s) != 0) {
        return 1; /* cannot tell: assume fine */
    }
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 3000);
    if (nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK) == 0 && nng_msg_alloc(&m, 0) == 0) {
        msgpack_packer pk;
        c2d_packer_init(&pk, m);
        c2p_pack_request_head(&pk, 1, C2P_T_PING, 0);
        if (nng_sendmsg(s, m, 0) == 0) {
            m = NULL;
            ok = nng_recvmsg(s, &m, 0) == 0;
        }
    }
    if (m) {
        nng_msg_free(m);
    }
    nng_close(s);
    return ok;
}

/* A listener that stops serving is re-created. NNG 1.5.2 did that to a
 * listener whose peer closed before the handshake (#1518: new connections
 * were made but no request was served); the NNG we build (1.11) did not in
 * a 10-minute storm, and the check stays as the guard for any listener that
 * stops, or whose socket file went away. Every second each listener is pinged through itself; after
 * three failures in a row it is closed and re-created, which drops its
 * connections (clients reconnect and resend). A re-creation that fails is
 * tried again each second; after SERVER_RELISTEN_S the listener is lost and
 * the daemon exits 1 (c2d_server_lost_listener). Runs on its own thread so
 * the loop never waits on it. */
#define SERVER_RELISTEN_S 30 /* a listener that cannot be re-created for this long is lost */
static void *server_checker(void *arg)
{
    c2d_server *srv = arg;
    int fails[C2D_MAX_LISTEN] = {0};
    double down_since[C2D_MAX_LISTEN] = {0};
    pthread_mutex_lock(&srv->check_mu);
    while (!srv->check_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&srv->check_cv, &srv->check_mu, &until);
        for (int i = 0; i < srv->nlisteners && !srv->check_stop; i++) {
            server_listener *sl = &srv->listeners[i];
            char buf[256];
            const char *url = server_dial_url(sl->url, buf, sizeof buf);
            if (!sl->up && down_since[i] > 0.0) { /* re-creation failed: try again, and give up after a while */
                c2_error err = {0};
                if (server_listen(srv, sl, &err) == 0) {
                    down_since[i] = 0.0;
                } else if (server_now() - down_since[i] > SERVER_RELISTEN_S && !atomic_load(&srv->lost_set)) {
                    snprintf(srv->lost, sizeof srv->lost, "listener %.80s lost: re-creating it failed for %d s: %.120s",
                             sl->url, SERVER_RELISTEN_S, err.msg);
                    atomic_store(&srv->lost_set, 1);
                }
                continue;
            }
            if (!sl->up || !url) {
                continue;
            }
            pthread_mutex_unlock(&srv->check_mu);
            int ok = server_self_ping(url);
            pthread_mutex_lock(&srv->check_mu);
            fails[i] = ok ? 0 : fails[i] + 1;
            if (fails[i] >= 3 && !srv->check_stop) {
                c2d_log(C2D_LOG_WARN, "listener %s stopped answering: re-creating it", sl->url);
                nng_listener_close(sl->l);
                c2_error err = {0};
                if (server_listen(srv, sl, &err)) { /* e.g. out of descriptors for a while: retried each second */
                    sl->up = 0;
                    down_since[i] = server_now();
                    c2d_log(C2D_LOG_ERROR, "%s; trying again each second for %d s", err.msg, SERVER_RELISTEN_S);
                }
                fails[i] = 0;
            }
        }
    }
    pthread_mutex_unlock(&srv->check_mu);
    return NULL;
}

c2d_server *c2d_server_start(const c2d_config *cfg, c2d_sched *sched, c2d_backend *backend, uv_loop_t *loop,
                             c2_error *err)
{
    c2d_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    srv->cfg = cfg;
    srv->sched = sched;
    srv->backend = backend;
    srv->t_start = server_now();
    pthread_mutex_init(&srv->closed_mu, NULL);
    pthread_mutex_init(&srv->check_mu, NULL);
    pthread_cond_init(&srv->check_cv, NULL);
    /* the threads run before any context receives; without them loads build
     * on NNG's threads and replies go out on the thread that makes them */
    if (!server_queue_start(&srv->builds, srv, server_build_queued, 1)) {
        c2d_log(C2D_LOG_WARN, "no geometry builder thread: loads build on NNG's threads");
    }
    server_queue_start(&srv->sends, srv, server_send_queued, SERVER_SENDERS);
    uv_async_init(loop, &srv->closed_async, server_closed_cb);
    srv->closed_async.data = srv;
    int rv = nng_rep0_open(&srv->sock);
    if (rv != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot open the REP socket: %s", nng_strerror(rv));
        return srv; /* c2d_server_stop cleans up; the caller checks err */
    }
    nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, server_pipe_cb, srv);
    nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_POST, server_pipe_cb, srv);
    nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, server_pipe_cb, srv);
    srv->nworks = cfg->max_queued + SERVER_SPARE_CONTEXTS;
    srv->works = calloc(srv->nworks, sizeof *srv->works);
    if (!srv->works) {
        snprintf(err->msg, sizeof err->msg, "out of memory for %u contexts", srv->nworks);
        srv->nworks = 0;
        return srv;
    }
    for (uint32_t i = 0; i < srv->nworks; i++) {
        c2d_work *w = &srv->works[i];
        w->srv = srv;
        if (nng_aio_alloc(&w->aio, server_work_cb, w) != 0 || nng_ctx_open(&w->ctx, srv->sock) != 0) {
            snprintf(err->msg, sizeof err->msg, "cannot allocate %u contexts", srv->nworks);
            srv->nworks = i + 1;
            return srv;
        }
    }
    for (int i = 0; i < cfg->nlisten; i++) {
        srv->listeners[i].url = cfg->listen[i];
        srv->nlisteners = i + 1;
        if (server_listen(srv, &srv->listeners[i], err)) {
            return srv;
        }
    }
    for (uint32_t i = 0; i < srv->nworks; i++) {
        srv->works[i].state = W_RECV;
        nng_ctx_recv(srv->works[i].ctx, srv->works[i].aio);
    }
    if (pthread_create(&srv->checker, NULL, server_checker, srv) == 0) {
        srv->checking = 1;
    } else {
        c2d_log(C2D_LOG_WARN, "no listener self-check thread: a listener NNG stops will stay stopped");
    }
    return srv;
}

int c2d_server_lost_listener(c2d_server *srv, char *why, size_t len)
{
    if (!atomic_load(&srv->lost_set)) {
        return 0;
    }
    snprintf(why, len, "%s", srv->lost); /* written before lost_set and never again */
    return 1;
}

int c2d_server_shutdown_requested(c2d_server *srv, uint64_t *timeout_ms)
{
    *timeout_ms = atomic_load(&srv->shutdown_timeout_ms);
    return atomic_load(&srv->shutdown_requested);
}

/* Stops the listener self-check: no listener is re-created from now on. */
static void server_checker_stop(c2d_server *srv)
{
    if (srv->checking) {
        pthread_mutex_lock(&srv->check_mu);
        srv->check_stop = 1;
        pthread_cond_signal(&srv->check_cv);
        pthread_mutex_unlock(&srv->check_mu);
        pthread_join(srv->checker, NULL);
        srv->checking = 0;
    }
}

/* libuv finishes closing the async handle inside srv on a later loop run:
 * srv is freed from its close callback. */
static void server_free(uv_handle_t *h)
{
    c2d_server *srv = h->data;
    pthread_mutex_destroy(&srv->closed_mu);
    pthread_mutex_destroy(&srv->check_mu);
    pthread_cond_destroy(&srv->check_cv);
    server_queue_destroy(&srv->builds);
    server_queue_destroy(&srv->sends);
    free(srv->closed);
    free(srv);
}

void c2d_server_stop(c2d_server *srv)
{
    if (!srv) {
        return;
    }
    server_checker_stop(srv);
    server_queue_stop(&srv->builds); /* answers the loads still waiting */
    server_queue_stop(&srv->sends);  /* sends what is queued */
    /* The last replies (results, SHUTTING_DOWN for unfinished events) go
     * out over the connections still open: closing the socket, or a
     * listener, closes them and drops what NNG still holds. Up to 2 s for
     * NNG to take them, then as long as the transport may need to write
     * them (server_linger). */
    for (int i = 0; i < 200 && atomic_load(&srv->sending) > 0; i++) {
        usleep(10000);
    }
    const uint64_t now = server_now_ns(), until = atomic_load(&srv->linger_ns);
    if (until > now) {
        const uint64_t ns = until - now < SERVER_LINGER_MAX_NS ? until - now : SERVER_LINGER_MAX_NS;
        nanosleep(&(struct timespec){(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)}, NULL);
    }
    usleep(50000);
    nng_close(srv->sock);
    for (uint32_t i = 0; srv->works && i < srv->nworks; i++) {
        if (srv->works[i].aio) {
            nng_aio_stop(srv->works[i].aio);
            nng_aio_free(srv->works[i].aio);
        }
    }
    free(srv->works);
    uv_close((uv_handle_t *)&srv->closed_async, server_free);
}

/*
 * scheduler.c: accepted events, from admission to their reply.
 *
 * Events wait in a binary heap ordered by priority, then arrival. The
 * backend thread pops the head and keeps popping while the next event uses
 * the same geometry and the batch stays under batch_photons, so small
 * events from many clients run as one large batch. A batch backend (cpu)
 * runs it without the lock, then replies to each event; a streaming
 * backend (cuda) is fed batches while it runs the ones before (up to twice
 * batch_photons in flight) and each event is replied to as it finishes. Admission control refuses
 * with BUSY when the queue, a client's share of it, or the memory pool is
 * full. Cancellation (explicit, or the client went away) and deadlines
 * remove queued events at once; a running event's stop flag makes the
 * backend skip the rest of its photons, and it gets its error when the
 * backend is done with it.
 *
 * Ownership: a sched_event owns its decoded arrays (and its request
 * message, unless a submit_events group holds it) and its target, which
 * it answers exactly once (answer.c); everything here is behind s->mu, except a
 * batch's events while the backend thread runs them (state RUNNING, only
 * the cancelled flag may change, under the lock).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

enum { EV_QUEUED, EV_RUNNING };

typedef struct sched_event {
    uint64_t ticket, seq, req_id;
    uint32_t pipe;
    char peer[64]; /* "pid P uid U" over ipc, else the connection */
    uint64_t uid;  /* the submitter's, or C2D_UID_UNKNOWN */
    c2d_target to; /* where its outcome goes */
    c2p_event ev;
    nng_msg *request;   /* ev's photon columns point into it; NULL when its group holds it */
    c2d_geometry *geom; /* a reference */
    uint64_t photons, bytes;
    double t_accept, deadline; /* monotonic seconds; deadline 0: none */
    int state, cancelled;
    int stop; /* set (atomically) once a running event is cancelled or late: the engine skips the rest */
} sched_event;

struct c2d_sched {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const c2d_config *cfg;
    c2d_backend *backend;
    c2d_geometry *geoms[C2D_MAX_GEOMETRIES]; /* loaded, found by name */
    uint32_t ngeoms;
    sched_event **heap;
    uint32_t nheap;
    sched_event **running;
    uint32_t nrunning;
    uint64_t running_photons;
    uint64_t next_ticket, next_seq, pool_bytes;
    /* the last cancels by request and closed connections: an event that
     * arrives after its cancel (requests travel on separate contexts, and
     * a submit_events is admitted one event at a time) is refused, not run */
    struct {
        uint32_t pipe;
        uint64_t req_id; /* SCHED_ANY_REQ: the connection closed */
    } tombs[256];
    uint32_t ntombs;
    int draining, stopping;
    char broken[300]; /* why the daemon can serve nothing more (the backend failed for good, a listener is
                         lost); empty while it can */
    c2d_counts counts;
    uint64_t window_photons;
    double window_busy, window_reply, window_start; /* seconds running batches, answering them */
    double reply_pending; /* answering time not yet in window_reply: the backend thread's own */
    pthread_t thread;
};

static double sched_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the heap: higher priority first, then earlier arrival ---- */

static int sched_before(const sched_event *a, const sched_event *b)
{
    return a->ev.priority != b->ev.priority ? a->ev.priority > b->ev.priority : a->seq < b->seq;
}

static void sched_swap(c2d_sched *s, uint32_t i, uint32_t j)
{
    sched_event *t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
}

static void sched_sift(c2d_sched *s, uint32_t i)
{
    while (i > 0 && sched_before(s->heap[i], s->heap[(i - 1) / 2])) { /* up */
        sched_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) { /* down */
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->nheap && sched_before(s->heap[l], s->heap[m])) {
            m = l;
        }
        if (r < s->nheap && sched_before(s->heap[r], s->heap[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        sched_swap(s, i, m);
        i = m;
    }
}

static sched_event *sched_remove(c2d_sched *s, uint32_t i)
{
    sched_event *e = s->heap[i];
    s->heap[i] = s->heap[--s->nheap];
    if (i < s->nheap) {
        sched_sift(s, i);
    }
    return e;
}

/* ---- replies ---- */

static void sched_geometry_free(c2d_sched *s, c2d_geometry *g)
{
    if (s->backend->forget) {
        s->backend->forget(s->backend, g->g);
    }
    c2_geometry_free(g->g);
    free(g);
}

/* Drops a reference; the last one of an unloaded geometry frees it. */
static void sched_unref(c2d_sched *s, c2d_geometry *g)
{
    pthread_mutex_lock(&s->mu);
    int last = --g->refs == 0 && g->unloaded;
    pthread_mutex_unlock(&s->mu);
    if (last) {
        sched_geometry_free(s, g);
    }
}

/* Frees a finished event and its reference; no lock held. */
static void sched_event_free(c2d_sched *s, sched_event *e)
{
    c2d_geometry *g = e->geom;
    c2p_event_free(&e->ev);
    nng_msg_free(e->request);
    free(e);
    sched_unref(s, g);
}

/* Sends an error for e and frees it; no lock held. */
static void sched_fail(c2d_sched *s, sched_event *e, int code, const char *msg)
{
    c2d_answer_error(e->to, e->req_id, code, msg);
    sched_event_free(s, e);
}

/* The daemon can serve nothing more (the first reason stays): no new
 * events, and the main loop exits once it sees it. Under the lock. */
static void sched_break(c2d_sched *s, const char *why)
{
    if (!s->broken[0]) {
        snprintf(s->broken, sizeof s->broken, "%s", why);
        s->draining = 1;
    }
}

/* Takes e out of the pool's accounting; under the lock. */
static void sched_release(c2d_sched *s, sched_event *e) { s->pool_bytes -= e->bytes; }

static void sched_trace(const c2d_sched *s, const sched_event *e, const char *what)
{
    if (s->cfg->trace) {
        c2d_log(C2D_LOG_INFO, "trace ticket=%llu event_id=%llu seed=%llu photons=%llu %s",
                (unsigned long long)e->ticket, (unsigned long long)e->ev.event_id, (unsigned long long)e->ev.seed,
                (unsigned long long)e->photons, what);
    }
}

#define SCHED_ANY_REQ UINT64_MAX

/* Under the lock. NNG's pipe ids and a client's request ids do not repeat,
 * so a ring of the last ones is enough. */
static void sched_tomb_add(c2d_sched *s, uint32_t pipe, uint64_t req_id)
{
    uint32_t i = s->ntombs++ % (sizeof s->tombs / sizeof s->tombs[0]);
    s->tombs[i].pipe = pipe;
    s->tombs[i].req_id = req_id;
}

static int sched_tombstoned(const c2d_sched *s, uint32_t pipe, uint64_t req_id)
{
    const uint32_t cap = sizeof s->tombs / sizeof s->tombs[0], n = s->ntombs < cap ? s->ntombs : cap;
    for (uint32_t i = 0; i < n; i++) {
        if (s->tombs[i].pipe == pipe && (s->tombs[i].req_id == req_id || s->tombs[i].req_id == SCHED_ANY_REQ)) {
            return 1;
        }
    }
    return 0;
}

/* ---- admission ---- */

int c2d_sched_submit(c2d_sched *s, c2d_target to, uint32_t pipe, const char *peer, uint64_t uid, uint64_t req_id,
                     c2p_event *ev, nng_msg *request, uint64_t *ticket, c2p_err *err)
{
    c2d_geometry *geom = NULL;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->ngeoms; i++) {
        if (strcmp(s->geoms[i]->name, ev->geometry) == 0) {
            geom = s->geoms[i];
            geom->refs++; /* held while we look at it, kept by the event */
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!geom) {
        return c2i_fail(err, C2P_NOT_FOUND, "geometry '%s' is not loaded", ev->geometry);
    }
    int rc = 0;
    c2_event view = c2p_event_view(ev);
    c2_error ce = {0};
    if (ev->digest[0] && strcmp(ev->digest, geom->digest) != 0) {
        rc = c2i_fail(err, C2P_DIGEST_MISMATCH, "geometry '%s' has digest %s, not %s", geom->name, geom->digest,
                      ev->digest);
    } else if (ev->nspectra && ev->spectra_nwl != c2_geometry_nwl(geom->g)) {
        rc = c2i_fail(err, C2P_BAD_REQUEST, "spectra have %u values each, geometry '%s' has a grid of %u",
                      ev->spectra_nwl, geom->name, c2_geometry_nwl(geom->g));
    } else if (c2_event_validate(geom->g, &view, &ce)) {
        rc = c2i_fail(err, C2P_BAD_REQUEST, "submit_event: %s", ce.msg);
    }
    if (rc) {
        sched_unref(s, geom);
        return rc;
    }
    uint64_t photons = ev->nphotons;
    for (uint32_t i = 0; i < ev->nsources; i++) {
        photons += ev->sources[i].nphotons;
    }
    /* what the event holds now (its request, or its part of its group's,
     * and the arrays decoded from it), plus its end states if asked for */
    uint64_t held = request ? nng_msg_len(request) : (uint64_t)ev->nphotons * 12 * sizeof(float); /* its columns */
    uint64_t bytes = held + (uint64_t)ev->nsources * sizeof(c2_source) +
                     (uint64_t)ev->nspectra * ev->spectra_nwl * sizeof(float) +
                     ((ev->want & C2_RETURN_PHOTONS) ? photons * sizeof(c2_photon) : 0);
    sched_event *e = calloc(1, sizeof *e);
    if (!e) {
        sched_unref(s, geom);
        return c2i_fail(err, C2P_BUSY, "out of memory");
    }
    pthread_mutex_lock(&s->mu);
    uint32_t mine = 0;
    uint64_t mine_bytes = 0;
    for (uint32_t i = 0; i < s->nheap; i++) {
        mine += s->heap[i]->pipe == pipe;
        mine_bytes += s->heap[i]->pipe == pipe ? s->heap[i]->bytes : 0;
    }
    for (uint32_t i = 0; i < s->nrunning; i++) {
        mine += s->running[i]->pipe == pipe;
        mine_bytes += s->running[i]->pipe == pipe ? s->running[i]->bytes : 0;
    }
    if (s->broken[0]) {
        rc = c2i_fail(err, C2P_BACKEND, "%.200s; chroma2d is exiting to be restarted", s->broken);
    } else if (s->draining) {
        rc = c2i_fail(err, C2P_SHUTTING_DOWN, "the daemon is draining and takes no new events");
    } else if (sched_tombstoned(s, pipe, req_id)) {
        rc = c2i_fail(err, C2P_CANCELLED, "event cancelled (before it was accepted)");
    } else if (s->nheap + s->nrunning >= s->cfg->max_queued) {
        /* queued and running both hold a server context until answered */
        rc = c2i_fail(err, C2P_BUSY, "queue full (%u events waiting, %u running)", s->nheap, s->nrunning);
    } else if (mine >= s->cfg->max_per_client) {
        rc = c2i_fail(err, C2P_BUSY, "this connection has %u events in flight (limit %u)", mine,
                      s->cfg->max_per_client);
    } else if (mine && mine_bytes + bytes > s->cfg->max_client_bytes) {
        /* one connection may not take the whole pool; its first event always fits the pool test below */
        rc = c2i_fail(err, C2P_BUSY, "this connection holds %llu bytes of events in flight (limit %llu)",
                      (unsigned long long)mine_bytes, (unsigned long long)s->cfg->max_client_bytes);
    } else if (s->pool_bytes + c2d_answers_held() + bytes > s->cfg->pool_bytes) {
        rc = bytes > s->cfg->pool_bytes
                 ? c2i_fail(err, C2P_TOO_LARGE, "event needs %llu bytes, more than the pool's %llu",
                            (unsigned long long)bytes, (unsigned long long)s->cfg->pool_bytes)
                 : c2i_fail(err, C2P_BUSY, "memory pool full (%llu of %llu bytes held)",
                            (unsigned long long)(s->pool_bytes + c2d_answers_held()),
                            (unsigned long long)s->cfg->pool_bytes);
    }
    if (rc) {
        s->counts.rejected_busy += rc == C2P_BUSY;
        pthread_mutex_unlock(&s->mu);
        free(e);
        sched_unref(s, geom);
        return rc;
    }
    e->ticket = ++s->next_ticket;
    e->seq = ++s->next_seq;
    e->req_id = req_id;
    e->pipe = pipe;
    e->uid = uid;
    snprintf(e->peer, sizeof e->peer, "%s", peer);
    e->to = to;
    e->ev = *ev;
    memset(ev, 0, sizeof *ev); /* the arrays are the scheduler's now */
    e->request = request;
    e->geom = geom;
    e->photons = photons;
    e->bytes = bytes;
    e->t_accept = sched_now();
    e->deadline = e->ev.deadline_ms ? e->t_accept + 1e-3 * e->ev.deadline_ms : 0.0;
    e->state = EV_QUEUED;
    s->pool_bytes += bytes;
    s->heap[s->nheap++] = e;
    sched_sift(s, s->nheap - 1);
    s->counts.accepted++;
    *ticket = e->ticket;
    sched_trace(s, e, "accepted");
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- cancellation and deadlines ---- */

/* Does e match a cancel by ticket (which the requester (pipe, uid) may
 * only make for its own connection or user, as root or as the daemon's
 * user; a refused match sets *denied), or by (pipe, req_id or any)? */
static int sched_match(const sched_event *e, uint64_t ticket, uint32_t pipe, uint64_t uid, int any_req,
                       uint64_t req_id, int *denied)
{
    if (!ticket) {
        return e->pipe == pipe && (any_req || e->req_id == req_id);
    }
    if (e->ticket != ticket) {
        return 0;
    }
    if (e->pipe == pipe || (uid != C2D_UID_UNKNOWN && (uid == e->uid || uid == 0 || uid == (uint64_t)getuid()))) {
        return 1;
    }
    *denied = 1;
    return 0;
}

/* Removes queued events matching (ticket) or (pipe, req_id or any) into out;
 * marks running ones cancelled. Under the lock. Returns how many matched. */
static uint32_t sched_take(c2d_sched *s, uint64_t ticket, uint32_t pipe, uint64_t uid, int any_req, uint64_t req_id,
                           sched_event **out, uint32_t *nout, int *denied)
{
    uint32_t hits = 0;
#define SCHED_MATCH(e) sched_match(e, ticket, pipe, uid, any_req, req_id, denied)
    for (uint32_t i = 0; i < s->nrunning; i++) {
        if (SCHED_MATCH(s->running[i]) && !s->running[i]->cancelled) {
            s->running[i]->cancelled = 1;
            __atomic_store_n(&s->running[i]->stop, 1, __ATOMIC_RELAXED);
            hits++;
        }
    }
    for (uint32_t i = s->nheap; i-- > 0;) {
        if (SCHED_MATCH(s->heap[i])) {
            sched_event *e = sched_remove(s, i);
            sched_release(s, e);
            out[(*nout)++] = e;
            hits++;
        }
    }
#undef SCHED_MATCH
    s->counts.cancelled += hits;
    return hits;
}

static void sched_cancel_where(c2d_sched *s, uint64_t ticket, uint32_t pipe, uint64_t uid, int any_req,
                               uint64_t req_id, uint32_t *hits, int *denied)
{
    pthread_mutex_lock(&s->mu);
    if (!ticket) {
        sched_tomb_add(s, pipe, any_req ? SCHED_ANY_REQ : req_id);
    }
    sched_event **out = malloc((s->nheap + 1) * sizeof *out);
    uint32_t nout = 0;
    *hits = out ? sched_take(s, ticket, pipe, uid, any_req, req_id, out, &nout, denied) : 0;
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < nout; i++) {
        sched_trace(s, out[i], "cancelled");
        sched_fail(s, out[i], C2P_CANCELLED, "event cancelled");
    }
    free(out);
}

int c2d_sched_cancel(c2d_sched *s, uint64_t ticket, uint32_t pipe, uint64_t uid, uint64_t req_id)
{
    uint32_t hits;
    int denied = 0;
    sched_cancel_where(s, ticket, pipe, uid, 0, req_id, &hits, &denied);
    return hits > 0 ? 1 : denied ? -1 : 0;
}

void c2d_sched_pipe_closed(c2d_sched *s, uint32_t pipe)
{
    uint32_t hits;
    int denied = 0;
    sched_cancel_where(s, 0, pipe, C2D_UID_UNKNOWN, 1, 0, &hits, &denied);
    if (hits) {
        c2d_log(C2D_LOG_INFO, "connection %u closed: %u of its events cancelled", pipe, hits);
    }
}

void c2d_sched_tick(c2d_sched *s)
{
    double now = sched_now();
    pthread_mutex_lock(&s->mu);
    sched_event **out = malloc((s->nheap + 1) * sizeof *out);
    uint32_t nout = 0;
    for (uint32_t i = s->nheap; out && i-- > 0;) {
        if (s->heap[i]->deadline > 0.0 && now > s->heap[i]->deadline) {
            sched_event *e = sched_remove(s, i);
            sched_release(s, e);
            out[nout++] = e;
        }
    }
    s->counts.expired += nout;
    for (uint32_t i = 0; i < s->nrunning; i++) { /* late while running: stop spending the backend on it */
        sched_event *e = s->running[i];
        if (e->deadline > 0.0 && now > e->deadline) {
            __atomic_store_n(&e->stop, 1, __ATOMIC_RELAXED);
        }
    }
    double dt = now - s->window_start;
    if (dt >= 1.0) { /* the stats window */
        s->counts.photons_per_s = (double)s->window_photons / dt;
        s->counts.ns_per_photon = s->window_photons ? 1e9 * s->window_busy / (double)s->window_photons : 0.0;
        s->counts.busy = fmin(1.0, s->window_busy / dt);
        s->counts.reply_busy = fmin(1.0, s->window_reply / dt);
        s->window_photons = 0;
        s->window_busy = s->window_reply = 0.0;
        s->window_start = now;
    }
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < nout; i++) {
        char msg[96];
        snprintf(msg, sizeof msg, "deadline of %u ms passed while queued", out[i]->ev.deadline_ms);
        sched_fail(s, out[i], C2P_DEADLINE, msg);
    }
    free(out);
}

/* ---- the backend thread ---- */

/* How a run event ended: rc is the backend's, t1 when it ended. */
enum { SCHED_DONE, SCHED_BACKEND, SCHED_CANCELLED, SCHED_LATE, SCHED_STOPPED };
static int sched_outcome(const sched_event *e, int rc, double t1)
{
    return e->cancelled                                     ? SCHED_CANCELLED /* counted when asked for */
           : rc                                             ? SCHED_BACKEND
           : e->deadline > 0.0 && t1 > e->deadline          ? SCHED_LATE
           : __atomic_load_n(&e->stop, __ATOMIC_RELAXED) ? SCHED_STOPPED /* the daemon is stopping */
                                                            : SCHED_DONE;
}

/* Events in one batch at most (the GPU runtime takes 2^18 at once). */
#define SCHED_BATCH_EVENTS 65536u

/* Takes the next batch off the heap: the head, then whatever follows on
 * the same geometry while the batch has room, so that many small events
 * become one large batch. Under the lock. */
static uint32_t sched_pop_batch(c2d_sched *s, sched_event **batch)
{
    uint32_t n = 0;
    uint64_t photons = 0;
    const c2d_geometry *geom = s->nheap ? s->heap[0]->geom : NULL;
    while (s->nheap && s->heap[0]->geom == geom && n < SCHED_BATCH_EVENTS &&
           (n == 0 || photons + s->heap[0]->photons <= s->cfg->batch_photons)) {
        sched_event *e = sched_remove(s, 0);
        photons += e->photons;
        e->state = EV_RUNNING;
        batch[n++] = e;
        s->running[s->nrunning++] = e;
    }
    s->running_photons += photons;
    s->counts.batches += n > 0;
    return n;
}

/* The backend's view of a batch: the events, with their stop flags. */
static c2_event *sched_views(sched_event **batch, uint32_t n)
{
    c2_event *ev = calloc(n, sizeof *ev);
    for (uint32_t i = 0; ev && i < n; i++) {
        ev[i] = c2p_event_view(&batch[i]->ev);
        ev[i].stop = &batch[i]->stop;
    }
    return ev;
}

/* Marks the daemon unable to serve when the backend failed for good;
 * returns why it failed (NULL while it is usable). No lock held. */
static const char *sched_backend_check(c2d_sched *s)
{
    const char *broken = s->backend->broken ? s->backend->broken(s->backend) : NULL;
    if (broken) {
        char why[sizeof s->broken];
        snprintf(why, sizeof why, "backend %s failed: %.250s", s->backend->name, broken);
        pthread_mutex_lock(&s->mu);
        sched_break(s, why);
        pthread_mutex_unlock(&s->mu);
    }
    return broken;
}

/* An event the backend is done with (rc 0: res is its result; else msg
 * says why it failed): it leaves the running list and the pool and is
 * counted, then answered and freed. Counting comes first: a client that
 * reads the stats after its result must find its event counted. The
 * backend thread, no lock held. */
static void sched_finish(c2d_sched *s, sched_event *e, int rc, const c2_event_result *res, const char *msg,
                         double t0, double t1)
{
    const char *broken = rc ? sched_backend_check(s) : NULL; /* before anyone hears of the failure */
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->nrunning; i++) {
        if (s->running[i] == e) {
            s->running[i] = s->running[--s->nrunning];
            break;
        }
    }
    /* off the running list nothing else reaches e: its flags are stable now */
    const int o = sched_outcome(e, rc, t1);
    s->running_photons -= e->photons;
    sched_release(s, e);
    s->counts.completed += o == SCHED_DONE;
    s->counts.failed += o == SCHED_BACKEND || o == SCHED_STOPPED;
    s->counts.expired += o == SCHED_LATE; /* cancellations were counted when asked for */
    s->counts.photons += o == SCHED_DONE ? e->photons : 0;
    s->window_photons += o == SCHED_DONE ? e->photons : 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    double ta = sched_now();
    if (o == SCHED_BACKEND) {
        char text[300];
        snprintf(text, sizeof text, "backend %s failed: %.200s", s->backend->name, broken ? broken : msg);
        c2d_log(C2D_LOG_ERROR, "ticket %llu: %s", (unsigned long long)e->ticket, text);
        sched_fail(s, e, C2P_BACKEND, text);
    } else if (o == SCHED_CANCELLED) {
        sched_trace(s, e, "cancelled while running");
        sched_fail(s, e, C2P_CANCELLED, "event cancelled");
    } else if (o == SCHED_LATE) {
        char text[96];
        snprintf(text, sizeof text, "deadline of %u ms passed while running", e->ev.deadline_ms);
        sched_fail(s, e, C2P_DEADLINE, text);
    } else if (o == SCHED_STOPPED) {
        sched_fail(s, e, C2P_SHUTTING_DOWN, "the daemon stopped while this event ran");
    } else {
        sched_trace(s, e, "finished");
        if (c2d_answer_result(e->to, e->req_id, e->ticket, e->ev.event_id, res, e->ev.want,
                              1e3 * (t0 - e->t_accept), 1e3 * (t1 - t0))) {
            pthread_mutex_lock(&s->mu);
            s->counts.completed--;
            s->counts.failed++;
            pthread_mutex_unlock(&s->mu);
            c2d_answer_error(e->to, e->req_id, C2P_INTERNAL, "out of memory");
        }
        sched_event_free(s, e);
    }
    s->reply_pending += sched_now() - ta; /* added to window_reply where the backend thread next locks */
}

/* A backend that runs a batch at a time (cpu): run it, answer each event. */
static void sched_run_batch(c2d_sched *s, sched_event **batch, uint32_t n)
{
    c2_event *ev = sched_views(batch, n);
    c2_event_result *res = calloc(n, sizeof *res);
    c2_error err = {0};
    double t0 = sched_now();
    int rc = ev && res ? 0 : c2i_fail(&err, C2_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        sched_trace(s, batch[i], "started");
    }
    if (!rc) {
        rc = s->backend->run(s->backend, batch[0]->geom->g, ev, n, res, &err);
    }
    double t1 = sched_now();
    for (uint32_t i = 0; i < n; i++) {
        sched_finish(s, batch[i], rc, res ? &res[i] : NULL, err.msg, t0, t1);
        if (res) {
            c2_event_result_free(&res[i]);
        }
    }
    free(ev);
    free(res);
    pthread_mutex_lock(&s->mu);
    s->window_busy += t1 - t0;
    s->window_reply += s->reply_pending;
    s->reply_pending = 0;
    pthread_mutex_unlock(&s->mu);
}

/* A batch handed to a streaming backend (cuda): its events are answered
 * one by one as the backend finishes them; freed after the last. */
typedef struct sched_feed {
    c2d_sched *s;
    uint32_t n, left;
    double t0;
    sched_event **ev;
    c2_event *views;
    c2_event_result *res;
} sched_feed;

static void sched_feed_free(sched_feed *f)
{
    free(f->ev);
    free(f->views);
    free(f->res);
    free(f);
}

/* The backend's done call (on the backend thread, inside feed or poll). */
static void sched_feed_done(void *arg, uint32_t i, int rc)
{
    sched_feed *f = arg;
    c2d_sched *s = f->s;
    sched_finish(s, f->ev[i], rc, &f->res[i], c2_errname(rc), f->t0, sched_now());
    c2_event_result_free(&f->res[i]);
    if (--f->left == 0) {
        sched_feed_free(f);
    }
}

/* Hands a batch to a streaming backend; on a refusal (an event the engine
 * rejects, no memory) every event of it is answered with the reason. */
static void sched_feed_batch(c2d_sched *s, sched_event **batch, uint32_t n)
{
    c2_error err = {0};
    sched_feed *f = calloc(1, sizeof *f);
    int rc = f && (f->ev = malloc(n * sizeof *f->ev)) && (f->views = sched_views(batch, n)) &&
                     (f->res = calloc(n, sizeof *f->res))
                 ? 0
                 : c2i_fail(&err, C2_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        sched_trace(s, batch[i], "started");
    }
    if (!rc) {
        f->s = s;
        f->n = f->left = n;
        f->t0 = sched_now();
        memcpy(f->ev, batch, n * sizeof *batch);
        rc = s->backend->feed(s->backend, batch[0]->geom->g, f->views, n, f->res, sched_feed_done, f, &err);
    }
    if (rc) { /* nothing of it was fed: no done call will come */
        double t = sched_now();
        for (uint32_t i = 0; i < n; i++) {
            sched_finish(s, batch[i], rc, NULL, err.msg, t, t);
        }
        if (f) {
            sched_feed_free(f);
        }
    }
}

/* How long a streaming backend keeps the device with nothing to do. */
#define SCHED_IDLE_NS 5000000L

/* The backend thread of a streaming backend: feeds batches while earlier
 * ones run (up to twice batch_photons in flight, so the device never waits
 * for the host between batches), polls for finished events, and lets the
 * device go when nothing was queued or running for SCHED_IDLE_NS. On stop it lets the running
 * events end (their stop flags are set) before it returns. */
static void sched_stream(c2d_sched *s, sched_event **batch)
{
    int active = 0;    /* the backend holds the device */
    int idle_wait = 0; /* waited SCHED_IDLE_NS for more work since the last */
    double last = sched_now();
    pthread_mutex_lock(&s->mu);
    while (!s->stopping || s->nrunning) {
        uint32_t n = 0;
        if (!s->stopping && (s->nrunning == 0 || s->running_photons < 2 * s->cfg->batch_photons)) {
            n = sched_pop_batch(s, batch);
        }
        if (!n && !s->nrunning) {
            if (active && !s->stopping && !idle_wait) { /* a client waiting for its answer sends again soon */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += SCHED_IDLE_NS;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
                idle_wait = 1;
                last = sched_now(); /* nothing was in flight while it waited */
                continue;
            }
            if (active) { /* idle: let the device go, then wait */
                pthread_mutex_unlock(&s->mu);
                s->backend->idle(s->backend);
                sched_backend_check(s);
                pthread_mutex_lock(&s->mu);
                active = 0;
                last = sched_now();
                continue;
            }
            if (s->stopping) {
                break;
            }
            pthread_cond_wait(&s->cv, &s->mu);
            last = sched_now();
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        active = 1;
        idle_wait = 0;
        if (n) {
            sched_feed_batch(s, batch, n);
        }
        c2_error err = {0};
        if (s->backend->poll(s->backend, n ? 0.0 : 1e-3, &err) < 0) {
            sched_backend_check(s); /* its events were answered with the reason */
        }
        double now = sched_now();
        pthread_mutex_lock(&s->mu);
        s->window_busy += now - last; /* events were in flight all along */
        s->window_reply += s->reply_pending;
        s->reply_pending = 0;
        last = now;
    }
    pthread_mutex_unlock(&s->mu);
    if (active) {
        s->backend->idle(s->backend);
    }
}

static void *sched_main(void *arg)
{
    c2d_sched *s = arg;
    sched_event **batch = calloc(s->cfg->max_queued, sizeof *batch);
    if (batch && s->backend->feed) {
        sched_stream(s, batch);
        free(batch);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    while (batch && !s->stopping) {
        if (s->nheap == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint32_t n = sched_pop_batch(s, batch);
        pthread_mutex_unlock(&s->mu);
        sched_run_batch(s, batch, n);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    free(batch);
    return NULL;
}

/* ---- life and queries ---- */

c2d_sched *c2d_sched_new(const c2d_config *cfg, c2d_backend *backend)
{
    c2d_sched *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->cfg = cfg;
    s->backend = backend;
    s->heap = calloc(cfg->max_queued, sizeof *s->heap);
    s->running = calloc(cfg->max_queued, sizeof *s->running);
    s->window_start = sched_now();
    s->counts.pool_limit = cfg->pool_bytes;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->heap || !s->running || pthread_create(&s->thread, NULL, sched_main, s)) {
        free(s->heap);
        free(s->running);
        free(s);
        return NULL;
    }
    return s;
}

void c2d_sched_drain(c2d_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_mutex_unlock(&s->mu);
}

int c2d_sched_idle(c2d_sched *s)
{
    pthread_mutex_lock(&s->mu);
    int idle = s->nheap == 0 && s->nrunning == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

static uint64_t sched_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

void c2d_sched_fail(c2d_sched *s, const char *why)
{
    pthread_mutex_lock(&s->mu);
    sched_break(s, why);
    pthread_mutex_unlock(&s->mu);
}

int c2d_sched_broken(c2d_sched *s, char *why, size_t len)
{
    pthread_mutex_lock(&s->mu);
    int broken = s->broken[0] != 0;
    snprintf(why, len, "%s", s->broken);
    pthread_mutex_unlock(&s->mu);
    return broken;
}

void c2d_sched_counts(c2d_sched *s, c2d_counts *c)
{
    uint64_t rss = sched_rss_bytes();
    pthread_mutex_lock(&s->mu);
    *c = s->counts;
    c->queued = s->nheap;
    c->running = s->nrunning;
    c->pool_bytes = s->pool_bytes + c2d_answers_held();
    c->draining = s->draining;
    memcpy(c->broken, s->broken, sizeof c->broken);
    c->geometries = s->ngeoms;
    c->rss_bytes = rss;
    pthread_mutex_unlock(&s->mu);
}

static void sched_pack_one(msgpack_packer *pk, const sched_event *e, double now)
{
    msgpack_pack_map(pk, 8);
    c2p_pack_kv_u64(pk, "ticket", e->ticket);
    c2p_pack_kv_u64(pk, "event_id", e->ev.event_id);
    c2p_pack_kv_str(pk, "geometry", e->geom->name);
    c2p_pack_kv_u64(pk, "photons", e->photons);
    c2p_pack_kv_str(pk, "state", e->state == EV_RUNNING ? "running" : "queued");
    c2p_pack_kv_i64(pk, "priority", e->ev.priority);
    c2p_pack_kv_f64(pk, "age_ms", 1e3 * (now - e->t_accept));
    c2p_pack_kv_str(pk, "peer", e->peer);
}

void c2d_sched_pack_events(c2d_sched *s, msgpack_packer *pk)
{
    double now = sched_now();
    pthread_mutex_lock(&s->mu);
    msgpack_pack_array(pk, s->nrunning + s->nheap);
    for (uint32_t i = 0; i < s->nrunning; i++) {
        sched_pack_one(pk, s->running[i], now);
    }
    for (uint32_t i = 0; i < s->nheap; i++) {
        sched_pack_one(pk, s->heap[i], now);
    }
    pthread_mutex_unlock(&s->mu);
}

int c2d_sched_add_geometry(c2d_sched *s, c2d_geometry *g, int replace, c2p_err *err)
{
    c2d_geometry *old = NULL;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t at = s->ngeoms;
    for (uint32_t i = 0; i < s->ngeoms; i++) {
        if (strcmp(s->geoms[i]->name, g->name) == 0) {
            at = i;
        }
    }
    if (at < s->ngeoms && !replace) {
        rc = c2i_fail(err, C2P_EXISTS, "geometry '%s' is loaded (digest %s); unload it or send replace", g->name,
                      s->geoms[at]->digest);
    } else if (at == s->ngeoms && s->ngeoms == C2D_MAX_GEOMETRIES) {
        rc = c2i_fail(err, C2P_TOO_LARGE, "%d geometries are loaded, the most there can be", C2D_MAX_GEOMETRIES);
    } else {
        if (at < s->ngeoms) {
            old = s->geoms[at];
            old->unloaded = 1;
            old = old->refs == 0 ? old : NULL; /* else its last event frees it */
        } else {
            s->ngeoms++;
        }
        s->geoms[at] = g;
    }
    pthread_mutex_unlock(&s->mu);
    if (old) {
        sched_geometry_free(s, old);
    }
    return rc;
}

int c2d_sched_unload_geometry(c2d_sched *s, const char *name, c2p_err *err)
{
    c2d_geometry *g = NULL;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < s->ngeoms && !g; i++) {
        if (strcmp(s->geoms[i]->name, name) == 0) {
            g = s->geoms[i];
            s->geoms[i] = s->geoms[--s->ngeoms];
            g->unloaded = 1;
        }
    }
    int now = g && g->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!g) {
        return c2i_fail(err, C2P_NOT_FOUND, "geometry '%s' is not loaded", name);
    }
    if (now) {
        sched_geometry_free(s, g);
    }
    return 0;
}

void c2d_sched_pack_geometries(c2d_sched *s, msgpack_packer *pk)
{
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->ngeoms;
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const c2d_geometry *g = s->geoms[i];
        msgpack_pack_map(pk, 6);
        c2p_pack_kv_str(pk, "name", g->name);
        c2p_pack_kv_str(pk, "digest", g->digest);
        c2p_pack_kv_u64(pk, "triangles", c2_geometry_ntriangles(g->g));
        c2p_pack_kv_u64(pk, "channels", c2_geometry_nchannels(g->g));
        c2p_pack_key(pk, "wavelengths");
        msgpack_pack_map(pk, 3);
        c2p_pack_kv_f64(pk, "min", c2_geometry_wl_min(g->g));
        c2p_pack_kv_f64(pk, "step", c2_geometry_wl_step(g->g));
        c2p_pack_kv_u64(pk, "n", c2_geometry_nwl(g->g));
        c2p_pack_kv_bool(pk, "builtin", g->builtin);
    }
    pthread_mutex_unlock(&s->mu);
}

void c2d_sched_stop(c2d_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->draining = 1; /* a submit racing with this is refused, never queued */
    s->stopping = 1;
    for (uint32_t i = 0; i < s->nrunning; i++) { /* the running batch ends early */
        __atomic_store_n(&s->running[i]->stop, 1, __ATOMIC_RELAXED);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL); /* once the running batch has answered */
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->nheap;
    sched_event **left = s->heap;
    s->heap = calloc(s->cfg->max_queued, sizeof *s->heap);
    s->nheap = 0;
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < n; i++) {
        sched_fail(s, left[i], C2P_SHUTTING_DOWN, "the daemon stopped before this event ran");
    }
    free(left);
}

void c2d_sched_free(c2d_sched *s)
{
    if (!s) {
        return;
    }
    for (uint32_t i = 0; i < s->ngeoms; i++) { /* no events are left */
        sched_geometry_free(s, s->geoms[i]);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->heap);
    free(s->running);
    free(s);
}

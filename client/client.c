/*
 * client.c: libchroma2-client (chroma2/client.h).
 *
 * One REQ socket per client, dialled without blocking so NNG reconnects in
 * the background with backoff (100 ms to 2 s). Each request has its own
 * context and aio and completes its futures (one, or one per event of a
 * submit_events); the aio is a two-state machine: SEND, then RECV,
 * started from the send's completion (never both at once: nng 1.5.2
 * crashed when a receive was cancelled while its send was pending, #1702).
 * Resending is off (NNG_OPT_REQ_RESENDTIME infinite), so a slow event is
 * never sent twice. A request not yet sent waits for a connection; one sent
 * on a connection that breaks fails with C2_EIO (it is not resent, and the
 * daemon cancels that connection's events, so none runs twice).
 *
 * Threads: futures complete on NNG's threads; the future's mutex and
 * condition variable hand the outcome to waiters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>

#include "../../proto/nng_packer.h"
#include "../../proto/proto.h"
#include "chroma2/client.h"

#define CLIENT_CLOSE_WAIT_MS 2000

/* The public remote codes are the wire codes. */
#define CLIENT_SAME(name, val) _Static_assert((int)C2_REMOTE_##name == (int)C2P_##name, "C2_REMOTE_" #name);
C2P_ERRORS(CLIENT_SAME)
#undef CLIENT_SAME

/* A client lives until it is closed and its last future is freed: futures
 * may be freed after c2_client_close and must find it still there. */
struct c2_client {
    nng_socket sock;
    nng_dialer dialer;
    pthread_mutex_t mu; /* next_id, closed, nfutures, connected, live */
    pthread_cond_t cv;  /* connected changed */
    uint64_t next_id;
    int closed;
    uint32_t nfutures;
    int connected;          /* a connection has finished its handshake */
    struct c2_future *live; /* futures not yet freed */
};

/* NNG calls this with the socket's lock held: only the flag changes here. */
static void client_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    c2_client *c = arg;
    pthread_mutex_lock(&c->mu);
    c->connected = ev == NNG_PIPE_EV_ADD_POST;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* The CLOCK_REALTIME instant ms milliseconds from now, for timed waits. */
static struct timespec client_deadline(uint32_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static void client_free(c2_client *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

enum { F_SEND, F_RECV, F_DONE };
enum { REQ_CALL, REQ_EVENT, REQ_EVENTS };

/* A request in flight: its context and aio, and the futures it completes
 * (one, or one per event of a submit_events). Freed with its last future,
 * on the thread that frees it (never in its own callback). */
typedef struct client_req {
    c2_client *c;
    nng_ctx ctx;
    nng_aio *aio;
    int state; /* F_*: written by the aio callback, under mu once F_DONE */
    int kind;  /* REQ_* */
    uint64_t id;
    uint32_t timeout_ms;
    pthread_mutex_t mu;         /* the members' outcomes, refs, cancelled */
    uint32_t n, refs;           /* futures; those their users have not freed */
    int cancelled;              /* a cancel was sent for it */
    struct c2_future **members; /* [n], each held until the callback completed it */
} client_req;

/* A future is held by its user (until c2_future_free) and by its request
 * (until the request's callback has completed it), and freed by whichever
 * lets go last: so the callback never holds a lock while it calls the
 * user's completion callback (the Python client's takes the GIL). */
struct c2_future {
    client_req *req;
    uint32_t index; /* in req->members */
    pthread_mutex_t mu; /* done, refs, freed, cb */
    pthread_cond_t cv;
    int refs;  /* 2, then 1, then 0 */
    int freed; /* by its user: no callback any more */
    int done;
    int rc;
    c2_error err;
    c2p_result result; /* events */
    nng_msg *reply;    /* other requests */
    void (*cb)(c2_future *, void *);
    void *cb_arg;
    struct c2_future *prev, *next; /* in the client's live list, under its mu */
};

/* Takes a freed future off its client; frees the client after its last
 * future once it is closed. */
static void client_release(c2_client *c, c2_future *f)
{
    pthread_mutex_lock(&c->mu);
    if (f->prev) {
        f->prev->next = f->next;
    } else {
        c->live = f->next;
    }
    if (f->next) {
        f->next->prev = f->prev;
    }
    int last = --c->nfutures == 0 && c->closed;
    pthread_mutex_unlock(&c->mu);
    if (last) {
        client_free(c);
    }
}

struct c2_reply {
    nng_msg *msg;
};

int c2_client_open(const char *url, c2_client **out, c2_error *err)
{
    if (!url) {
        url = getenv("CHROMA2_URL");
        url = url && url[0] ? url : C2_DEFAULT_URL;
    }
    const char *ca = getenv("CHROMA2_TLS_CA");
    if (strncmp(url, "tls+tcp://", 10) == 0 && !(ca && ca[0])) {
        return c2i_fail(err, C2_EINVAL, "%s: tls+tcp:// needs CHROMA2_TLS_CA, a PEM file of the certificates "
                        "that may sign the daemon's", url);
    }
    c2_client *c = calloc(1, sizeof *c);
    if (!c) {
        return c2i_fail(err, C2_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rv = nng_req0_open(&c->sock);
    if (rv == 0) {
        nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, client_pipe_cb, c);
        nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, client_pipe_cb, c);
        nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 100);
        nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 2000);
        nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0); /* results can be large; the daemon is trusted */
        rv = nng_dialer_create(&c->dialer, c->sock, url);
        if (rv == 0 && strncmp(url, "tls+tcp://", 10) == 0) { /* the daemon's certificate is checked */
            const char *name = getenv("CHROMA2_TLS_SERVER_NAME"), *mine = getenv("CHROMA2_TLS_CERT_KEY");
            rv = nng_dialer_set_string(c->dialer, NNG_OPT_TLS_CA_FILE, ca);
            if (rv == 0 && name && name[0]) {
                rv = nng_dialer_set_string(c->dialer, NNG_OPT_TLS_SERVER_NAME, name);
            }
            if (rv == 0 && mine && mine[0]) { /* ours, for a daemon that asks for one (tls-client-ca) */
                rv = nng_dialer_set_string(c->dialer, NNG_OPT_TLS_CERT_KEY_FILE, mine);
            }
        }
        rv = rv ? rv : nng_dialer_start(c->dialer, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            nng_close(c->sock);
        }
    }
    if (rv != 0) {
        client_free(c);
        return c2i_fail(err, rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? C2_EINVAL : C2_EIO,
                           "cannot connect to %s: %s", url, nng_strerror(rv));
    }
    c->next_id = 1;
    *out = c;
    return 0;
}

void c2_client_close(c2_client *c)
{
    if (!c) {
        return;
    }
    /* NNG 1.5.2 has two traps here. A connection closed in the middle of
     * its handshake can stop the daemon's listener for good (#1518): let a
     * connection in progress finish first (at most CLIENT_CLOSE_WAIT_MS).
     * And nng_close can hang while a reply is awaited (#1543, #1813): ask
     * the daemon to cancel the events in flight and wait for their answers
     * (the same bound), so that nothing is awaited when the socket closes. */
    struct timespec until = client_deadline(CLIENT_CLOSE_WAIT_MS);
    pthread_mutex_lock(&c->mu);
    while (!c->connected && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0) {
    }
    c2_future *live = c->live; /* futures are not freed during close: the list holds */
    pthread_mutex_unlock(&c->mu);
    for (c2_future *f = live; f; f = f->next) {
        if (f->req->kind != REQ_CALL && !c2_future_poll(f)) {
            c2_future_cancel(f, NULL);
        }
    }
    for (c2_future *f = live; f; f = f->next) {
        c2_future_wait(f, CLIENT_CLOSE_WAIT_MS);
    }
    nng_close(c->sock); /* futures still in flight complete with NNG_ECLOSED */
    pthread_mutex_lock(&c->mu);
    c->closed = 1;
    int last = c->nfutures == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) {
        client_free(c);
    }
}

/* ---- futures ---- */

/* From the request's callback, with no lock held: f is done. */
static void future_complete(c2_future *f)
{
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    void (*cb)(c2_future *, void *) = f->freed ? NULL : f->cb;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (cb) {
        cb(f, f->cb_arg);
    }
}

/* Lets go of f (its user's hold, or its request's); the last frees it. */
static void future_put(c2_future *f)
{
    pthread_mutex_lock(&f->mu);
    int last = --f->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last) {
        if (f->reply) {
            nng_msg_free(f->reply);
        }
        c2p_result_free(&f->result);
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f);
    }
}

/* Every future of q gets rc and err. */
static void req_fail(client_req *q, int rc, const c2_error *err)
{
    for (uint32_t i = 0; i < q->n; i++) {
        q->members[i]->rc = rc;
        q->members[i]->err = *err;
    }
}

/* The daemon's error as the client reports it ("BUSY: queue full"); its code. */
static int client_remote_error(c2_error *e, const c2p_err *remote)
{
    return c2i_fail(e, remote->code, "%s: %s", c2p_error_name(remote->code), remote->msg);
}

/* Reads a reply into q's futures: an error for all, or each one's result
 * (events), or the message (calls). Under q->mu. */
static void req_take_reply(client_req *q, nng_msg *msg)
{
    c2p_msg m;
    c2p_err perr = {0};
    c2_error e = {0};
    c2_future *f0 = q->members[0];
    if (c2p_parse_reply(&m, nng_msg_body(msg), nng_msg_len(msg), &perr)) {
        req_fail(q, c2i_fail(&e, C2_EIO, "unreadable reply from the daemon: %s", perr.msg), &e);
    } else if (m.id != q->id) {
        req_fail(q, c2i_fail(&e, C2_EIO, "reply to request %llu arrived for %llu", (unsigned long long)m.id,
                             (unsigned long long)q->id), &e);
    } else if (!m.ok) {
        req_fail(q, client_remote_error(&e, &m.error), &e);
    } else if (q->kind == REQ_EVENTS) {
        c2p_result *res = calloc(q->n, sizeof *res);
        c2p_err *errs = calloc(q->n, sizeof *errs);
        if (!res || !errs) {
            req_fail(q, c2i_fail(&e, C2_ENOMEM, "out of memory for %u results", q->n), &e);
        } else if (c2p_decode_results(&m, q->n, res, errs, &perr)) {
            req_fail(q, c2i_fail(&e, C2_EIO, "unreadable results from the daemon: %s", perr.msg), &e);
        } else {
            for (uint32_t i = 0; i < q->n; i++) {
                c2_future *f = q->members[i];
                if (errs[i].code) {
                    f->rc = client_remote_error(&f->err, &errs[i]);
                } else {
                    f->result = res[i]; /* moved */
                }
            }
        }
        free(res);
        free(errs);
    } else if (q->kind == REQ_EVENT) {
        if (c2p_decode_result(&m, &f0->result, &perr)) {
            f0->rc = c2i_fail(&f0->err, C2_EIO, "unreadable result from the daemon: %s", perr.msg);
        }
    } else {
        f0->reply = msg;
        msg = NULL;
    }
    c2p_msg_free(&m);
    if (msg) {
        nng_msg_free(msg);
    }
}

/* Completes q's futures and lets go of them, once their outcomes are in. */
static void req_complete(client_req *q)
{
    for (uint32_t i = 0; i < q->n; i++) {
        future_complete(q->members[i]);
        future_put(q->members[i]);
    }
}

static void req_cb(void *arg)
{
    client_req *q = arg;
    int rv = nng_aio_result(q->aio);
    if (rv == 0 && q->state == F_SEND) { /* this thread is the only writer: reading without the lock is fine */
        q->state = F_RECV;
        nng_ctx_recv(q->ctx, q->aio);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (rv != 0) {
        c2_error e = {0};
        if (q->state == F_SEND) {
            nng_msg_free(nng_aio_get_msg(q->aio)); /* unsent: still ours */
        }
        if (rv == NNG_ETIMEDOUT) {
            req_fail(q, c2i_fail(&e, C2_ETIMEDOUT, "request %llu: no reply within %u ms (is chroma2d running "
                                 "and reachable?)", (unsigned long long)q->id, q->timeout_ms), &e);
        } else {
            req_fail(q, c2i_fail(&e, C2_EIO, "request %llu: no reply from chroma2d: %s", (unsigned long long)q->id,
                                 nng_strerror(rv)), &e);
        }
    } else {
        req_take_reply(q, nng_aio_get_msg(q->aio));
    }
    q->state = F_DONE;
    pthread_mutex_unlock(&q->mu);
    req_complete(q); /* q lives on until this returns: its last future's free waits for it */
}

static void req_free(client_req *q)
{
    pthread_mutex_destroy(&q->mu);
    free(q->members);
    free(q);
}

/* Starts a request whose body the caller has packed after the head, with n
 * futures (kind REQ_EVENTS: one per event) into out[0..n). Takes msg, and
 * refuses it when its packing ran out of memory. */
static int future_start(c2_client *c, int kind, uint32_t n, uint32_t timeout_ms, nng_msg *msg, uint64_t id,
                        c2_future **out, c2_error *err)
{
    if (c2p_nng_failed(msg)) { /* its packing ran out of memory */
        nng_msg_free(msg);
        return c2i_fail(err, C2_ENOMEM, "out of memory packing request %llu", (unsigned long long)id);
    }
    client_req *q = calloc(1, sizeof *q);
    c2_future **fs = q ? calloc(n, sizeof *fs) : NULL;
    int rv = fs ? 0 : NNG_ENOMEM;
    for (uint32_t i = 0; i < n && !rv; i++) {
        rv = (fs[i] = calloc(1, sizeof **fs)) ? 0 : NNG_ENOMEM;
    }
    if (!rv && (rv = nng_ctx_open(&q->ctx, c->sock)) == 0 && (rv = nng_aio_alloc(&q->aio, req_cb, q)) != 0) {
        nng_ctx_close(q->ctx);
    }
    if (rv != 0) {
        nng_msg_free(msg);
        for (uint32_t i = 0; fs && i < n; i++) {
            free(fs[i]);
        }
        free(fs);
        free(q);
        return rv == NNG_ENOMEM ? c2i_fail(err, C2_ENOMEM, "out of memory")
                                : c2i_fail(err, C2_EIO, "cannot start a request: %s", nng_strerror(rv));
    }
    q->c = c;
    q->id = id;
    q->kind = kind;
    q->timeout_ms = timeout_ms;
    q->state = F_SEND;
    q->n = q->refs = n;
    q->members = fs;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        c2_future *f = fs[i];
        f->req = q;
        f->index = i;
        f->refs = 2; /* its user's and its request's */
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cv, NULL);
        c->nfutures++;
        f->next = c->live;
        if (c->live) {
            c->live->prev = f;
        }
        c->live = f;
        out[i] = f;
    }
    pthread_mutex_unlock(&c->mu);
    nng_ctx_set_ms(q->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_aio_set_timeout(q->aio, timeout_ms ? (nng_duration)timeout_ms : NNG_DURATION_INFINITE);
    nng_aio_set_msg(q->aio, msg);
    nng_ctx_send(q->ctx, q->aio);
    return 0;
}

static uint64_t client_next_id(c2_client *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t id = c->next_id++;
    pthread_mutex_unlock(&c->mu);
    return id;
}

int c2_future_wait(c2_future *f, uint32_t timeout_ms)
{
    struct timespec until = client_deadline(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (!f->done && rc == 0) {
        rc = timeout_ms ? pthread_cond_timedwait(&f->cv, &f->mu, &until) : pthread_cond_wait(&f->cv, &f->mu);
    }
    int done = f->done;
    pthread_mutex_unlock(&f->mu);
    return done ? 0 : C2_ETIMEDOUT;
}

int c2_future_poll(c2_future *f)
{
    pthread_mutex_lock(&f->mu);
    int done = f->done;
    pthread_mutex_unlock(&f->mu);
    return done;
}

int c2_future_result(c2_future *f, const c2_event_result **result, c2_error *err)
{
    if (!c2_future_poll(f)) {
        return c2i_fail(err, C2_ESTATE, "the future is not done yet");
    }
    if (f->rc) {
        if (err) {
            *err = f->err;
        }
        return f->rc;
    }
    if (f->req->kind == REQ_CALL) {
        return c2i_fail(err, C2_ESTATE, "not an event's future");
    }
    *result = &f->result.r;
    return 0;
}

uint64_t c2_future_ticket(const c2_future *f) { return f->result.ticket; }

void c2_future_timing(const c2_future *f, double *queued_ms, double *run_ms)
{
    *queued_ms = f->result.queued_ms;
    *run_ms = f->result.run_ms;
}

void c2_future_on_done(c2_future *f, void (*cb)(c2_future *, void *), void *arg)
{
    pthread_mutex_lock(&f->mu);
    int done = f->done;
    if (!done) {
        f->cb = cb;
        f->cb_arg = arg;
    }
    pthread_mutex_unlock(&f->mu);
    if (done) {
        cb(f, arg);
    }
}

static void client_pack_cancel(msgpack_packer *pk, const void *arg)
{
    c2p_pack_kv_u64(pk, "request", *(const uint64_t *)arg);
}

static int client_call_packed(c2_client *c, c2p_type type, void (*body)(msgpack_packer *, const void *),
                              const void *arg, uint32_t nfields, uint32_t timeout_ms, c2_reply **reply,
                              c2_error *err);

int c2_future_cancel(c2_future *f, c2_error *err)
{
    client_req *q = f->req;
    if (c2_future_poll(f)) {
        return 0;
    }
    pthread_mutex_lock(&q->c->mu);
    int closed = q->c->closed;
    pthread_mutex_unlock(&q->c->mu);
    if (closed) {
        return c2i_fail(err, C2_ESTATE, "the client is closed");
    }
    pthread_mutex_lock(&q->mu);
    int again = q->cancelled; /* the group's other futures asked already */
    q->cancelled = 1;
    pthread_mutex_unlock(&q->mu);
    if (again) {
        return 0;
    }
    /* a cancel by request id only works on the same connection: this
     * client's socket; the daemon sees one pipe per client. Once it has
     * the cancel, the daemon also refuses the request if it comes later. */
    c2_reply *r = NULL;
    int rc = client_call_packed(q->c, C2P_T_CANCEL, client_pack_cancel, &q->id, 1, 5000, &r, err);
    c2_reply_free(r);
    if (rc) { /* it did not get there: another may try */
        pthread_mutex_lock(&q->mu);
        q->cancelled = 0;
        pthread_mutex_unlock(&q->mu);
    }
    return rc;
}

void c2_future_free(c2_future *f)
{
    if (!f) {
        return;
    }
    client_req *q = f->req;
    c2_client *c = q->c;
    pthread_mutex_lock(&q->mu);
    int last = q->refs == 1;
    pthread_mutex_unlock(&q->mu);
    if (last && q->kind != REQ_CALL && !c2_future_poll(f)) {
        c2_future_cancel(f, NULL); /* nobody waits for the rest of its request */
    }
    pthread_mutex_lock(&f->mu);
    f->freed = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_lock(&q->mu);
    last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    if (last) {
        nng_aio_stop(q->aio); /* waits for the callback, which lets go of every future */
        if (q->state != F_DONE) { /* stopped between its send and its receive: no callback will come */
            c2_error e = {0};
            req_fail(q, c2i_fail(&e, C2_EIO, "request %llu: stopped", (unsigned long long)q->id), &e);
            q->state = F_DONE;
            req_complete(q);
        }
        nng_aio_free(q->aio);
        nng_ctx_close(q->ctx);
        req_free(q);
    }
    client_release(c, f);
    future_put(f);
}

/* ---- requests ---- */

static int client_call_packed(c2_client *c, c2p_type type, void (*body)(msgpack_packer *, const void *),
                              const void *arg, uint32_t nfields, uint32_t timeout_ms, c2_reply **reply, c2_error *err)
{
    nng_msg *msg;
    if (nng_msg_alloc(&msg, 0) != 0) {
        return c2i_fail(err, C2_ENOMEM, "out of memory");
    }
    msgpack_packer pk;
    c2p_nng_packer_init(&pk, msg);
    uint64_t id = client_next_id(c);
    c2p_pack_request_head(&pk, id, type, nfields);
    if (body) {
        body(&pk, arg);
    }
    c2_future *f;
    int rc = future_start(c, REQ_CALL, 1, timeout_ms, msg, id, &f, err);
    if (rc) {
        return rc;
    }
    c2_future_wait(f, 0); /* the aio's timeout bounds it */
    rc = f->rc;
    if (rc) {
        if (err) {
            *err = f->err;
        }
    } else {
        c2_reply *r = malloc(sizeof *r);
        if (!r) {
            rc = c2i_fail(err, C2_ENOMEM, "out of memory");
        } else {
            r->msg = f->reply;
            f->reply = NULL;
            *reply = r;
        }
    }
    c2_future_free(f);
    return rc;
}

static void client_pack_raw(msgpack_packer *pk, const void *arg)
{
    const struct {
        const void *body;
        size_t len;
    } *raw = arg;
    pk->callback(pk->data, raw->body, raw->len);
}

int c2_client_call(c2_client *c, const char *type, const void *body, size_t body_len, uint32_t nbody_fields,
                   uint32_t timeout_ms, c2_reply **reply, c2_error *err)
{
    c2p_type t = C2P_T_NONE;
    for (int i = 1; i < C2P_T_COUNT; i++) {
        if (type && strcmp(type, c2p_type_name((c2p_type)i)) == 0) {
            t = (c2p_type)i;
        }
    }
    if (t == C2P_T_NONE || t == C2P_T_SUBMIT_EVENT || t == C2P_T_SUBMIT_EVENTS || (body_len && !body)) {
        return c2i_fail(err, C2_EINVAL, "c2_client_call: '%s' is not a request type it can send",
                           type ? type : "(null)");
    }
    struct {
        const void *body;
        size_t len;
    } raw = {body, body_len};
    return client_call_packed(c, t, body_len ? client_pack_raw : NULL, &raw, nbody_fields, timeout_ms, reply, err);
}

const void *c2_reply_data(const c2_reply *r, size_t *len)
{
    *len = nng_msg_len(r->msg);
    return nng_msg_body(r->msg);
}

void c2_reply_free(c2_reply *r)
{
    if (r) {
        nng_msg_free(r->msg);
        free(r);
    }
}

int c2_client_ping(c2_client *c, uint32_t timeout_ms, double *seconds, c2_error *err)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    c2_reply *r = NULL;
    int rc = client_call_packed(c, C2P_T_PING, NULL, NULL, 0, timeout_ms, &r, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c2_reply_free(r);
    if (!rc && seconds) {
        *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    return rc;
}

/* An event and its options as the codec's event (pointing at the caller's
 * arrays, which packing reads and nothing frees), after checking them. */
static int client_event(const c2_event *ev, const c2_submit_opts *opts, c2p_event *pe, c2_error *err)
{
    memset(pe, 0, sizeof *pe);
    const char *geometry = opts && opts->geometry ? opts->geometry : "default";
    if (strlen(geometry) > C2P_NAME_MAX || (opts && opts->digest && strlen(opts->digest) > 64)) {
        return c2i_fail(err, C2_EINVAL, "geometry name or digest too long");
    }
    const c2_photon_columns *cols = &ev->columns;
    if (cols->pos && (ev->photons || !cols->dir || !cols->wavelength)) {
        return c2i_fail(err, C2_EINVAL, "photon columns: pos, dir and wavelength are required, and ev->photons "
                                        "must be NULL");
    }
    if ((ev->nspectra && (!opts || opts->spectra_nwl < 2)) || (ev->nphotons && !ev->photons && !cols->pos) ||
        (ev->nsources && !ev->sources)) {
        return c2i_fail(err, C2_EINVAL, "event arrays missing, or spectra without opts->spectra_nwl");
    }
    strcpy(pe->geometry, geometry);
    if (opts && opts->digest) {
        strcpy(pe->digest, opts->digest);
    }
    pe->event_id = ev->id;
    pe->seed = ev->seed;
    pe->want = ev->want;
    pe->max_steps = ev->max_steps ? ev->max_steps : C2_DEFAULT_MAX_STEPS;
    pe->deadline_ms = opts ? opts->deadline_ms : 0;
    pe->priority = opts ? opts->priority : 0;
    pe->photons = ev->photons;
    pe->cols = ev->columns;
    pe->nphotons = ev->nphotons;
    pe->sources = (c2_source *)ev->sources;
    pe->nsources = ev->nsources;
    pe->spectra = (float *)ev->spectra;
    pe->nspectra = ev->nspectra;
    pe->spectra_nwl = opts ? opts->spectra_nwl : 0;
    return 0;
}

/* Packs and sends n events (kind REQ_EVENT: one submit_event; REQ_EVENTS:
 * one submit_events), their futures into out. */
static int client_send_events(c2_client *c, int kind, const c2p_event *pe, uint32_t n, c2_future **out,
                              c2_error *err)
{
    /* room for the whole request up front: 52 bytes a photon and a source
     * on the wire, plus the spectra and the small fields */
    size_t size = 0;
    for (uint32_t i = 0; i < n; i++) {
        size += 52 * ((size_t)pe[i].nphotons + pe[i].nsources) + 4 * (size_t)pe[i].nspectra * pe[i].spectra_nwl + 1024;
    }
    nng_msg *msg;
    if (nng_msg_alloc(&msg, 0) != 0) {
        return c2i_fail(err, C2_ENOMEM, "out of memory");
    }
    if (nng_msg_reserve(msg, size) != 0) {
        nng_msg_free(msg);
        return c2i_fail(err, C2_ENOMEM, "out of memory for a request of %zu bytes", size);
    }
    msgpack_packer pk;
    c2p_nng_packer_init(&pk, msg);
    uint64_t id = client_next_id(c);
    if (kind == REQ_EVENTS) {
        c2p_pack_events(&pk, id, pe, n);
    } else {
        c2p_pack_event(&pk, id, pe);
    }
    /* With a deadline, the daemon answers by then (DEADLINE at worst); the
     * grace covers the reply's transfer. If nothing comes, the daemon is
     * gone: the future ends with C2_ETIMEDOUT rather than never. */
    uint32_t timeout_ms = pe[0].deadline_ms ? pe[0].deadline_ms + C2_DEADLINE_GRACE_MS : 0;
    return future_start(c, kind, n, timeout_ms, msg, id, out, err);
}

int c2_client_submit(c2_client *c, const c2_event *ev, const c2_submit_opts *opts, c2_future **out, c2_error *err)
{
    c2p_event pe;
    int rc = client_event(ev, opts, &pe, err);
    return rc ? rc : client_send_events(c, REQ_EVENT, &pe, 1, out, err);
}

int c2_client_submit_many(c2_client *c, const c2_event *evs, uint32_t n, const c2_submit_opts *opts, c2_future **out,
                          c2_error *err)
{
    if (n == 0 || n > C2P_MAX_GROUP) {
        return c2i_fail(err, C2_EINVAL, "c2_client_submit_many: %u events (1 to %d in one request)", n,
                        C2P_MAX_GROUP);
    }
    c2p_event *pe = calloc(n, sizeof *pe);
    if (!pe) {
        return c2i_fail(err, C2_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        if ((rc = client_event(&evs[i], opts, &pe[i], err))) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            c2i_fail(err, rc, "event %u: %s", i, why);
        }
    }
    rc = rc ? rc : client_send_events(c, REQ_EVENTS, pe, n, out, err);
    free(pe);
    return rc;
}

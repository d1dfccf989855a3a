/*
 * daemon.h: the parts of chroma2d and how they meet (c2d_ names, internal).
 *
 *   main.c       options, the single-instance lock, the libuv control loop
 *                (signals, timers), sd_notify, start and shutdown
 *   server.c     the NNG REP socket: a pool of contexts, each a small state
 *                machine (receive, handle, reply); requests other than
 *                submit_event are answered on the spot
 *   scheduler.c  accepted events: a bounded priority queue, admission
 *                control, cancellation, deadlines, the backend thread that
 *                merges queued events into batches, statistics
 *   backend_cpu.c  the CPU engine behind the backend interface
 *   digest.c     geometry digests (SHA-256, mbedTLS)
 *   config.c     settings: one table for the command line, file and usage
 *   metrics.c    optional /metrics, /healthz, /readyz over NNG's HTTP server
 *   log.c        levelled logging to stderr
 *
 * Threads: NNG's own threads run the context callbacks (server.c); one
 * backend thread per backend runs batches and answers their events; four
 * sender threads send the replies; a builder thread builds loaded
 * geometries; the main thread runs the libuv loop. The scheduler's state
 * is behind one mutex.
 */
#ifndef C2D_DAEMON_H
#define C2D_DAEMON_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>

#include "../proto/proto.h"
#include "chroma2/engine.h"

#define C2D_VERSION "0.1.0"
#define C2D_DEFAULT_URL "ipc:///run/chroma2/chroma2d.sock"
#define C2D_MAX_LISTEN 8
#define C2D_MAX_OWNED 64
#define C2D_MAX_UIDS 32

typedef struct c2d_config {
    const char *listen[C2D_MAX_LISTEN];
    int nlisten;
    const char *backend;        /* "cpu", "cuda" or "auto" */
    uint32_t threads;           /* engine threads, 0 = every CPU the daemon may use */
    uint32_t max_queued;        /* events accepted but not finished */
    uint32_t max_per_client;    /* of those, from one connection */
    uint64_t max_message_bytes; /* NNG_OPT_RECVMAXSZ */
    uint64_t max_photons;       /* per event */
    uint64_t batch_photons;     /* a batch grows until it holds this many */
    uint64_t pool_bytes;        /* memory all accepted events may hold */
    uint64_t max_client_bytes;  /* of it, one connection's events (beyond their first) */
    uint64_t gpu_pool_bytes;    /* cuda backend: device pool (0: from free memory) */
    uint32_t socket_mode;       /* ipc socket permissions */
    double drain_timeout_s;
    int log_level;              /* C2D_LOG_* */
    int trace;                  /* per-event lifecycle lines */
    uint32_t detector_pmts;     /* PMTs of the built-in detector */
    const char *config_path;    /* --config FILE, or NULL */
    const char *metrics_url;    /* http://HOST:PORT of the metrics endpoint, or NULL */
    const char *tls_cert_key;   /* PEM certificate and key for tls+tcp:// listeners, or NULL */
    const char *tls_client_ca;  /* PEM CA certificates that clients of tls+tcp:// must be signed by, or NULL */
    uint32_t allow_uids[C2D_MAX_UIDS]; /* peers allowed besides the daemon's own user; */
    int nallow_uids;                   /* 0: anyone who can open the socket */
    char *owned[C2D_MAX_OWNED]; /* strings read from the file */
    int nowned;
} c2d_config;

/* config.c: one table serves the command line, the file and the usage. */
void c2d_config_defaults(c2d_config *c);
/* Reads --config FILE (if given) then the other options; err names the
 * bad setting and its source. */
int c2d_config_args(c2d_config *c, int argc, char **argv, char *err, size_t cap);
int c2d_config_file(c2d_config *c, const char *path, char *err, size_t cap);
void c2d_config_usage(FILE *f);
void c2d_config_free(c2d_config *c);

/* ---- logging ---- */
enum { C2D_LOG_ERROR, C2D_LOG_WARN, C2D_LOG_INFO, C2D_LOG_DEBUG };
extern int c2d_log_level;
void c2d_log_write(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Checks the level before formatting anything. */
#define c2d_log(level, ...)                 \
    do {                                    \
        if ((level) <= c2d_log_level) {     \
            c2d_log_write(level, __VA_ARGS__); \
        }                                   \
    } while (0)

/* ---- backends ---- */
/* A backend runs batches on the backend thread. Optional hooks are NULL
 * when a backend has nothing to do there. */
/* A streaming backend's call for each event fed: res[i] is complete (rc
 * 0) or the event failed (rc a C2_E* code). */
typedef void (*c2d_done_fn)(void *arg, uint32_t i, int rc);

typedef struct c2d_backend {
    const char *name;
    char device[128]; /* for hello: "cpu: 16 threads", "NVIDIA H200 (sm_90, ...)" */
    /* A batch backend (cpu): runs a batch to completion on the calling
     * (backend) thread. NULL for a streaming one. */
    int (*run)(struct c2d_backend *b, const c2_geometry *g, const c2_event *ev, uint32_t n, c2_event_result *res,
               c2_error *err);
    /* A streaming backend (cuda; NULL for a batch one), all on the backend
     * thread: feed hands a batch over while earlier ones run (on an error
     * return nothing of it was taken and done is not called); poll moves
     * what runs along, calling done(arg, i, rc) for each event that ended,
     * and returns < 0 when the device failed (every event in flight then
     * got its done call with an error); idle lets the device go while
     * nothing is in flight. ev[], res[] and arg live until the done call. */
    int (*feed)(struct c2d_backend *b, const c2_geometry *g, const c2_event *ev, uint32_t n, c2_event_result *res,
                c2d_done_fn done, void *arg, c2_error *err);
    int (*poll)(struct c2d_backend *b, double wait_s, c2_error *err);
    void (*idle)(struct c2d_backend *b);
    /* g is about to be freed: drop what was kept for it. Any thread, never
     * while one of g's events runs. */
    void (*forget)(struct c2d_backend *b, const c2_geometry *g);
    /* NULL while usable; else why the backend can run nothing more (the
     * daemon then stops serving and exits non-zero). */
    const char *(*broken)(struct c2d_backend *b);
    void (*free)(struct c2d_backend *b);
    uint32_t threads;
    void *impl;
} c2d_backend;

int c2d_backend_cpu_init(c2d_backend *b, uint32_t threads);
/* The GPU runtime on the current device (pool_bytes 0: sized from free
 * device memory). Fails, saying why, when no GPU is usable. Only in builds
 * with CUDA (C2D_CUDA defined). */
int c2d_backend_cuda_init(c2d_backend *b, uint64_t pool_bytes, c2_error *err);

/* ---- geometries ---- */
/* A loaded geometry. The scheduler owns it; events hold references, so an
 * unloaded or replaced geometry is freed when its last event is done. */
typedef struct c2d_geometry {
    char name[C2P_NAME_MAX + 1];
    char digest[65]; /* SHA-256 of c2_geometry_content, lowercase hex */
    c2_geometry *g;
    int builtin;
    uint32_t refs;  /* events holding it, under the scheduler's lock */
    int unloaded;   /* no longer found by name */
} c2d_geometry;
#define C2D_MAX_GEOMETRIES 64

/* Fills geom->digest. */
void c2d_geometry_digest(c2d_geometry *geom);

/* ---- the scheduler ---- */
struct c2d_work;
typedef struct c2d_sched c2d_sched;

typedef struct c2d_counts {
    uint64_t accepted, completed, failed, cancelled, expired, rejected_busy;
    uint64_t photons, queued, running, batches;
    double photons_per_s, ns_per_photon;
    double busy, reply_busy; /* shares of the last stats window the backend thread ran batches, answered them */
    uint64_t pool_bytes, pool_limit;
    uint64_t rss_bytes; /* the process's resident memory */
    uint32_t geometries;
    int draining;
    char broken[300]; /* why the daemon can serve nothing more; empty while it can */
} c2d_counts;

/* ---- answers (answer.c): where an event's outcome goes ---- */
typedef struct c2d_group c2d_group;
/* An event's own submit_event request (work), or slot index of a
 * submit_events request (group). Answered exactly once. */
typedef struct c2d_target {
    struct c2d_work *work;
    c2d_group *group;
    uint32_t index;
} c2d_target;
/* A submit_events request of n events that work answers once all n are;
 * request (which the events' photon columns point into) is freed with it. */
c2d_group *c2d_group_new(struct c2d_work *work, uint64_t req_id, nng_msg *request, uint32_t n);
/* Answers t with a result: 0, or -1 when there was no memory to pack it
 * (nothing was sent: answer it with an error). */
int c2d_answer_result(c2d_target t, uint64_t req_id, uint64_t ticket, uint64_t event_id, const c2_event_result *r,
                      uint32_t want, double queued_ms, double run_ms);
void c2d_answer_error(c2d_target t, uint64_t req_id, int code, const char *message);
/* Bytes of answers packed in submit_events groups still waiting for their
 * last event (counted in the memory pool). Any thread. */
uint64_t c2d_answers_held(void);

c2d_sched *c2d_sched_new(const c2d_config *cfg, c2d_backend *backend);
/* Adds a geometry (ownership moves in on success). EXISTS when the name is
 * taken and replace is 0; a replaced one is freed once its events finish. */
int c2d_sched_add_geometry(c2d_sched *s, c2d_geometry *g, int replace, c2p_err *err);
int c2d_sched_unload_geometry(c2d_sched *s, const char *name, c2p_err *err);
/* Packs the loaded geometries' summaries as an array. */
void c2d_sched_pack_geometries(c2d_sched *s, msgpack_packer *pk);
/* Takes an event decoded from a request message (ev's photon columns point
 * into it), answered through to: on success ev and request (NULL when a
 * group holds it) are the scheduler's, freed when the event ends; on error
 * both stay the caller's. Returns 0 or a
 * C2P_* code with a message: BUSY, SHUTTING_DOWN, NOT_FOUND,
 * DIGEST_MISMATCH, BAD_REQUEST. */
int c2d_sched_submit(c2d_sched *s, c2d_target to, uint32_t pipe, const char *peer, uint64_t uid, uint64_t req_id,
                     c2p_event *ev, nng_msg *request, uint64_t *ticket, c2p_err *err);
/* A peer's uid when its connection has none (tcp). */
#define C2D_UID_UNKNOWN UINT64_MAX
/* Cancels by ticket, or by (pipe, request id) when ticket is 0. An event
 * may be cancelled by ticket from its own connection, by its own user, by
 * root or by the daemon's user (uid: the requester's). Returns 1 if an
 * unfinished event was cancelled, 0 if none was, -1 when the ticket's
 * event is someone else's. */
int c2d_sched_cancel(c2d_sched *s, uint64_t ticket, uint32_t pipe, uint64_t uid, uint64_t req_id);
/* Cancels everything of a connection that went away. */
void c2d_sched_pipe_closed(c2d_sched *s, uint32_t pipe);
void c2d_sched_drain(c2d_sched *s);           /* no new events from now on */
int c2d_sched_idle(c2d_sched *s);              /* nothing queued or running */
void c2d_sched_counts(c2d_sched *s, c2d_counts *c);
/* The daemon failed for good (why: "backend cuda failed: ...", "listener
 * lost ..."): no new events, status says failed. The backend thread sets
 * it when the backend breaks; main when a listener is lost. */
void c2d_sched_fail(c2d_sched *s, const char *why);
/* 1 and the reason once failed. */
int c2d_sched_broken(c2d_sched *s, char *why, size_t len);
/* Expires queued events past their deadline; called by a loop timer. */
void c2d_sched_tick(c2d_sched *s);
/* Packs the events list (queued and running) as the value of "events". */
void c2d_sched_pack_events(c2d_sched *s, msgpack_packer *pk);
/* Stops the backend thread after its batch and fails what is still queued
 * (SHUTTING_DOWN); the server must still be up to carry those replies. */
void c2d_sched_stop(c2d_sched *s);
/* Frees a stopped scheduler, once the server is stopped too. */
void c2d_sched_free(c2d_sched *s);

/* ---- metrics.c: Prometheus text and health over NNG's HTTP server ---- */
typedef struct c2d_metrics c2d_metrics;
c2d_metrics *c2d_metrics_start(const char *url, c2d_sched *sched, c2d_backend *backend, c2_error *err);
void c2d_metrics_stop(c2d_metrics *m); /* NULL is fine */

/* ---- the server ---- */
typedef struct c2d_server c2d_server;
struct uv_loop_s;

c2d_server *c2d_server_start(const c2d_config *cfg, c2d_sched *sched, c2d_backend *backend,
                             struct uv_loop_s *loop, c2_error *err);
/* Replies to a work item's request with msg (ownership moves to the
 * server, then NNG) and re-arms it; from any thread. The reply is queued
 * for the server's sender threads: the caller does not write the socket. */
void c2d_work_reply(struct c2d_work *w, nng_msg *msg);
/* Builds an error reply for a work item's request. */
nng_msg *c2d_error_msg(uint64_t id, c2p_type type, int code, const char *message);
/* A packer that appends to msg. */
void c2d_packer_init(msgpack_packer *pk, nng_msg *msg);
/* 1 once a client asked for shutdown; *timeout_ms its drain limit (0: the
 * configured one). Read by the loop thread. */
int c2d_server_shutdown_requested(c2d_server *srv, uint64_t *timeout_ms);
/* 1 (and why) once a listener that stopped serving could not be
 * re-created for 30 s (tried each second; out of descriptors under a
 * connection storm, its directory gone): the daemon can no longer be
 * reached there and exits 1 to be restarted. */
int c2d_server_lost_listener(c2d_server *srv, char *why, size_t len);
/* Stop order: c2d_sched_stop (answers what is unfinished), c2d_server_stop
 * (sends every queued reply, then closes the socket and waits for
 * callbacks; srv is freed by the next uv_run), c2d_sched_free. A listener
 * self-check thread (nng 1.5.2 #1518) runs from start to c2d_server_stop. */
void c2d_server_stop(c2d_server *srv);

#endif

/*
 * chroma2/client.h: the one public header of libchroma2-client, the C
 * client of chroma2d. Link with -lchroma2-client (pkg-config chroma2-client).
 *
 * A c2_client is one connection (NNG REQ socket) to a daemon, reconnecting
 * with backoff when the daemon restarts. Every call is thread-safe; any
 * number of requests may be in flight at once on one client, each on its
 * own NNG context. Submitting an event returns a c2_future: wait on it
 * (with a timeout), poll it, get a callback when it completes, or cancel it.
 *
 * Errors: calls return 0, a negative C2_E* code (engine.h: a local problem
 * such as C2_EINVAL or C2_EIO for a lost connection, C2_ETIMEDOUT), or a
 * positive C2_REMOTE_* code the daemon sent (PROTOCOL.md). The c2_error,
 * when given, holds the code and a message.
 */
#ifndef CHROMA2_CLIENT_H
#define CHROMA2_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes from the daemon, as on the wire (proto/PROTOCOL.md). */
enum {
    C2_REMOTE_MALFORMED = 1,
    C2_REMOTE_BAD_REQUEST = 2,
    C2_REMOTE_VERSION = 3,
    C2_REMOTE_UNKNOWN_TYPE = 4,
    C2_REMOTE_TOO_LARGE = 5,
    C2_REMOTE_BUSY = 6,
    C2_REMOTE_NOT_FOUND = 7,
    C2_REMOTE_DIGEST_MISMATCH = 8,
    C2_REMOTE_DEADLINE = 9,
    C2_REMOTE_CANCELLED = 10,
    C2_REMOTE_SHUTTING_DOWN = 11,
    C2_REMOTE_BACKEND = 12,
    C2_REMOTE_INTERNAL = 13,
    C2_REMOTE_EXISTS = 14
};
#define C2_ETIMEDOUT (-100) /* a wait or request ran out of time */
#define C2_DEADLINE_GRACE_MS 10000u

/* The daemon's default address when neither an URL nor CHROMA2_URL is given. */
#define C2_DEFAULT_URL "ipc:///run/chroma2/chroma2d.sock"

typedef struct c2_client c2_client;
typedef struct c2_future c2_future;

/* Connects to url (NULL: $CHROMA2_URL, else C2_DEFAULT_URL). A tls+tcp://
 * URL needs $CHROMA2_TLS_CA (a PEM file of the certificates that may sign
 * the daemon's) and, when the URL's host is not the certificate's name,
 * $CHROMA2_TLS_SERVER_NAME; a daemon that wants client certificates
 * (tls-client-ca) gets the one in $CHROMA2_TLS_CERT_KEY (a PEM file with
 * the certificate and its private key). Returns at once;
 * the connection is made, and re-made after a daemon restart, in the
 * background. Close with c2_client_close. */
int c2_client_open(const char *url, c2_client **out, c2_error *err);
/* Closes the connection. Futures not yet freed complete with C2_EIO; they
 * must still be freed. No other call on c, c2_future_free of one of its
 * futures included, may run at the same time. */
void c2_client_close(c2_client *c);

/* One request, waited for: type ("ping", "status", "stats", "hello",
 * "events", "drain", ...), with an optional body (a msgpack map's entries
 * beyond v/id/type, packed by the caller: nbody_fields entries in body, or
 * NULL/0). On success *reply (free with c2_reply_free) holds the reply's
 * msgpack map, to read with any msgpack library. timeout_ms 0: no limit. */
typedef struct c2_reply c2_reply;
int c2_client_call(c2_client *c, const char *type, const void *body, size_t body_len, uint32_t nbody_fields,
                   uint32_t timeout_ms, c2_reply **reply, c2_error *err);
const void *c2_reply_data(const c2_reply *r, size_t *len);
void c2_reply_free(c2_reply *r);

/* Round trip of a ping, in seconds. */
int c2_client_ping(c2_client *c, uint32_t timeout_ms, double *seconds, c2_error *err);

/* Options of a submission beyond the c2_event. NULL: all defaults. */
typedef struct c2_submit_opts {
    const char *geometry; /* NULL: "default" */
    const char *digest;   /* NULL: not checked */
    uint32_t spectra_nwl; /* values per spectrum in ev->spectra */
    uint32_t deadline_ms; /* 0: none; else the future also ends with
                             C2_ETIMEDOUT if no reply came by
                             deadline_ms + C2_DEADLINE_GRACE_MS */
    int32_t priority;     /* -10..10 */
} c2_submit_opts;

/* Sends one event. The arrays of ev are copied into the request before
 * this returns. *out is the future of its result. */
int c2_client_submit(c2_client *c, const c2_event *ev, const c2_submit_opts *opts, c2_future **out,
                     c2_error *err);
/* Sends n events (1 to 1024) in one request, with the same options: for
 * many small events, whose cost is the message more than the photons. The
 * arrays are copied before this returns; out[i] is event i's future (each
 * freed on its own). They are admitted, run and refused one by one, but
 * answered together, once the last has finished: cancelling one (or
 * freeing the last unfinished one) cancels those not yet finished. */
int c2_client_submit_many(c2_client *c, const c2_event *evs, uint32_t n, const c2_submit_opts *opts, c2_future **out,
                          c2_error *err);

/* Waits for completion: 0 when done, C2_ETIMEDOUT after timeout_ms
 * (0: wait for ever). */
int c2_future_wait(c2_future *f, uint32_t timeout_ms);
/* 1 when done, else 0; never blocks. */
int c2_future_poll(c2_future *f);
/* The outcome of a done future: 0 and *result (owned by the future, valid
 * until c2_future_free), or the error code with err filled. */
int c2_future_result(c2_future *f, const c2_event_result **result, c2_error *err);
/* The daemon's ticket for the event, once done (0 before or on error). */
uint64_t c2_future_ticket(const c2_future *f);
/* Where the event's time went at the daemon, once done: waiting in its
 * queue and running on its backend, in milliseconds (0 before or on error). */
void c2_future_timing(const c2_future *f, double *queued_ms, double *run_ms);
/* Calls cb(f, arg) once when f completes, on a client thread (or at once on
 * the caller's thread if it already has). cb must not block or free f. */
void c2_future_on_done(c2_future *f, void (*cb)(c2_future *f, void *arg), void *arg);
/* Asks the daemon to cancel the event; the future then completes with
 * C2_REMOTE_CANCELLED (or with its result, if it finished first). */
int c2_future_cancel(c2_future *f, c2_error *err);
/* Frees a future; one not yet done is cancelled first. */
void c2_future_free(c2_future *f);

#ifdef __cplusplus
}
#endif
#endif

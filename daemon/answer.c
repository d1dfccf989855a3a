/*
 * answer.c: how an event's outcome gets back to its client. An event sent
 * alone (submit_event) is answered by its own reply; an event sent with
 * others (submit_events) fills its slot of the group, and the last of the
 * group to be answered sends the one reply that carries them all.
 *
 * Threads: any (the backend thread for results, NNG threads for refusals,
 * the loop thread for deadlines). Each target is answered exactly once;
 * each slot is written by the thread that answers it, and the atomic count
 * of slots left orders those writes before the last thread reads them.
 *
 * Memory: a group's packed answers wait for its last event; their bytes
 * are counted (c2d_answers_held) so that the scheduler's pool limit covers
 * them as it covers events in flight.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "../proto/nng_packer.h"
#include "daemon.h"

/* One event's answer, packed; failed when memory ran out while packing. */
typedef struct answer_slot {
    msgpack_sbuffer sb;
    int failed;
} answer_slot;

static atomic_uint_fast64_t answers_held; /* bytes packed in groups not yet sent */

uint64_t c2d_answers_held(void) { return atomic_load_explicit(&answers_held, memory_order_relaxed); }

struct c2d_group {
    struct c2d_work *work; /* answers the whole request */
    uint64_t req_id;
    nng_msg *request; /* the events' photon columns point into it */
    uint32_t n;
    atomic_uint left;   /* slots not yet answered */
    answer_slot *slots; /* [n] */
};

static int answer_write(void *data, const char *buf, size_t len)
{
    answer_slot *a = data;
    a->failed = a->failed || msgpack_sbuffer_write(&a->sb, buf, len) != 0;
    return a->failed ? -1 : 0;
}

/* A packer that starts slot i afresh. */
static void answer_packer(c2d_group *g, uint32_t i, msgpack_packer *pk)
{
    msgpack_sbuffer_clear(&g->slots[i].sb);
    g->slots[i].failed = 0;
    msgpack_packer_init(pk, &g->slots[i], answer_write);
}

c2d_group *c2d_group_new(struct c2d_work *work, uint64_t req_id, nng_msg *request, uint32_t n)
{
    c2d_group *g = calloc(1, sizeof *g);
    if (!g || !(g->slots = calloc(n, sizeof *g->slots))) {
        free(g);
        return NULL;
    }
    g->work = work;
    g->req_id = req_id;
    g->request = request;
    g->n = n;
    atomic_init(&g->left, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_sbuffer_init(&g->slots[i].sb);
    }
    return g;
}

/* The slot is written; the last one sends the group's reply and frees it. */
static void answer_slot_done(c2d_group *g, uint32_t slot)
{
    atomic_fetch_add_explicit(&answers_held, g->slots[slot].sb.size, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&g->left, 1, memory_order_acq_rel) != 1) {
        return;
    }
    nng_msg *m = NULL;
    int ok = nng_msg_alloc(&m, 0) == 0;
    if (ok) {
        msgpack_packer pk;
        c2d_packer_init(&pk, m);
        c2p_pack_reply_head(&pk, g->req_id, C2P_T_SUBMIT_EVENTS, 1);
        c2p_pack_key(&pk, "results");
        msgpack_pack_array(&pk, g->n);
        for (uint32_t i = 0; i < g->n && ok; i++) {
            const answer_slot *a = &g->slots[i];
            if (a->failed) { /* even its error did not fit: say so here */
                c2p_pack_error_member(&pk, C2P_INTERNAL, "out of memory for this event's answer");
            } else {
                ok = pk.callback(pk.data, a->sb.data, a->sb.size) == 0;
            }
        }
        ok = ok && !c2p_nng_failed(m);
    }
    if (!ok) {
        nng_msg_free(m);
        m = c2d_error_msg(g->req_id, C2P_T_SUBMIT_EVENTS, C2P_INTERNAL, "out of memory for the results");
    }
    for (uint32_t k = 0; k < g->n; k++) { /* uncounted before the reply: a client reading stats after it sees so */
        atomic_fetch_sub_explicit(&answers_held, g->slots[k].sb.size, memory_order_relaxed);
    }
    c2d_work_reply(g->work, m);
    for (uint32_t k = 0; k < g->n; k++) {
        msgpack_sbuffer_destroy(&g->slots[k].sb);
    }
    free(g->slots);
    nng_msg_free(g->request);
    free(g);
}

int c2d_answer_result(c2d_target t, uint64_t req_id, uint64_t ticket, uint64_t event_id, const c2_event_result *r,
                      uint32_t want, double queued_ms, double run_ms)
{
    msgpack_packer pk;
    if (t.group) {
        answer_packer(t.group, t.index, &pk);
        c2p_pack_result_member(&pk, ticket, event_id, r, want, queued_ms, run_ms);
        if (t.group->slots[t.index].failed) {
            return -1; /* the caller answers with an error instead */
        }
        answer_slot_done(t.group, t.index);
        return 0;
    }
    nng_msg *m = NULL;
    if (nng_msg_alloc(&m, 0) != 0) {
        return -1;
    }
    c2d_packer_init(&pk, m);
    c2p_pack_result(&pk, req_id, ticket, event_id, r, want, queued_ms, run_ms);
    if (c2p_nng_failed(m)) {
        nng_msg_free(m);
        return -1; /* the caller answers with an error instead */
    }
    c2d_work_reply(t.work, m);
    return 0;
}

void c2d_answer_error(c2d_target t, uint64_t req_id, int code, const char *message)
{
    if (t.group) {
        msgpack_packer pk;
        answer_packer(t.group, t.index, &pk); /* over a result that could not be packed whole */
        c2p_pack_error_member(&pk, code, message);
        answer_slot_done(t.group, t.index);
    } else if (t.work) {
        c2d_work_reply(t.work, c2d_error_msg(req_id, C2P_T_SUBMIT_EVENT, code, message));
    }
}

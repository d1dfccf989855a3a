/*
 * engine.c: the CPU engine. Propagates a batch of events to completion on N
 * threads with the shared physics (kernels/physics/propagate.h).
 *
 * Work is cut into chunks of CHUNK photons across all events; threads claim
 * chunks with one atomic counter. A photon's history depends only on (seed,
 * event id, photon id), never on which thread ran it, and results are put in
 * a fixed order afterwards (end states by photon id, hits sorted by photon
 * id, counters summed), so any thread count and any split of events into
 * batches give the same bytes. A reemitted photon (C2K_SPAWN) goes on
 * stepping on the same thread: with counter-based random numbers that is the
 * same as queueing it, which is what the GPU runtime does.
 *
 * Ownership: the job and the per-thread hit lists live for one call; the
 * result arrays are handed to the caller.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../geometry/geometry_int.h"
#include "../physics/propagate.h"
#include "engine_int.h"

#define CHUNK 256u
#define MAX_THREADS 1024u

typedef struct eng_hit {
    uint32_t event;
    c2_hit hit;
} eng_hit;

typedef struct eng_counts {
    uint64_t steps;
    uint32_t nreemit, nmaxsteps, nnan;
} eng_counts;

/* One thread's output: its hits and per-event counters. */
typedef struct eng_worker {
    struct eng_job *job;
    eng_hit *hits;
    size_t nhits, cap;
    eng_counts *counts; /* [nevents] */
    int failed;
} eng_worker;

typedef struct eng_job {
    c2k_geom view;
    const c2_event *events;
    c2k_event *kev;       /* [nevents]: the events as the physics sees them */
    uint32_t nevents;
    uint64_t *chunk_base; /* [nevents + 1]: first chunk of each event */
    c2_photon **ends;     /* [nevents]: end states when asked for, else NULL */
    c2_photon **records;  /* [nevents]: explicit photons made from columns, else NULL */
    atomic_uint_fast64_t next_chunk;
} eng_job;

static uint64_t eng_nphotons(const c2k_event *ev) { return ev->source_base[ev->nsources]; }

static int eng_add_hit(eng_worker *w, uint32_t e, const c2_photon *p)
{
    if (w->nhits == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 1024;
        eng_hit *h = realloc(w->hits, cap * sizeof *h);
        if (!h) {
            return -1;
        }
        w->hits = h;
        w->cap = cap;
    }
    eng_hit *h = &w->hits[w->nhits++];
    h->event = e;
    h->hit.photon_id = p->id;
    h->hit.channel = p->channel;
    h->hit.time = p->time;
    h->hit.wavelength = p->wavelength;
    memcpy(h->hit.pos, p->pos, sizeof h->hit.pos);
    h->hit.flags = p->flags;
    return 0;
}

static void eng_photon(eng_worker *w, uint32_t e, uint32_t id)
{
    eng_job *j = w->job;
    const c2_event *ev = &j->events[e];
    c2_photon p;
    c2k_make_photon(&j->view, &j->kev[e], e, id, &p);
    eng_counts *c = &w->counts[e];
    c->nreemit += c2k_run_photon(&j->view, &j->kev[e], &p);
    c->steps += p.steps;
    c->nmaxsteps += (p.flags & C2_MAX_STEPS) != 0;
    c->nnan += (p.flags & C2_NAN_ABORT) != 0;
    if (j->ends[e]) {
        j->ends[e][id] = p;
    }
    if ((p.flags & C2_SURFACE_DETECT) && p.channel != C2_NO_CHANNEL && (ev->want & (C2_RETURN_HITS | C2_RETURN_CHANNELS))) {
        if (eng_add_hit(w, e, &p)) {
            w->failed = 1;
        }
    }
}

static void *eng_worker_main(void *arg)
{
    eng_worker *w = arg;
    eng_job *j = w->job;
    uint64_t nchunks = j->chunk_base[j->nevents];
    for (;;) {
        uint64_t c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed);
        if (c >= nchunks || w->failed) {
            break;
        }
        uint32_t e = c2k_find(j->chunk_base, j->nevents, c); /* skips empty events */
        const int *stop = j->events[e].stop;
        if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
            continue;
        }
        uint64_t n = eng_nphotons(&j->kev[e]);
        uint64_t first = (c - j->chunk_base[e]) * CHUNK;
        uint64_t last = first + CHUNK < n ? first + CHUNK : n;
        for (uint64_t id = first; id < last; id++) {
            eng_photon(w, e, (uint32_t)id);
        }
    }
    return NULL;
}

/* ---- validation ---- */

/* | |v| - 1 | <= tol, on the squared norm: no square root (a million photons
 * are checked on the request path); false for NaN */
static int eng_unit(const float *v, float tol)
{
    c2k_vec3 u = c2k_load3(v);
    float n2 = c2k_dot(u, u);
    return n2 >= (1.0f - tol) * (1.0f - tol) && n2 <= (1.0f + tol) * (1.0f + tol);
}
static int eng_finite(const float *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            return 0;
        }
    }
    return 1;
}

void c2i_event_photons(const c2_event *ev, uint32_t first, uint32_t n, c2_photon *out)
{
    if (ev->photons) {
        memcpy(out, ev->photons + first, (size_t)n * sizeof *out);
        return;
    }
    const c2_photon_columns *c = &ev->columns;
    const struct {
        const void *col;
        size_t comps, offset;
        float absent;
    } cols[] = {{c->pos, 3, offsetof(c2_photon, pos), 0.0f},      {c->dir, 3, offsetof(c2_photon, dir), 0.0f},
                {c->wavelength, 1, offsetof(c2_photon, wavelength), 0.0f},
                {c->pol, 3, offsetof(c2_photon, pol), 0.0f},      {c->time, 1, offsetof(c2_photon, time), 0.0f},
                {c->weight, 1, offsetof(c2_photon, weight), 1.0f}};
    memset(out, 0, (size_t)n * sizeof *out);
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        char *dst = (char *)out + cols[k].offset;
        if (cols[k].col) {
            c2i_copy32(dst, sizeof *out, (const char *)cols[k].col + (size_t)first * 4 * cols[k].comps,
                       4 * cols[k].comps, n, cols[k].comps);
        }
        for (uint32_t i = 0; !cols[k].col && cols[k].absent != 0.0f && i < n; i++) {
            memcpy(dst + (size_t)i * sizeof *out, &cols[k].absent, 4); /* one value: weight */
        }
    }
}

float c2i_event_weight(const c2_event *ev, uint32_t i)
{
    float w = 1.0f;
    if (ev->photons) {
        w = ev->photons[i].weight;
    } else if (ev->columns.weight) {
        memcpy(&w, (const char *)ev->columns.weight + 4 * (size_t)i, 4);
    }
    return w;
}

int c2_event_validate(const c2_geometry *g, const c2_event *ev, c2_error *err)
{
    if (!g || !g->built) {
        return c2i_fail(err, C2_ESTATE, "geometry is not built");
    }
    const float wl_lo = g->wl_min, wl_hi = g->wl_min + g->wl_step * (float)(g->nwl - 1);
    const float tol = 1e-3f;
    if (ev->want & ~(uint32_t)(C2_RETURN_HITS | C2_RETURN_PHOTONS | C2_RETURN_CHANNELS)) {
        return c2i_fail(err, C2_EINVAL, "want has unknown bits 0x%x", ev->want);
    }
    const c2_photon_columns *cols = &ev->columns;
    if (ev->photons && cols->pos) {
        return c2i_fail(err, C2_EINVAL, "photons given both as records and as columns");
    }
    if (cols->pos && (!cols->dir || !cols->wavelength)) {
        return c2i_fail(err, C2_EINVAL, "photon columns: pos, dir and wavelength are required");
    }
    if ((ev->nphotons && !ev->photons && !cols->pos) || (ev->nsources && !ev->sources) ||
        (ev->nspectra && !ev->spectra)) {
        return c2i_fail(err, C2_EINVAL, "photons, sources or spectra is NULL with a nonzero count");
    }
    c2_photon block[256]; /* columns are checked as records, a block at a time */
    for (uint32_t i = 0; i < ev->nphotons; i++) {
        if (i % 256 == 0) {
            c2i_event_photons(ev, i, ev->nphotons - i < 256 ? ev->nphotons - i : 256, block);
        }
        const c2_photon *p = &block[i % 256];
        if (!eng_finite(p->pos, 3) || !isfinite(p->time) || !isfinite(p->weight) || p->weight < 0.0f) {
            return c2i_fail(err, C2_ERANGE, "photon %u: position, time and weight must be finite (weight >= 0)", i);
        }
        if (!eng_finite(p->dir, 3) || !eng_unit(p->dir, tol)) {
            return c2i_fail(err, C2_ERANGE, "photon %u: direction (%g, %g, %g) is not a unit vector", i, p->dir[0],
                            p->dir[1], p->dir[2]);
        }
        c2k_vec3 pol = c2k_load3(p->pol);
        if (!eng_finite(p->pol, 3) ||
            (c2k_dot(pol, pol) != 0.0f && (!eng_unit(p->pol, tol) || fabsf(c2k_dot(pol, c2k_load3(p->dir))) > tol))) {
            return c2i_fail(err, C2_ERANGE, "photon %u: polarisation must be zero or a unit vector perpendicular to "
                                            "the direction", i);
        }
        if (!(p->wavelength >= wl_lo && p->wavelength <= wl_hi)) {
            return c2i_fail(err, C2_ERANGE, "photon %u: wavelength %g nm outside the geometry's grid [%g, %g]", i,
                            p->wavelength, wl_lo, wl_hi);
        }
    }
    for (uint32_t k = 0; k < ev->nspectra; k++) {
        const float *cdf = ev->spectra + (size_t)k * g->nwl;
        for (uint32_t i = 0; i < g->nwl; i++) {
            if (!isfinite(cdf[i]) || cdf[i] < 0.0f || (i > 0 && cdf[i] < cdf[i - 1])) {
                return c2i_fail(err, C2_EINVAL, "spectrum %u: value [%u] = %g breaks a nondecreasing CDF", k, i,
                                cdf[i]);
            }
        }
        if (fabsf(cdf[g->nwl - 1] - 1.0f) > 1e-4f) {
            return c2i_fail(err, C2_EINVAL, "spectrum %u: CDF ends at %g, not 1", k, cdf[g->nwl - 1]);
        }
    }
    uint64_t total = ev->nphotons;
    for (uint32_t i = 0; i < ev->nsources; i++) {
        const c2_source *s = &ev->sources[i];
        if (!eng_finite(s->pos, 3) || !isfinite(s->time) || !isfinite(s->cos_half_angle) ||
            s->cos_half_angle > 1.0f) {
            return c2i_fail(err, C2_ERANGE, "source %u: position, time and cos_half_angle (<= 1) must be finite", i);
        }
        if (s->cos_half_angle > -1.0f && (!eng_finite(s->dir, 3) || !eng_unit(s->dir, tol))) {
            return c2i_fail(err, C2_ERANGE, "source %u: cone axis (%g, %g, %g) is not a unit vector", i, s->dir[0],
                            s->dir[1], s->dir[2]);
        }
        if (s->spectrum >= 0 ? (uint32_t)s->spectrum >= ev->nspectra
                             : (s->spectrum != -1 || !(s->wavelength >= wl_lo && s->wavelength <= wl_hi))) {
            return c2i_fail(err, C2_ERANGE,
                            "source %u: needs a wavelength in [%g, %g] nm or a spectrum index below %u (got %g, %d)",
                            i, wl_lo, wl_hi, ev->nspectra, s->wavelength, s->spectrum);
        }
        total += s->nphotons;
    }
    if (total > UINT32_MAX) {
        return c2i_fail(err, C2_ELIMIT, "event has %llu photons (limit %u)", (unsigned long long)total, UINT32_MAX);
    }
    return 0;
}

/* ---- results ---- */

void c2_event_result_free(c2_event_result *r)
{
    free(r->hits);
    free(r->photons);
    free(r->channels);
    memset(r, 0, sizeof *r);
}

static int eng_cmp_hit(const void *a, const void *b)
{
    uint32_t x = ((const c2_hit *)a)->photon_id, y = ((const c2_hit *)b)->photon_id;
    return x < y ? -1 : x > y;
}

void c2i_radix_order(const uint32_t *keys, uint32_t n, uint32_t *order, uint32_t *tmp)
{
    uint32_t top = 0;
    for (uint32_t i = 0; i < n; i++) {
        top |= keys[i];
    }
    int bits = 0;
    while (bits < 32 && top >> bits) {
        bits++;
    }
    /* digits of at most 11 bits: their counts stay in L1 and the scatter
     * writes to few places; as many passes as the largest key needs */
    const int passes = bits ? (bits + 10) / 11 : 1, width = bits ? (bits + passes - 1) / passes : 1;
    const uint32_t mask = (1u << width) - 1;
    uint32_t count[(1u << 11) + 1];
    /* the last pass writes order */
    uint32_t *in = NULL, *out = passes % 2 ? order : tmp;
    for (int pass = 0; pass < passes; pass++) {
        const int shift = pass * width;
        memset(count, 0, (mask + 2) * sizeof *count);
        for (uint32_t i = 0; i < n; i++) {
            count[((keys[in ? in[i] : i] >> shift) & mask) + 1]++;
        }
        for (uint32_t d = 0; d <= mask; d++) {
            count[d + 1] += count[d];
        }
        for (uint32_t i = 0; i < n; i++) {
            const uint32_t k = in ? in[i] : i;
            out[count[(keys[k] >> shift) & mask]++] = k;
        }
        in = out;
        out = out == order ? tmp : order;
    }
}

/* Adds hit h (of photon weight w) to summary c, opened at the first one. */
static void eng_channel_add(c2_channel_summary *c, const c2_hit *h, float w)
{
    if (c->count++ == 0) {
        c->channel = h->channel;
        c->first_time = h->time;
    }
    c->first_time = fminf(c->first_time, h->time);
    c->charge += w;
}

/* Per-channel count, earliest time and charge from an event's hits. Each
 * channel's hits are added in photon-id order, so the charge sums are the
 * same bytes whatever ran the event. Channel ids up to a few times the
 * hit count (detectors number their channels densely) go straight into a
 * table indexed by channel; sparse ids are sorted first (stable). */
/* explicit photons carry their weight; source photons weigh 1 */
static float eng_hit_weight(const c2_event *ev, const c2_hit *h)
{
    return h->photon_id < ev->nphotons ? c2i_event_weight(ev, h->photon_id) : 1.0f;
}

/* A channel summary shared out to a team: largest channel id by slices of
 * the hits, then sums by slices of the channel ids, each thread reading
 * every hit and adding those on its channels, in photon-id order as one
 * thread would (the same bytes). */
typedef struct eng_channels {
    const c2_event_result *r;
    const c2_event *ev;
    c2_channel_summary *sum; /* [top + 1] */
    uint32_t top;
    uint32_t tops[C2I_TEAM_MAX];
} eng_channels;

static void eng_top_slice(void *arg, uint32_t t, uint32_t n)
{
    eng_channels *c = arg;
    uint32_t top = 0;
    for (uint32_t i = (uint32_t)((uint64_t)c->r->nhits * t / n); i < (uint64_t)c->r->nhits * (t + 1) / n; i++) {
        top = (uint32_t)c->r->hits[i].channel > top ? (uint32_t)c->r->hits[i].channel : top;
    }
    c->tops[t] = top;
}

static void eng_sum_slice(void *arg, uint32_t t, uint32_t n)
{
    eng_channels *c = arg;
    const uint32_t lo = (uint32_t)(((uint64_t)c->top + 1) * t / n), hi = (uint32_t)(((uint64_t)c->top + 1) * (t + 1) / n);
    for (uint32_t i = 0; i < c->r->nhits; i++) {
        const c2_hit *h = &c->r->hits[i];
        if ((uint32_t)h->channel - lo < hi - lo) {
            eng_channel_add(&c->sum[h->channel], h, eng_hit_weight(c->ev, h));
        }
    }
}

int c2i_result_channels(c2_event_result *r, const c2_event *ev, c2i_team *team)
{
    if (r->nhits == 0) {
        return 0;
    }
    const uint32_t nh = r->nhits;
    eng_channels c = {.r = r, .ev = ev};
    if (nh < 65536) {
        team = NULL; /* not worth waking it */
    }
    c2i_team_run(team, eng_top_slice, &c); /* hits are on channels, so ids >= 0 */
    for (uint32_t t = 1; t < c2i_team_size(team); t++) {
        c.tops[0] = c.tops[t] > c.tops[0] ? c.tops[t] : c.tops[0];
    }
    const uint32_t top = c.top = c.tops[0];
    const int dense = (uint64_t)top < 65536u + 4ull * nh;
    c2_channel_summary *sum = calloc(dense ? (size_t)top + 1 : nh, sizeof *sum);
    uint32_t *keys = dense ? NULL : malloc((size_t)3 * nh * sizeof *keys);
    if (!sum || (!dense && !keys)) {
        free(sum);
        free(keys);
        return -1;
    }
    uint32_t n = 0;
    if (dense) {
        c.sum = sum;
        c2i_team_run(team, eng_sum_slice, &c);
        for (uint32_t ch = 0; ch <= top; ch++) { /* compact, in channel order */
            if (sum[ch].count) {
                sum[n++] = sum[ch];
            }
        }
    } else {
        uint32_t *order = keys + nh;
        for (uint32_t i = 0; i < nh; i++) {
            keys[i] = (uint32_t)r->hits[i].channel;
        }
        c2i_radix_order(keys, nh, order, order + nh);
        for (uint32_t k = 0; k < nh; k++) {
            const c2_hit *h = &r->hits[order[k]];
            n += n == 0 || sum[n - 1].channel != h->channel;
            eng_channel_add(&sum[n - 1], h, eng_hit_weight(ev, h));
        }
        free(keys);
    }
    r->channels = sum;
    r->nchannels = n;
    return 0;
}

/* Moves the workers' hits into per-event results, in photon-id order. */
static int eng_collect(eng_job *j, eng_worker *w, uint32_t nw, c2_event_result *res)
{
    for (uint32_t k = 0; k < nw; k++) {
        for (size_t i = 0; i < w[k].nhits; i++) {
            res[w[k].hits[i].event].nhits++;
        }
    }
    for (uint32_t e = 0; e < j->nevents; e++) {
        if (res[e].nhits && !(res[e].hits = malloc(res[e].nhits * sizeof(c2_hit)))) {
            return -1;
        }
        res[e].nhits = 0;
    }
    for (uint32_t k = 0; k < nw; k++) {
        for (size_t i = 0; i < w[k].nhits; i++) {
            c2_event_result *r = &res[w[k].hits[i].event];
            r->hits[r->nhits++] = w[k].hits[i].hit;
        }
    }
    for (uint32_t e = 0; e < j->nevents; e++) {
        c2_event_result *r = &res[e];
        const c2_event *ev = &j->events[e];
        if (r->nhits > 1) { /* qsort(NULL, 0) is undefined */
            qsort(r->hits, r->nhits, sizeof(c2_hit), eng_cmp_hit);
        }
        if ((ev->want & C2_RETURN_CHANNELS) && c2i_result_channels(r, ev, NULL)) {
            return -1;
        }
        if (!(ev->want & C2_RETURN_HITS)) {
            free(r->hits);
            r->hits = NULL;
            r->nhits = 0;
        }
        r->ntotal = (uint32_t)eng_nphotons(&j->kev[e]);
        r->photons = j->ends[e];
        r->nphotons = r->photons ? r->ntotal : 0;
        j->ends[e] = NULL;
        for (uint32_t k = 0; k < nw; k++) {
            r->steps += w[k].counts[e].steps;
            r->nreemit += w[k].counts[e].nreemit;
            r->nmaxsteps += w[k].counts[e].nmaxsteps;
            r->nnan += w[k].counts[e].nnan;
        }
    }
    return 0;
}

int c2_engine_run(const c2_geometry *g, const c2_event *events, uint32_t nevents, c2_event_result *results,
                  uint32_t nthreads, c2_error *err)
{
    if (!g || !g->built) {
        return c2i_fail(err, C2_ESTATE, "geometry is not built");
    }
    if (nevents && (!events || !results)) {
        return c2i_fail(err, C2_EINVAL, "events or results is NULL");
    }
    for (uint32_t e = 0; e < nevents; e++) {
        int rc = c2_event_validate(g, &events[e], err);
        if (rc) {
            if (err) { /* name the event in front of the message */
                char msg[sizeof err->msg];
                memcpy(msg, err->msg, sizeof msg);
                snprintf(err->msg, sizeof err->msg, "event %u (id %llu): %.200s", e, (unsigned long long)events[e].id,
                         msg);
            }
            return rc;
        }
    }
    nthreads = nthreads ? nthreads : c2i_cores();
    nthreads = nthreads > MAX_THREADS ? MAX_THREADS : nthreads;

    eng_job j;
    memset(&j, 0, sizeof j);
    j.view = c2i_geometry_view(g);
    j.events = events;
    j.nevents = nevents;
    atomic_init(&j.next_chunk, 0);
    eng_worker *w = calloc(nthreads, sizeof *w);
    pthread_t *tid = calloc(nthreads, sizeof *tid);
    j.chunk_base = calloc((size_t)nevents + 1, sizeof *j.chunk_base);
    j.kev = calloc(nevents ? nevents : 1, sizeof *j.kev);
    j.ends = calloc(nevents ? nevents : 1, sizeof *j.ends);
    j.records = calloc(nevents ? nevents : 1, sizeof *j.records);
    int rc = (!w || !tid || !j.chunk_base || !j.kev || !j.ends || !j.records) ? C2_ENOMEM : 0;
    for (uint32_t e = 0; e < nevents && !rc; e++) {
        const c2_event *ev = &events[e];
        uint64_t *sb = malloc(((size_t)ev->nsources + 1) * sizeof *sb);
        /* the physics starts photons from records */
        const c2_photon *photons = ev->photons;
        if (!photons && ev->nphotons && (j.records[e] = malloc((size_t)ev->nphotons * sizeof(c2_photon)))) {
            c2i_event_photons(ev, 0, ev->nphotons, j.records[e]);
            photons = j.records[e];
        }
        if (!sb || (ev->nphotons && !photons)) {
            free(sb);
            rc = C2_ENOMEM;
            break;
        }
        j.kev[e] = (c2k_event){.id = ev->id,
                               .seed = ev->seed,
                               .max_steps = ev->max_steps ? ev->max_steps : C2_DEFAULT_MAX_STEPS,
                               .nphotons = ev->nphotons,
                               .nsources = ev->nsources,
                               .want = ev->want,
                               .photons = photons,
                               .sources = ev->sources,
                               .source_base = sb,
                               .spectra = ev->spectra};
        sb[0] = ev->nphotons;
        for (uint32_t s = 0; s < ev->nsources; s++) {
            sb[s + 1] = sb[s] + ev->sources[s].nphotons;
        }
        uint64_t n = sb[ev->nsources];
        j.chunk_base[e + 1] = j.chunk_base[e] + (n + CHUNK - 1) / CHUNK;
        if ((ev->want & C2_RETURN_PHOTONS) && n && !(j.ends[e] = malloc(n * sizeof(c2_photon)))) {
            rc = C2_ENOMEM;
        }
    }
    uint32_t started = 0;
    for (uint32_t k = 0; k < nthreads && !rc; k++) {
        w[k].job = &j;
        if (!(w[k].counts = calloc(nevents ? nevents : 1, sizeof *w[k].counts))) {
            rc = C2_ENOMEM;
        }
    }
    /* the calling thread is worker 0 */
    for (uint32_t k = 1; k < nthreads && !rc; k++, started++) {
        if (pthread_create(&tid[k], NULL, eng_worker_main, &w[k])) {
            break; /* fewer threads: same results, just slower */
        }
    }
    if (!rc) {
        eng_worker_main(&w[0]);
    }
    for (uint32_t k = 1; k <= started; k++) {
        pthread_join(tid[k], NULL);
    }
    for (uint32_t k = 0; k < nthreads && !rc; k++) {
        rc = w[k].failed ? C2_ENOMEM : 0;
    }
    if (!rc) {
        memset(results, 0, nevents * sizeof *results);
        if (eng_collect(&j, w, nthreads, results)) {
            for (uint32_t e = 0; e < nevents; e++) {
                c2_event_result_free(&results[e]);
            }
            rc = C2_ENOMEM;
        }
    }
    for (uint32_t k = 0; w && k < nthreads; k++) {
        free(w[k].hits);
        free(w[k].counts);
    }
    for (uint32_t e = 0; e < nevents && j.kev && j.ends && j.records; e++) {
        free((void *)j.kev[e].source_base);
        free(j.ends[e]);
        free(j.records[e]);
    }
    free(w);
    free(tid);
    free(j.chunk_base);
    free(j.kev);
    free(j.ends);
    free(j.records);
    return rc ? c2i_fail(err, rc, "engine: out of memory") : 0;
}

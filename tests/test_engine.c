/* test_engine.c: the CPU engine's promises: the same bytes for any thread
 * count and any split of events into batches, and clear errors for bad
 * events. */
#define _GNU_SOURCE /* sched_setaffinity */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/engine_int.h"
#include "check.h"
#include "util.h"

static void same_result(const c2_event_result *a, const c2_event_result *b, const char *what)
{
    CHECK(a->nhits == b->nhits && a->nphotons == b->nphotons && a->nchannels == b->nchannels, "%s: counts differ",
          what);
    CHECK(!a->nhits || memcmp(a->hits, b->hits, a->nhits * sizeof(c2_hit)) == 0, "%s: hits differ", what);
    CHECK(!a->nphotons || memcmp(a->photons, b->photons, a->nphotons * sizeof(c2_photon)) == 0,
          "%s: end states differ", what);
    CHECK(!a->nchannels || memcmp(a->channels, b->channels, a->nchannels * sizeof(c2_channel_summary)) == 0,
          "%s: channel summaries differ", what);
    CHECK(a->ntotal == b->ntotal && a->steps == b->steps && a->nreemit == b->nreemit && a->nmaxsteps == b->nmaxsteps,
          "%s: counters differ",
          what);
}

TEST(engine_threads_identical)
{
    c2_geometry *g = c2t_scattering_detector();
    c2t_fixture f;
    c2t_fixture_make(&f);
    c2_event_result ref[3], other[3];
    c2_error err = {0};
    CHECK(c2_engine_run(g, f.ev, 3, ref, 1, &err) == 0, "%s", err.msg);
    uint32_t scattered = 0;
    for (uint32_t i = 0; i < ref[0].nphotons; i++) {
        scattered += (ref[0].photons[i].flags & C2_RAYLEIGH_SCATTER) != 0;
    }
    printf("  1 thread: %u, %u, %u hits; %u of %u photons of event 0 scattered; %llu steps\n", ref[0].nhits,
           ref[1].nhits, ref[2].nhits, scattered, ref[0].nphotons, (unsigned long long)ref[0].steps);
    CHECK(ref[0].nhits > 100 && scattered > 1000, "too few hits or scatters for the test to mean much");
    const uint32_t threads[3] = {2, 3, 8};
    for (int t = 0; t < 3; t++) {
        CHECK(c2_engine_run(g, f.ev, 3, other, threads[t], &err) == 0, "%s", err.msg);
        for (int e = 0; e < 3; e++) {
            char what[64];
            snprintf(what, sizeof what, "event %d on %u threads", e, threads[t]);
            same_result(&ref[e], &other[e], what);
            c2_event_result_free(&other[e]);
        }
        printf("  %u threads: identical\n", threads[t]);
    }
    for (int e = 0; e < 3; e++) {
        c2_event_result_free(&ref[e]);
    }
    free(f.ph);
    c2_geometry_free(g);
}

TEST(engine_batches_identical)
{
    c2_geometry *g = c2t_scattering_detector();
    c2t_fixture f;
    c2t_fixture_make(&f);
    c2_event_result all[3], one;
    c2_error err = {0};
    CHECK(c2_engine_run(g, f.ev, 3, all, 2, &err) == 0, "%s", err.msg);
    /* each event alone, in reverse order, must match the batch; the
     * photon's event field is its index in the batch, so set it back */
    for (int e = 2; e >= 0; e--) {
        CHECK(c2_engine_run(g, &f.ev[e], 1, &one, 2, &err) == 0, "%s", err.msg);
        for (uint32_t i = 0; i < one.nphotons; i++) {
            one.photons[i].event = (uint32_t)e;
        }
        char what[64];
        snprintf(what, sizeof what, "event %d alone", e);
        same_result(&all[e], &one, what);
        c2_event_result_free(&one);
    }
    printf("  3 events in one batch = each in its own batch\n");
    /* an event that differs only in id gives a different history */
    c2_event moved = f.ev[1];
    moved.id++;
    CHECK(c2_engine_run(g, &moved, 1, &one, 2, &err) == 0, "%s", err.msg);
    CHECK(one.nphotons == all[1].nphotons && memcmp(one.photons, all[1].photons, one.nphotons * sizeof(c2_photon)),
          "changing the event id did not change the random numbers");
    c2_event_result_free(&one);
    /* a stopped event (cancelled by its caller) propagates nothing and
     * leaves the others of its batch as they were */
    c2_event stopped[3] = {f.ev[0], f.ev[1], f.ev[2]};
    const int stop = 1;
    stopped[1].stop = &stop;
    c2_event_result part[3];
    CHECK(c2_engine_run(g, stopped, 3, part, 2, &err) == 0, "%s", err.msg);
    same_result(&part[0], &all[0], "event 0 beside a stopped event");
    same_result(&part[2], &all[2], "event 2 beside a stopped event");
    CHECK(part[1].steps == 0 && part[1].nhits == 0 && all[1].steps > 0, "the stopped event ran %llu steps",
          (unsigned long long)part[1].steps);
    printf("  a stopped event runs no step; its neighbours are unchanged\n");
    for (int e = 0; e < 3; e++) {
        c2_event_result_free(&part[e]);
        c2_event_result_free(&all[e]);
    }
    free(f.ph);
    c2_geometry_free(g);
}

/* Columns of f's first n photons at an odd address (the daemon points
 * columns into a message, at any alignment); with_optional 0 leaves pol,
 * time and weight out. Returns the buffer to free. */
static char *columns_of(const c2_photon *ph, uint32_t n, int with_optional, c2_photon_columns *c)
{
    char *buf = malloc(1 + (size_t)n * 48); /* 12 floats a photon */
    char *at = buf + 1;
    const struct {
        const void **col;
        size_t comps, offset;
        int optional;
    } cols[] = {{&c->pos, 3, offsetof(c2_photon, pos), 0},
                {&c->dir, 3, offsetof(c2_photon, dir), 0},
                {&c->wavelength, 1, offsetof(c2_photon, wavelength), 0},
                {&c->pol, 3, offsetof(c2_photon, pol), 1},
                {&c->time, 1, offsetof(c2_photon, time), 1},
                {&c->weight, 1, offsetof(c2_photon, weight), 1}};
    memset(c, 0, sizeof *c);
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        if (cols[k].optional && !with_optional) {
            continue;
        }
        *cols[k].col = at;
        for (uint32_t i = 0; i < n; i++, at += 4 * cols[k].comps) {
            memcpy(at, (const char *)&ph[i] + cols[k].offset, 4 * cols[k].comps);
        }
    }
    return buf;
}

TEST(engine_columns_as_records)
{
    /* photons given as columns run exactly as the same photons given as
     * records; left-out optional columns mean pol 0 (random), time 0 and
     * weight 1, as in records */
    c2_geometry *g = c2t_scattering_detector();
    c2t_fixture f;
    c2t_fixture_make(&f);
    for (uint32_t i = 0; i < 3000; i++) {
        f.ph[i].time = 0.25f * (float)(i % 7);
        f.ph[i].weight = 0.5f + (float)(i % 3); /* channel charges show the weights */
    }
    c2_event_result ref[3], got[3];
    c2_error err = {0};
    CHECK(c2_engine_run(g, f.ev, 3, ref, 2, &err) == 0, "%s", err.msg);
    c2_event cev[3] = {f.ev[0], f.ev[1], f.ev[2]};
    c2_photon_columns c;
    char *buf = columns_of(f.ph, 3000, 1, &c);
    cev[0].photons = cev[2].photons = NULL;
    cev[0].columns = cev[2].columns = c;
    CHECK(c2_engine_run(g, cev, 3, got, 2, &err) == 0, "%s", err.msg);
    for (int e = 0; e < 3; e++) {
        char what[64];
        snprintf(what, sizeof what, "event %d as columns", e);
        same_result(&ref[e], &got[e], what);
        c2_event_result_free(&got[e]);
        c2_event_result_free(&ref[e]);
    }
    free(buf);
    /* without the optional columns: as records with the defaults */
    for (uint32_t i = 0; i < 3000; i++) {
        memset(f.ph[i].pol, 0, sizeof f.ph[i].pol);
        f.ph[i].time = 0.0f;
        f.ph[i].weight = 1.0f;
    }
    buf = columns_of(f.ph, 3000, 0, &c);
    cev[0].columns = c;
    CHECK(c2_engine_run(g, f.ev, 1, ref, 2, &err) == 0, "%s", err.msg);
    CHECK(c2_engine_run(g, cev, 1, got, 2, &err) == 0, "%s", err.msg);
    same_result(&ref[0], &got[0], "columns without pol, time and weight");
    c2_event_result_free(&got[0]);
    c2_event_result_free(&ref[0]);
    printf("  3 events with photons as (unaligned) columns = as records; without the optional columns too\n");
    /* records and columns at once, or columns without dir: refused */
    cev[0].photons = f.ph;
    CHECK(c2_engine_run(g, cev, 1, got, 1, &err) != 0 && strstr(err.msg, "both as records and as columns"), "%s",
          err.msg);
    cev[0].photons = NULL;
    cev[0].columns.dir = NULL;
    CHECK(c2_engine_run(g, cev, 1, got, 1, &err) != 0 && strstr(err.msg, "pos, dir and wavelength are required"),
          "%s", err.msg);
    /* a bad value in a column is found and named like one in a record */
    f.ph[2999].dir[2] = 2.0f;
    free(buf);
    buf = columns_of(f.ph, 3000, 0, &c);
    cev[0].columns = c;
    CHECK(c2_engine_run(g, cev, 1, got, 1, &err) != 0 && strstr(err.msg, "photon 2999: direction"), "%s", err.msg);
    printf("  refused: %s\n", err.msg);
    free(buf);
    free(f.ph);
    c2_geometry_free(g);
}

static void expect_rejected(const c2_geometry *g, const c2_event *ev, const char *needle)
{
    c2_error err = {0};
    c2_event_result r;
    memset(&r, 0xab, sizeof r);
    int rc = c2_engine_run(g, ev, 1, &r, 1, &err);
    printf("  %-24s -> %s: %s\n", needle, c2_errname(rc), err.msg);
    CHECK(rc < 0 && strstr(err.msg, needle) && strstr(err.msg, "event 0 (id 9)"), "bad event not rejected clearly");
}

TEST(engine_rejects_bad_events)
{
    c2_geometry *g = c2t_geometry();
    uint32_t m = c2t_material(g, 1.0f, 1e3f, 1e3f);
    c2t_box(g, 10.0f, m, m, C2_NO_SURFACE, C2_NO_CHANNEL);
    c2t_build(g);
    const float pos[3] = {0, 0, 0}, dir[3] = {0, 0, 1};
    c2_photon *ph = c2t_beam(4, pos, dir, 400.0f);
    c2_event ev = c2t_event(9, 1, ph, 4, NULL, 0, C2_RETURN_HITS);

    ph[2].pos[1] = NAN;
    expect_rejected(g, &ev, "photon 2: position");
    ph[2].pos[1] = 0;
    ph[3].dir[2] = 2.0f;
    expect_rejected(g, &ev, "photon 3: direction");
    ph[3].dir[2] = 1.0f;
    ph[1].pol[2] = 1.0f;
    expect_rejected(g, &ev, "photon 1: polarisation");
    ph[1].pol[2] = 0.0f;
    ph[0].wavelength = 1000.0f;
    expect_rejected(g, &ev, "photon 0: wavelength 1000");
    ph[0].wavelength = 400.0f;
    ev.want = 0x100;
    expect_rejected(g, &ev, "unknown bits");
    ev.want = C2_RETURN_HITS;

    c2_source src[2] = {{{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 400.0f, 2, 10, 0},
                        {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 400.0f, -1, UINT32_MAX, 0}};
    ev.sources = src;
    ev.nsources = 1;
    expect_rejected(g, &ev, "spectrum index below 0");
    src[0].spectrum = -1;
    src[0].cos_half_angle = 0.5f;
    src[0].dir[2] = 0.0f;
    expect_rejected(g, &ev, "source 0: cone axis");
    src[0].dir[2] = 1.0f;
    ev.nsources = 2;
    expect_rejected(g, &ev, "photons (limit");
    ev.nsources = 1;
    float cdf[C2T_NWL] = {0};
    cdf[5] = 0.5f;
    ev.spectra = cdf;
    ev.nspectra = 1;
    expect_rejected(g, &ev, "spectrum 0: value [6]");
    ev.spectra = NULL;
    expect_rejected(g, &ev, "NULL with a nonzero count");
    ev.nspectra = 0;

    c2_event_result r;
    c2_error err = {0};
    CHECK(c2_engine_run(g, &ev, 1, &r, 1, &err) == 0, "the repaired event fails: %s", err.msg);
    c2_event_result_free(&r);
    free(ph);
    c2_geometry_free(g);
}

TEST(engine_flag_names)
{
    /* Chroma's bit values, which clients rely on, and their names */
    static const struct {
        uint32_t bit;
        const char *name;
    } chroma[] = {{0x1, "NO_HIT"}, {0x2, "BULK_ABSORB"}, {0x4, "SURFACE_DETECT"}, {0x8, "SURFACE_ABSORB"},
                  {0x10, "RAYLEIGH_SCATTER"}, {0x20, "REFLECT_DIFFUSE"}, {0x40, "REFLECT_SPECULAR"},
                  {0x80, "SURFACE_REEMIT"}, {0x100, "SURFACE_TRANSMIT"}, {0x200, "BULK_REEMIT"},
                  {0x400, "CHERENKOV"}, {0x800, "SCINTILLATION"}, {0x80000000u, "NAN_ABORT"}};
    for (size_t i = 0; i < sizeof chroma / sizeof chroma[0]; i++) {
        const char *n = c2_flag_name(chroma[i].bit);
        CHECK(n && strcmp(n, chroma[i].name) == 0, "bit 0x%x is %s, Chroma calls it %s", chroma[i].bit,
              n ? n : "(none)", chroma[i].name);
    }
    CHECK(strcmp(c2_flag_name(C2_MAX_STEPS), "MAX_STEPS") == 0 && !c2_flag_name(0x3) && !c2_flag_name(0x1000),
          "names of non-flags");
    CHECK(strcmp(c2_errname(C2_EINVAL), "C2_EINVAL") == 0 && strcmp(c2_strerror(C2_ENOMEM), "out of memory") == 0,
          "error names");
}

/* The radix order against the plain definition: keys of every width
 * that changes the digits (1, 11, 12, 22, 23 and 32 bits), many equal
 * keys (stable: equal keys keep their order), no key and one key. */
TEST(engine_radix_order)
{
    enum { N = 20000 };
    static const int widths[] = {1, 11, 12, 22, 23, 32};
    uint32_t *keys = malloc(N * sizeof *keys), *order = malloc(2 * N * sizeof *order);
    uint32_t x = 777;
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        for (uint32_t n = 0; n <= N; n = n ? n * 10 : 1) {
            const uint32_t mask = widths[w] == 32 ? UINT32_MAX : (1u << widths[w]) - 1;
            for (uint32_t i = 0; i < n; i++) {
                x = x * 1664525u + 1013904223u;
                keys[i] = (i % 3 ? x : x >> 13) & mask; /* a third with few distinct values */
            }
            c2i_radix_order(keys, n, order, order + N);
            for (uint32_t i = 1; i < n; i++) {
                const uint32_t a = order[i - 1], b = order[i];
                CHECK(keys[a] < keys[b] || (keys[a] == keys[b] && a < b),
                      "%d-bit keys, n %u: position %u: key %u (index %u) before key %u (index %u)", widths[w], n, i,
                      keys[a], a, keys[b], b);
            }
            for (uint32_t i = 0; i < n; i++) { /* distinct (above) and below n: a permutation */
                CHECK(order[i] < n, "%d-bit keys, n %u: index %u out of range", widths[w], n, order[i]);
            }
        }
    }
    free(keys);
    free(order);
}

/* The fork-join team: every thread index runs once per round, with the
 * team's size, and a round has ended for all before run returns. */
typedef struct {
    uint32_t calls[8], n_seen[8], stale[8], round; /* [t]: written by thread t only */
} team_check;

static void team_tally(void *arg, uint32_t t, uint32_t n)
{
    team_check *c = arg;
    c->stale[t] += c->calls[t] != c->round; /* ran once in each earlier round */
    c->calls[t]++;
    c->n_seen[t] = n;
}

TEST(engine_team)
{
    for (uint32_t want = 0; want <= 8; want += 4) {
        c2i_team *tm = c2i_team_new(want);
        CHECK(tm, "out of memory");
        const uint32_t n = c2i_team_size(tm);
        CHECK(n == (want ? want : 1), "team of %u: %u threads", want, n);
        team_check c;
        memset(&c, 0, sizeof c);
        for (c.round = 0; c.round < 2000; c.round++) {
            c2i_team_run(tm, team_tally, &c);
        }
        for (uint32_t t = 0; t < 8; t++) {
            CHECK(c.calls[t] == (t < n ? 2000u : 0u) && (t >= n || c.n_seen[t] == n), "thread %u of %u: %u calls", t,
                  n, c.calls[t]);
            CHECK(c.stale[t] == 0, "thread %u: %u calls saw an earlier round unfinished", t, c.stale[t]);
        }
        c2i_team_free(tm);
    }
    team_check c;
    memset(&c, 0, sizeof c);
    c2i_team_run(NULL, team_tally, &c); /* no team: the caller alone */
    CHECK(c.calls[0] == 1 && c.n_seen[0] == 1, "a NULL team");
}

/* The default thread count follows the CPUs the process may use: under a
 * one-CPU affinity mask (as a cpuset or taskset gives) it is 1. */
TEST(engine_cores_follow_affinity)
{
    cpu_set_t all, one;
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0, "reading the affinity mask");
    CHECK(c2i_cores() == (uint32_t)CPU_COUNT(&all), "%u cores, the mask has %d", c2i_cores(), CPU_COUNT(&all));
    int first = 0;
    while (!CPU_ISSET(first, &all)) {
        first++;
    }
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK(sched_setaffinity(0, sizeof one, &one) == 0, "setting a one-CPU mask");
    const uint32_t n = c2i_cores();
    CHECK(sched_setaffinity(0, sizeof all, &all) == 0, "restoring the mask");
    CHECK(n == 1, "%u cores under a one-CPU mask", n);
    printf("  %d CPUs in the mask: %u; under CPU %d alone: %u\n", CPU_COUNT(&all), c2i_cores(), first, n);
}

/* n photons with weights that make summation order visible, and a hit of
 * each on a channel below span, in photon-id order. */
static void channel_hits(c2_photon *ph, c2_hit *hits, uint32_t n, uint32_t span)
{
    uint32_t x = 12345;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ph[i].weight = 1.0f + (float)(x % 1000) * 1e-3f;
        hits[i].photon_id = i;
        hits[i].channel = (int32_t)((x >> 8) % span);
        hits[i].time = (float)(x % 7919);
    }
}

/* The channel summary against a brute-force count: channel ids dense (a
 * table by channel) and sparse (up to 300000 for 50000 hits: sorted, with
 * ids that take two digits of the radix sort), and weights that
 * make the summation order visible. */
TEST(engine_channel_summary)
{
    enum { NH = 50000 };
    static const uint32_t spans[2] = {5000, 300000};
    for (int k = 0; k < 2; k++) {
        c2_photon *ph = calloc(NH, sizeof *ph);
        c2_event_result r;
        memset(&r, 0, sizeof r);
        r.hits = calloc(NH, sizeof *r.hits);
        r.nhits = NH;
        channel_hits(ph, r.hits, NH, spans[k]);
        c2_event ev = c2t_event(1, 1, ph, NH, NULL, 0, C2_RETURN_CHANNELS);
        CHECK(c2i_result_channels(&r, &ev, NULL) == 0, "out of memory");
        uint32_t total = 0;
        for (uint32_t c = 0; c < r.nchannels; c++) {
            const c2_channel_summary *s = &r.channels[c];
            CHECK(c == 0 || r.channels[c - 1].channel < s->channel, "channels not sorted");
            uint32_t count = 0;
            float first = 1e30f, charge = 0.0f;
            for (uint32_t i = 0; i < NH; i++) { /* photon-id order: the same float sums */
                if (r.hits[i].channel == s->channel) {
                    count++;
                    first = fminf(first, r.hits[i].time);
                    charge += ph[i].weight;
                }
            }
            CHECK(s->count == count && s->first_time == first && s->charge == charge,
                  "channel %d: count %u/%u, first %g/%g, charge %g/%g", s->channel, s->count, count, s->first_time,
                  first, s->charge, charge);
            total += count;
        }
        CHECK(total == NH, "%u of %u hits in the summary", total, NH);
        printf("  %u hits on %u channels (ids below %u): counts, earliest times and charges as by brute force\n", NH,
               r.nchannels, spans[k]);
        c2_event_result_free(&r);
        free(ph);
    }
    /* enough hits for a team: the same bytes as one thread, dense and sparse ids */
    enum { NT = 300000 };
    static const uint32_t tspans[2] = {20000, 5000000};
    c2i_team *tm = c2i_team_new(3);
    c2_photon *ph = calloc(NT, sizeof *ph);
    c2_event_result one, team;
    memset(&one, 0, sizeof one);
    one.hits = calloc(NT, sizeof *one.hits);
    for (int k = 0; k < 2; k++) {
        channel_hits(ph, one.hits, NT, tspans[k]);
        one.nhits = NT;
        team = one;
        c2_event ev = c2t_event(1, 1, ph, NT, NULL, 0, C2_RETURN_CHANNELS);
        CHECK(tm && c2i_result_channels(&one, &ev, NULL) == 0 && c2i_result_channels(&team, &ev, tm) == 0,
              "out of memory");
        CHECK(one.nchannels == team.nchannels &&
                  memcmp(one.channels, team.channels, one.nchannels * sizeof *one.channels) == 0,
              "ids below %u: a team of %u gave other channel sums", tspans[k], c2i_team_size(tm));
        printf("  %u hits on %u channels (ids below %u): a team of %u gives the same bytes\n", NT, one.nchannels,
               tspans[k], c2i_team_size(tm));
        free(one.channels);
        free(team.channels);
    }
    free(one.hits);
    free(ph);
    c2i_team_free(tm);
}

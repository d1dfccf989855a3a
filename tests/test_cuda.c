/* test_cuda.c: the shared physics on the GPU against the CPU engine, same
 * events and seeds. Float results differ in the last bits (the GPU fuses
 * multiply-adds and has its own sinf/logf), which may send a rare photon
 * down another branch: at least 99.9% of photons must end with the same
 * flags and channel, and those within tolerance in position and time. Skips,
 * saying why, where no CUDA device is usable. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/cuda/cuda_int.h"
#include "check.h"
#include "util.h"

static void need_device(void)
{
    c2_error err = {0};
    if (c2c_device_count(&err) <= 0) {
        SKIP("%s", err.msg);
    }
}

/* Runs events on CPU and GPU and compares end states photon by photon. */
static void compare(const c2_geometry *g, c2_event *ev, uint32_t nev, const char *what)
{
    c2_error err = {0};
    c2c_geometry *dg = c2c_geometry_upload(g, &err);
    CHECK(dg, "%s", err.msg);
    c2_event_result *cpu = calloc(nev, sizeof *cpu);
    c2_photon **gpu = calloc(nev, sizeof *gpu);
    for (uint32_t e = 0; e < nev; e++) {
        ev[e].want |= C2_RETURN_PHOTONS;
    }
    CHECK(c2_engine_run(g, ev, nev, cpu, 0, &err) == 0, "%s", err.msg);
    for (uint32_t e = 0; e < nev; e++) {
        gpu[e] = malloc((cpu[e].nphotons ? cpu[e].nphotons : 1) * sizeof(c2_photon));
    }
    double seconds = 0;
    CHECK(c2c_loop_run(dg, ev, nev, gpu, &seconds, &err) == 0, "%s", err.msg);
    uint64_t n = 0, same = 0, close = 0;
    double worst_t = 0, worst_x = 0;
    for (uint32_t e = 0; e < nev; e++) {
        for (uint32_t i = 0; i < cpu[e].nphotons; i++) {
            const c2_photon *a = &cpu[e].photons[i], *b = &gpu[e][i];
            n++;
            CHECK(b->id == i && b->event == e, "GPU photon %u of event %u has id %u event %u", i, e, b->id, b->event);
            if (a->flags != b->flags || a->channel != b->channel) {
                continue;
            }
            same++;
            double dt = fabs(a->time - b->time), dx = 0;
            for (int k = 0; k < 3; k++) {
                dx = fmax(dx, fabs(a->pos[k] - b->pos[k]));
            }
            if (dt <= 1e-3 + 1e-4 * fabs(a->time) && dx <= 0.1) {
                close++;
                worst_t = fmax(worst_t, dt);
                worst_x = fmax(worst_x, dx);
            }
        }
    }
    printf("  %s: %llu photons in %.3f ms on the GPU; same flags and channel %.5f%%, also within 0.1 mm and "
           "1e-3 ns + 1e-4 t %.5f%% (worst %.3g mm, %.3g ns)\n",
           what, (unsigned long long)n, 1e3 * seconds, 100.0 * same / n, 100.0 * close / n, worst_x, worst_t);
    CHECK(same >= 0.999 * n && close >= 0.999 * n, "%s: GPU and CPU histories agree for fewer than 99.9%% of photons",
          what);
    for (uint32_t e = 0; e < nev; e++) {
        c2_event_result_free(&cpu[e]);
        free(gpu[e]);
    }
    free(cpu);
    free(gpu);
    c2c_geometry_free(dg);
}

TEST(cuda_matches_cpu_detector)
{
    need_device();
    c2_geometry *g = c2t_scattering_detector();
    c2t_fixture f;
    c2t_fixture_make(&f);
    compare(g, f.ev, 3, "scattering detector, 3 events");
    free(f.ph);
    c2_geometry_free(g);

    /* the full default detector, 200k photons from an isotropic source */
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_error err = {0};
    g = c2_detector_build(&p, NULL, &err);
    CHECK(g, "%s", err.msg);
    c2_source src = {{1000, -2000, 500}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, 200000, 0};
    c2_event ev = c2t_event(77, 5, NULL, 0, &src, 1, 0);
    compare(g, &ev, 1, "default detector, 200k photons");
    c2_geometry_free(g);
}

TEST(cuda_matches_cpu_reemission)
{
    need_device();
    float cdf[C2T_NWL];
    c2_geometry *g = c2t_scintillator_box(5.0f, cdf);
    c2_source src = {{0, 0, 0}, 0.0f, {0, 0, 1}, -1.0f, 300.0f, -1, 100000, 0};
    c2_event ev = c2t_event(4, 44, NULL, 0, &src, 1, 0);
    compare(g, &ev, 1, "scintillator reemission");
    c2_geometry_free(g);
    g = c2t_wls_box();
    ev = c2t_event(8, 88, NULL, 0, &src, 1, 0);
    compare(g, &ev, 1, "WLS surface");
    c2_geometry_free(g);
}

TEST(cuda_rejects_bad_events)
{
    need_device();
    c2_geometry *g = c2t_wls_box();
    c2_error err = {0};
    c2c_geometry *dg = c2c_geometry_upload(g, &err);
    CHECK(dg, "%s", err.msg);
    const float pos[3] = {0, 0, 0}, dir[3] = {0, 0, 2};
    c2_photon *ph = c2t_beam(1, pos, dir, 400.0f);
    c2_event ev = c2t_event(1, 1, ph, 1, NULL, 0, 0);
    c2_photon out;
    c2_photon *ends[1] = {&out};
    int rc = c2c_loop_run(dg, &ev, 1, ends, NULL, &err);
    printf("  -> %s: %s\n", c2_errname(rc), err.msg);
    CHECK(rc == C2_ERANGE && strstr(err.msg, "direction"), "bad photon reached the GPU");
    free(ph);
    c2c_geometry_free(dg);
    c2_geometry_free(g);
}

/* ---- the runtime (kernels/cuda/runtime.cu) ---- */

/* A runtime with params p (0 fields: the defaults); a forced window gets
 * a pool of two windows, so that the ring wraps. */
static c2c_runtime *runtime_with(c2c_runtime_params p)
{
    p.pool_bytes = p.window ? 1 : 0;
    p.watchdog_s = 60;
    c2_error err = {0};
    c2c_runtime *rt = c2c_runtime_new(&p, &err);
    CHECK(rt, "%s", err.msg);
    return rt;
}

static c2c_runtime *runtime_new(uint64_t window, int wavefront, uint32_t warps_per_sm)
{
    return runtime_with((c2c_runtime_params){.window = window, .wavefront = wavefront, .warps_per_sm = warps_per_sm});
}

static c2_event_result *runtime_run(c2c_runtime *rt, const c2c_geometry *dg, const c2_event *ev, uint32_t n,
                                    c2c_run_stats *st)
{
    c2_error err = {0};
    c2_event_result *res = calloc(n ? n : 1, sizeof *res);
    CHECK(c2c_runtime_run(rt, dg, ev, n, res, st, &err) == 0, "%s", err.msg);
    CHECK(!c2c_runtime_broken(rt), "runtime broken after a good run");
    return res;
}

static void results_free(c2_event_result *r, uint32_t n)
{
    for (uint32_t e = 0; e < n; e++) {
        c2_event_result_free(&r[e]);
    }
    free(r);
}

/* The runtime's results against the CPU engine's: same layout and
 * counters, histories equal for >= 99.9% of photons, hits in photon-id
 * order and each the same as its photon's end state. */
static void compare_results(const c2_event *ev, const c2_event_result *cpu, const c2_event_result *gpu, uint32_t n,
                            const char *what)
{
    uint64_t photons = 0, same = 0, hits_cpu = 0, hits_both = 0, steps_cpu = 0, steps_gpu = 0;
    for (uint32_t e = 0; e < n; e++) {
        const c2_event_result *a = &cpu[e], *b = &gpu[e];
        CHECK(a->ntotal == b->ntotal && a->nphotons == b->nphotons, "%s: event %u: %u/%u photons on CPU, %u/%u GPU",
              what, e, a->ntotal, a->nphotons, b->ntotal, b->nphotons);
        CHECK((a->hits == NULL) == (b->hits == NULL) && (a->channels == NULL) == (b->channels == NULL),
              "%s: event %u: different parts returned", what, e);
        steps_cpu += a->steps;
        steps_gpu += b->steps;
        for (uint32_t i = 0; i < b->nphotons; i++) {
            const c2_photon *x = &a->photons[i], *y = &b->photons[i];
            CHECK(y->id == i && y->event == e, "%s: GPU photon %u of event %u has id %u event %u", what, i, e, y->id,
                  y->event);
            photons++;
            same += x->flags == y->flags && x->channel == y->channel && fabsf(x->time - y->time) <= 1e-3f + 1e-4f * x->time;
        }
        for (uint32_t i = 0; i < b->nhits; i++) {
            const c2_hit *h = &b->hits[i];
            CHECK(i == 0 || b->hits[i - 1].photon_id < h->photon_id, "%s: event %u: hits not in photon-id order", what,
                  e);
            if (b->photons) {
                const c2_photon *p = &b->photons[h->photon_id];
                CHECK((p->flags & C2_SURFACE_DETECT) && p->channel == h->channel && p->time == h->time &&
                          p->flags == h->flags,
                      "%s: event %u: hit of photon %u differs from its end state", what, e, h->photon_id);
            }
        }
        hits_cpu += a->nhits;
        for (uint32_t i = 0, j = 0; i < a->nhits && j < b->nhits;) { /* both sorted by photon id */
            uint32_t x = a->hits[i].photon_id, y = b->hits[j].photon_id;
            if (x == y) {
                hits_both += a->hits[i].channel == b->hits[j].channel;
                i++, j++;
            } else if (x < y) {
                i++;
            } else {
                j++;
            }
        }
        uint32_t detected = 0, cpu_detected = 0;
        for (uint32_t c = 0; c < b->nchannels; c++) {
            detected += b->channels[c].count;
        }
        for (uint32_t c = 0; c < a->nchannels; c++) {
            cpu_detected += a->channels[c].count;
        }
        CHECK(abs((int)detected - (int)cpu_detected) <= 1 + (int)(cpu_detected / 1000),
              "%s: event %u: %u photons detected in the channel summary, CPU %u", what, e, detected, cpu_detected);
    }
    printf("  %s: %llu end states, %.4f%% same history; %llu CPU hits, %.4f%% also on the GPU; steps %llu vs %llu\n",
           what, (unsigned long long)photons, photons ? 100.0 * same / photons : 100.0, (unsigned long long)hits_cpu,
           hits_cpu ? 100.0 * hits_both / hits_cpu : 100.0, (unsigned long long)steps_cpu,
           (unsigned long long)steps_gpu);
    CHECK(same >= 0.999 * photons && hits_both >= 0.999 * hits_cpu, "%s: fewer than 99.9%% agree", what);
    CHECK(fabs((double)steps_gpu - steps_cpu) <= 0.001 * steps_cpu + 2, "%s: step counts differ", what);
    (void)ev;
}

/* Two runtime results must be the same bytes: where and in which window a
 * photon ran does not change its history. */
static void same_bytes(const c2_event_result *a, const c2_event_result *b, uint32_t n, const char *what)
{
    for (uint32_t e = 0; e < n; e++) {
        CHECK(a[e].nhits == b[e].nhits && a[e].nphotons == b[e].nphotons && a[e].nchannels == b[e].nchannels &&
                  a[e].steps == b[e].steps && a[e].nreemit == b[e].nreemit && a[e].nmaxsteps == b[e].nmaxsteps,
              "%s: event %u: counts differ (hits %u vs %u, steps %llu vs %llu)", what, e, a[e].nhits, b[e].nhits,
              (unsigned long long)a[e].steps, (unsigned long long)b[e].steps);
        CHECK(!a[e].nhits || !memcmp(a[e].hits, b[e].hits, a[e].nhits * sizeof(c2_hit)), "%s: event %u: hits differ",
              what, e);
        CHECK(!a[e].nphotons || !memcmp(a[e].photons, b[e].photons, a[e].nphotons * sizeof(c2_photon)),
              "%s: event %u: end states differ", what, e);
        CHECK(!a[e].nchannels || !memcmp(a[e].channels, b[e].channels, a[e].nchannels * sizeof(c2_channel_summary)),
              "%s: event %u: channel summaries differ", what, e);
    }
}

TEST(cuda_runtime_matches_cpu)
{
    need_device();
    c2_error err = {0};
    c2c_runtime *rt = runtime_new(0, 0, 0);
    const uint32_t all = C2_RETURN_HITS | C2_RETURN_PHOTONS | C2_RETURN_CHANNELS;
    struct {
        c2_geometry *g;
        c2_event ev[3];
        uint32_t n;
        const char *what;
    } cases[3];
    c2t_fixture f;
    c2t_fixture_make(&f);
    cases[0].g = c2t_scattering_detector();
    memcpy(cases[0].ev, f.ev, sizeof f.ev);
    cases[0].n = 3;
    cases[0].what = "scattering detector, 3 mixed events";
    c2_detector_params p;
    c2_detector_params_default(&p);
    cases[1].g = c2_detector_build(&p, NULL, &err);
    CHECK(cases[1].g, "%s", err.msg);
    c2_source src = {{1000, -2000, 500}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, c2t_cap(300000), 0};
    cases[1].ev[0] = c2t_event(77, 5, NULL, 0, &src, 1, all);
    cases[1].n = 1;
    cases[1].what = "default detector, 300k photons";
    float cdf[C2T_NWL];
    cases[2].g = c2t_scintillator_box(5.0f, cdf);
    c2_source uv = {{0, 0, 0}, 0.0f, {0, 0, 1}, -1.0f, 300.0f, -1, c2t_cap(100000), 0};
    cases[2].ev[0] = c2t_event(4, 44, NULL, 0, &uv, 1, all);
    cases[2].n = 1;
    cases[2].what = "scintillator, reemission";
    for (int c = 0; c < 3; c++) {
        c2c_geometry *dg = c2c_geometry_upload(cases[c].g, &err);
        CHECK(dg, "%s", err.msg);
        c2_event_result *cpu = calloc(cases[c].n, sizeof *cpu);
        CHECK(c2_engine_run(cases[c].g, cases[c].ev, cases[c].n, cpu, 0, &err) == 0, "%s", err.msg);
        c2c_run_stats st;
        c2_event_result *gpu = runtime_run(rt, dg, cases[c].ev, cases[c].n, &st);
        compare_results(cases[c].ev, cpu, gpu, cases[c].n, cases[c].what);
        printf("    (%llu photons, %u window(s) of %llu, %u warps, kernel %.3f ms, call %.3f ms)\n",
               (unsigned long long)st.photons, st.windows, (unsigned long long)st.window, st.warps,
               1e3 * st.kernel_seconds, 1e3 * st.seconds);
        if (c == 2) {
            uint32_t reemit = 0;
            for (uint32_t e = 0; e < cases[c].n; e++) {
                reemit += gpu[e].nreemit;
            }
            CHECK(reemit > 0 && reemit == cpu[0].nreemit, "reemissions: GPU %u, CPU %u", reemit, cpu[0].nreemit);
        }
        results_free(cpu, cases[c].n);
        results_free(gpu, cases[c].n);
        c2c_geometry_free(dg);
        c2_geometry_free(cases[c].g);
    }
    free(f.ph);
    c2c_runtime_free(rt);
}

TEST(cuda_runtime_windows_and_modes_identical)
{
    need_device();
    c2_error err = {0};
    c2_geometry *g = c2t_scattering_detector();
    c2c_geometry *dg = c2c_geometry_upload(g, &err);
    CHECK(dg, "%s", err.msg);
    c2t_fixture f;
    c2t_fixture_make(&f);
    c2c_runtime *base = runtime_new(0, 0, 0);
    c2_event_result *ref = runtime_run(base, dg, f.ev, 3, NULL);
    struct {
        uint64_t window;
        int wavefront;
        uint32_t warps;
        const char *what;
        int one_launch;
    } ways[] = {{1000, 0, 0, "windows of 1000 photons (streamed through the pool)", 0},
                {7, 0, 0, "windows of 7 photons", 0},
                {0, 0, 1, "one warp per SM", 0},
                {0, 1, 0, "wavefront mode", 0},
                {0, 0, 0, "one launch after the windows (profiling)", 1}};
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
        c2c_runtime *rt = runtime_with((c2c_runtime_params){.window = ways[w].window,
                                                            .wavefront = ways[w].wavefront,
                                                            .warps_per_sm = ways[w].warps,
                                                            .one_launch = ways[w].one_launch});
        c2c_run_stats st;
        c2_event_result *res = runtime_run(rt, dg, f.ev, 3, &st);
        same_bytes(ref, res, 3, ways[w].what);
        printf("  %s: same bytes (%u windows)\n", ways[w].what, st.windows);
        results_free(res, 3);
        res = runtime_run(rt, dg, f.ev, 3, NULL); /* and again on the same runtime: pools reused */
        same_bytes(ref, res, 3, ways[w].what);
        results_free(res, 3);
        c2c_runtime_free(rt);
    }
    /* one_launch refuses a call larger than one pass of the pool (here two
     * windows of 7 photons), and serves the next one that fits */
    c2c_runtime *small = runtime_with((c2c_runtime_params){.window = 7, .one_launch = 1});
    c2_event_result none[3];
    int rc = c2c_runtime_run(small, dg, f.ev, 3, none, NULL, &err);
    printf("  one launch, too large -> %s: %s\n", c2_errname(rc), err.msg);
    CHECK(rc == C2_ELIMIT && strstr(err.msg, "one pass of the pool"), "a call larger than the pool: %s", err.msg);
    c2_event tiny = f.ev[0];
    tiny.nphotons = 14;
    tiny.nsources = 0;
    c2_event_result *got = runtime_run(small, dg, &tiny, 1, NULL), *want = runtime_run(base, dg, &tiny, 1, NULL);
    same_bytes(want, got, 1, "one launch of 14 photons after a refusal");
    results_free(got, 1);
    results_free(want, 1);
    c2c_runtime_free(small);
    results_free(ref, 3);
    c2c_runtime_free(base);
    free(f.ph);
    c2c_geometry_free(dg);
    c2_geometry_free(g);

    /* the host team orders hits, pre-faults result pages and sums channels:
     * any number of threads, same bytes. By default it starts at 4096 hits
     * a window and 8 MiB of growth (two windows of ~50k hits on the default
     * detector pass the first); set to 1, small events (C2T_SMALL) use it
     * everywhere, and the stats show that it ran. */
    c2_detector_params p;
    c2_detector_params_default(&p);
    g = c2_detector_build(&p, NULL, &err);
    CHECK(g, "%s", err.msg);
    dg = c2c_geometry_upload(g, &err);
    CHECK(dg, "%s", err.msg);
    c2_source src = {{1000, -2000, 500}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, c2t_cap(1000000), 0};
    c2_event ev = c2t_event(78, 6, NULL, 0, &src, 1, C2_RETURN_HITS | C2_RETURN_CHANNELS);
    static const struct {
        uint32_t threads, min_hits;
        uint64_t min_touch;
    } teams[] = {{1, 1, 1}, {3, 1, UINT64_MAX}, {8, 1, 1}, {0, 0, 0}};
    c2_event_result *one = NULL;
    for (size_t k = 0; k < sizeof teams / sizeof teams[0]; k++) {
        c2c_runtime *rt = runtime_with((c2c_runtime_params){.host_threads = teams[k].threads,
                                                            .team_min_hits = teams[k].min_hits,
                                                            .touch_min_bytes = teams[k].min_touch});
        c2c_run_stats st;
        c2_event_result *res = runtime_run(rt, dg, &ev, 1, &st);
        char what[64];
        snprintf(what, sizeof what, "%u host threads%s", teams[k].threads,
                 !teams[k].min_hits            ? ""
                 : teams[k].min_touch == 1     ? ", team from 1 hit and 1 byte"
                                               : ", team from 1 hit, no page touch");
        if (one) {
            same_bytes(one, res, 1, what);
            results_free(res, 1);
        } else {
            one = res;
        }
        printf("  %s%s: %u hits in %u windows, %llu team rounds%s\n", what, teams[k].threads ? "" : " (the default)",
               one->nhits, st.windows, (unsigned long long)st.team_rounds, k ? ", same bytes as one" : "");
        /* a team of one never runs a round; a larger one orders every window
         * on it (without the page touch, only ordering and, from 65,536 hits,
         * the channel summary run rounds: under C2T_SMALL ordering alone) */
        if (teams[k].min_hits) {
            CHECK(teams[k].threads == 1 ? st.team_rounds == 0 : st.team_rounds >= st.windows,
                  "%s: %llu team rounds in %u windows", what, (unsigned long long)st.team_rounds, st.windows);
        }
        c2c_runtime_free(rt);
    }
    results_free(one, 1);
    c2c_geometry_free(dg);
    c2_geometry_free(g);
}

typedef struct stopper {
    int *flag;
    unsigned ms;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    struct timespec ts = {s->ms / 1000, (long)(s->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    __atomic_store_n(s->flag, 1, __ATOMIC_RELAXED);
    return NULL;
}

TEST(cuda_runtime_stop_and_edges)
{
    need_device();
    c2_error err = {0};
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_geometry *g = c2_detector_build(&p, NULL, &err);
    CHECK(g, "%s", err.msg);
    c2c_geometry *dg = c2c_geometry_upload(g, &err);
    CHECK(dg, "%s", err.msg);
    c2c_runtime *rt = runtime_new(1u << 20, 0, 0);

    /* a 400 M-photon event stopped after 20 ms beside a small one: the big
     * one's remaining photons are skipped, the small one is as when alone
     * (under C2T_SMALL 20 M, stopped as soon as it starts) */
    const int small_run = c2t_cap(400000000u) < 400000000u;
    c2_source big = {{0, 0, 0}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, small_run ? 20000000u : 400000000u, 0};
    c2_source small = {{500, 0, 0}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, c2t_cap(20000), 0};
    c2_event ev[2] = {c2t_event(1, 1, NULL, 0, &small, 1, C2_RETURN_HITS | C2_RETURN_CHANNELS),
                      c2t_event(2, 1, NULL, 0, &big, 1, C2_RETURN_HITS)};
    c2_event_result *alone = runtime_run(rt, dg, ev, 1, NULL);
    int stop = 0;
    ev[1].stop = &stop;
    stopper s = {&stop, small_run ? 0 : 20};
    pthread_t th;
    pthread_create(&th, NULL, stop_later, &s);
    c2c_run_stats st;
    c2_event_result *res = runtime_run(rt, dg, ev, 2, &st);
    pthread_join(th, NULL);
    printf("  stopped after 20 ms: %llu of %u photons stepped, call %.3f s, %u windows\n",
           (unsigned long long)res[1].steps, res[1].ntotal, st.seconds, st.windows);
    CHECK(res[1].steps < res[1].ntotal / 2, "the stopped event ran on (%llu steps)", (unsigned long long)res[1].steps);
    same_bytes(alone, res, 1, "the stopped event's neighbour");
    results_free(alone, 1);
    results_free(res, 2);

    /* no events; empty events between full ones; a photon alone */
    res = runtime_run(rt, dg, NULL, 0, NULL);
    free(res);
    const float pos[3] = {0, 0, 0}, dir[3] = {0, 0, 1};
    c2_photon *one = c2t_beam(1, pos, dir, 420.0f);
    c2_source none = small;
    none.nphotons = 0;
    c2_event mix[4] = {c2t_event(5, 2, NULL, 0, &none, 1, C2_RETURN_HITS), c2t_event(6, 2, one, 1, NULL, 0, 7),
                       c2t_event(7, 2, NULL, 0, NULL, 0, 7), c2t_event(8, 2, NULL, 0, &small, 1, 7)};
    c2_event_result *cpu = calloc(4, sizeof *cpu);
    CHECK(c2_engine_run(g, mix, 4, cpu, 0, &err) == 0, "%s", err.msg);
    res = runtime_run(rt, dg, mix, 4, NULL);
    compare_results(mix, cpu, res, 4, "empty events among full ones");
    results_free(res, 4);
    results_free(cpu, 4);

    /* a bad event is refused with the CPU engine's message; the runtime goes on */
    c2_photon bad = *one;
    bad.dir[2] = 2.0f;
    c2_event evb[2] = {mix[3], c2t_event(9, 2, &bad, 1, NULL, 0, 7)};
    c2_event_result rb[2];
    int rc = c2c_runtime_run(rt, dg, evb, 2, rb, NULL, &err);
    printf("  -> %s: %s\n", c2_errname(rc), err.msg);
    CHECK(rc == C2_ERANGE && strstr(err.msg, "event 1 (id 9)") && strstr(err.msg, "direction"), "bad event accepted");
    CHECK(!c2c_runtime_broken(rt), "a bad event broke the runtime");
    res = runtime_run(rt, dg, mix, 4, NULL);
    results_free(res, 4);
    free(one);
    c2c_runtime_free(rt);
    c2c_geometry_free(dg);
    c2_geometry_free(g);
}

/* ---- feeding the running kernel ---- */

typedef struct feed_log {
    uint32_t calls[64]; /* done calls per event */
    int rc;
} feed_log;

typedef struct feed_arg {
    feed_log *log;
    uint32_t base; /* the feed's first event in the test's list */
} feed_arg;

static void feed_done(void *arg, uint32_t i, int rc)
{
    feed_arg *a = arg;
    a->log->calls[a->base + i]++;
    a->log->rc = a->log->rc ? a->log->rc : rc;
}

/* Events fed one group at a time while the kernel runs the ones before
 * (a large one first, then small ones behind it; a group that wants end
 * states, which restarts the kernel with room for them; a group on
 * another geometry; empty and cancelled events; windows small enough that
 * their slots are reused many times over) come out the same bytes as the
 * same events run as one batch, each delivered exactly once. */
TEST(cuda_runtime_feeds_while_running)
{
    need_device();
    c2_error err = {0};
    c2_detector_params dp;
    c2_detector_params_default(&dp);
    c2_geometry *g = c2_detector_build(&dp, NULL, &err), *g2 = c2t_scattering_detector();
    CHECK(g && g2, "%s", err.msg);
    c2c_geometry *dg = c2c_geometry_upload(g, &err), *dg2 = dg ? c2c_geometry_upload(g2, &err) : NULL;
    CHECK(dg && dg2, "%s", err.msg);
    enum { N = 40 };
    const uint32_t hc = C2_RETURN_HITS | C2_RETURN_CHANNELS;
    c2_source src[N];
    c2_event ev[N];
    const float pos[3] = {100, 200, -300}, dir[3] = {0, 0, 1};
    c2_photon *beam = c2t_beam(5000, pos, dir, 420.0f);
    for (uint32_t e = 0; e < N; e++) {
        uint32_t n = e == 0 ? c2t_cap(3000000) : e % 7 == 3 ? 0 : c2t_cap(1000 + 37 * 997 * (e % 11));
        c2_source s = {{(float)(40 * e) - 800, 300, (float)(25 * e)}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, n, 0};
        src[e] = s;
        ev[e] = c2t_event(1000 + e, 7 + e, e % 5 == 1 ? beam : NULL, e % 5 == 1 ? 5000 : 0, &src[e], 1,
                          e >= 20 && e < 24 ? hc | C2_RETURN_PHOTONS : hc);
    }
    c2c_runtime *rt = runtime_new(0, 0, 0);
    c2_event_result *ref = runtime_run(rt, dg, ev, N, NULL);
    c2t_fixture fx;
    c2t_fixture_make(&fx);
    c2_event_result *ref2 = runtime_run(rt, dg2, fx.ev, 3, NULL);
    c2c_runtime_free(rt);

    /* windows of 20,000 photons: the first event alone takes 150 of them */
    rt = runtime_new(20000, 0, 0);
    int stop = 1;
    c2_event cancelled = ev[9];
    cancelled.stop = &stop;
    c2_event *evs = malloc(N * sizeof *evs);
    memcpy(evs, ev, N * sizeof *evs);
    evs[9] = cancelled;
    c2_event_result res[N + 3];
    feed_log log;
    memset(&log, 0, sizeof log);
    feed_arg args[N + 3];
    const uint32_t groups[][2] = {{0, 1},   {1, 2},   {3, 4},   {7, 5},   {12, 8},  {20, 4}, /* end states */
                                  {24, 1},  {25, 6},  {N, 3} /* another geometry */, {31, 9}};
    uint32_t launches0 = c2c_runtime_launches(rt), fed_behind = 0;
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        uint32_t b = groups[k][0], n = groups[k][1];
        args[b].log = &log;
        args[b].base = b;
        const int other = b == N;
        CHECK(c2c_runtime_feed(rt, other ? dg2 : dg, other ? fx.ev : evs + b, n, res + b, feed_done, &args[b],
                               &err) == 0,
              "feed %zu: %s", k, err.msg);
        if (k > 0 && k < 5 && c2c_runtime_inflight(rt) > n) {
            fed_behind++; /* fed while earlier events were still running */
        }
        CHECK(c2c_runtime_poll(rt, 0, &err) >= 0, "%s", err.msg);
    }
    CHECK(c2c_runtime_quiesce(rt, &err) == 0, "%s", err.msg);
    const uint32_t launches = c2c_runtime_launches(rt) - launches0;
    printf("  %u groups fed, %u of the first four while the 3 M-photon event ran; %u kernel launches "
           "(end states, another geometry and back restart it)\n",
           (unsigned)(sizeof groups / sizeof groups[0]), fed_behind, launches);
    CHECK(!log.rc, "an event failed: %s", c2_errname(log.rc));
    for (uint32_t e = 0; e < N + 3; e++) {
        CHECK(log.calls[e] == 1, "event %u delivered %u times", e, log.calls[e]);
    }
    CHECK(fed_behind >= 3, "the kernel was not fed while it ran (%u of 4 groups)", fed_behind);
    CHECK(launches == 4, "%u kernel launches, not 4", launches);
    CHECK(res[9].ntotal == ref[9].ntotal && res[9].steps == 0 && res[9].nhits == 0,
          "the cancelled event ran (%llu steps)", (unsigned long long)res[9].steps);
    c2_event_result_free(&res[9]);
    c2_event_result_free(&ref[9]);
    memset(&res[9], 0, sizeof res[9]);
    memset(&ref[9], 0, sizeof ref[9]);
    for (uint32_t e = 20; e < 24; e++) { /* an end state names its event by its index in its feed (here 20) */
        for (uint32_t i = 0; i < res[e].nphotons; i++) {
            CHECK(res[e].photons[i].event == e - 20, "event %u: end state of event %u", e, res[e].photons[i].event);
            res[e].photons[i].event = e;
        }
    }
    same_bytes(ref, res, N, "events fed in groups");
    same_bytes(ref2, res + N, 3, "a group on another geometry");
    for (uint32_t e = 0; e < N + 3; e++) {
        c2_event_result_free(&res[e]);
    }
    results_free(ref, N);
    results_free(ref2, 3);
    free(evs);
    free(beam);
    free(fx.ph);
    c2c_runtime_free(rt);
    c2c_geometry_free(dg);
    c2c_geometry_free(dg2);
    c2_geometry_free(g);
    c2_geometry_free(g2);
}

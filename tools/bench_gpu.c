/*
 * bench_gpu.c: `make bench-gpu`, on a machine with a GPU. Table 1: the
 * work queues on a synthetic workload, three ways. Table 2: the full
 * physics on the default detector, the runtime persistent and in wavefront
 * mode, the per-thread-loop reference and the CPU engine on all cores.
 * Prints markdown tables for doc/benchmarks.md. A benchmark, not a test.
 *
 * Usage: bench-gpu [-n photons[,photons...]]
 *        bench-gpu --profile photons   one call of the runtime's persistent
 *            kernel in one launch without the host (one_launch), for
 *            Nsight Compute (tools/gpu-run profile); prints what it ran
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../kernels/cuda/cuda_int.h"
#include "../kernels/queue/queue_int.h"
#include "../tests/util.h"

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Table 1: the synthetic workload (kernels/queue/queue_int.h) each way,
 * light and heavy steps, best of three runs each. */
static int bench_queues(uint32_t nitems)
{
    static const struct {
        c2q_mode mode;
        uint32_t yield;
        const char *name;
    } ways[] = {{C2Q_PERSISTENT, 0, "persistent, lanes refilled from the rings"},
                {C2Q_PERSISTENT, 1, "persistent, every step through the ring"},
                {C2Q_WAVEFRONT, 0, "wavefront, one step per launch"},
                {C2Q_LOOP, 0, "per-thread loop"}};
    printf("| items | lifetimes | flops/step | way | ms | G steps/s | ring pushes |\n|---|---|---|---|---|---|---|\n");
    for (int geo = 0; geo <= 1; geo++) {
        for (uint32_t flops = 4; flops <= 1024; flops *= 16) {
            for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
                c2q_synth_params p = {.mode = ways[w].mode, .nitems = nitems, .geometric = geo, .flops = flops,
                                      .spawn_every = 4, .yield_steps = ways[w].yield, .watchdog_s = 60};
                c2q_synth_result best = {0}, r;
                c2_error err = {0};
                for (int rep = 0; rep < 3; rep++) {
                    if (c2q_synth_run(&p, &r, &err)) {
                        fprintf(stderr, "bench-gpu: %s: %s\n", ways[w].name, err.msg);
                        return 1;
                    }
                    if (r.lost || r.duplicated || r.wrong) {
                        fprintf(stderr, "bench-gpu: %s: wrong results\n", ways[w].name);
                        return 1;
                    }
                    if (rep == 0 || r.seconds < best.seconds) {
                        best = r;
                    }
                }
                printf("| %u | %s | %u | %s | %.3f | %.2f | %llu |\n", nitems, geo ? "geometric" : "uniform", flops,
                       ways[w].name, 1e3 * best.seconds, 1e-9 * (double)best.steps / best.seconds,
                       (unsigned long long)best.pushes);
            }
        }
    }
    printf("\n");
    return 0;
}

/* The workload of tables 2 and 3: n photons from 10,000 isotropic 400 nm
 * point sources uniform in the ball of radius r (expanded where the photons
 * run), hits and the channel summary returned. */
#define BENCH_SOURCES 10000u
static c2_event bench_event(uint32_t n, float r, c2_source *src)
{
    c2_photon *pos = c2t_ball_photons(BENCH_SOURCES, r); /* for their positions */
    for (uint32_t i = 0; i < BENCH_SOURCES; i++) {
        c2_source s = {{pos[i].pos[0], pos[i].pos[1], pos[i].pos[2]}, 0.0f, {0, 0, 1}, -1.0f, 400.0f, -1, 0, 0};
        s.nphotons = n / BENCH_SOURCES + (i < n % BENCH_SOURCES);
        src[i] = s;
    }
    free(pos);
    return c2t_event(1, 42, NULL, 0, src, BENCH_SOURCES, C2_RETURN_HITS | C2_RETURN_CHANNELS);
}

/* Table 2: the full physics on the default detector, the runtime
 * (persistent) against its wavefront mode and the per-thread loop, and
 * the CPU engine on all cores (table 4's speedup). Best of three for the
 * GPU rows; "call" is the whole c2c_runtime_run: staging, kernel, window
 * drains, results in host memory. */
static int bench_physics(const c2_geometry *g, const c2c_geometry *dg, const uint32_t *sizes, uint32_t nsizes,
                         uint32_t cores)
{
    c2_error err = {0};
    c2_source *src = malloc(BENCH_SOURCES * sizeof *src);
    static const struct {
        const char *name;
        uint32_t warps_per_sm;
        int wavefront;
        uint64_t window;
        uint32_t host_threads;
    } ways[] = {
        {"GPU runtime, persistent (the default: all warps that fit, windows of 2^19, host threads half the cores up "
         "to 8)",
         0, 0, 0, 0},
        {"GPU runtime, persistent (one host thread)", 0, 0, 0, 1},
        {"GPU runtime, persistent (16 warps/SM)", 16, 0, 0, 0},
        {"GPU runtime, persistent (windows of 2^21)", 0, 0, 1u << 21, 0},
        {"GPU runtime, persistent (windows of 2^25)", 0, 0, 1u << 25, 0},
        {"GPU runtime, wavefront mode", 0, 1, 0, 0},
    };
    enum { WAYS = sizeof ways / sizeof ways[0] };
    c2c_runtime *rt[WAYS] = {NULL};
    for (int w = 0; w < WAYS; w++) {
        c2c_runtime_params rp;
        memset(&rp, 0, sizeof rp);
        rp.warps_per_sm = ways[w].warps_per_sm;
        rp.wavefront = ways[w].wavefront;
        rp.window = ways[w].window;
        rp.host_threads = ways[w].host_threads;
        if (!src || !(rt[w] = c2c_runtime_new(&rp, &err))) {
            fprintf(stderr, "bench-gpu: %s\n", src ? err.msg : "out of memory");
            return 1;
        }
    }
    printf("| photons | executor | call s | kernel s | host s | photons/s (call) | photons/s (kernel) | hits | windows x "
           "photons | vs CPU |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (uint32_t k = 0; k < nsizes; k++) {
        const uint32_t n = sizes[k];
        c2_event ev = bench_event(n, 1000.0f * 5.0f, src);
        double cpu = 0;
        uint32_t cpu_hits = 0;
        if (n <= 20000000u) { /* the CPU engine takes too long beyond */
            c2_event_result r;
            double t0 = bench_now();
            if (c2_engine_run(g, &ev, 1, &r, cores, &err)) {
                fprintf(stderr, "bench-gpu: %s\n", err.msg);
                return 1;
            }
            cpu = bench_now() - t0;
            cpu_hits = r.nhits;
            c2_event_result_free(&r);
        }
        for (int w = 0; w < WAYS; w++) {
            c2c_run_stats best;
            uint32_t hits = 0;
            memset(&best, 0, sizeof best);
            for (int rep = 0; rep < 3; rep++) {
                c2c_run_stats st;
                c2_event_result r;
                if (c2c_runtime_run(rt[w], dg, &ev, 1, &r, &st, &err)) {
                    fprintf(stderr, "bench-gpu: %s\n", err.msg);
                    return 1;
                }
                hits = r.nhits;
                c2_event_result_free(&r);
                if (rep == 0 || st.seconds < best.seconds) {
                    best = st;
                }
            }
            char vs[32] = "";
            if (cpu > 0) {
                snprintf(vs, sizeof vs, "%.0fx", cpu / best.seconds);
            }
            printf("| %u | %s | %.4f | %.4f | %.4f | %.3g | %.3g | %u | %u x %llu | %s |\n", n, ways[w].name,
                   best.seconds, best.kernel_seconds, best.host_seconds, n / best.seconds, n / best.kernel_seconds,
                   hits, best.windows, (unsigned long long)best.window, vs);
        }
        if (n <= 20000000u) {
            c2_photon *ends = malloc((size_t)n * sizeof *ends);
            double kernel = 0;
            if (!ends || c2c_loop_run(dg, &ev, 1, &ends, &kernel, &err)) {
                fprintf(stderr, "bench-gpu: %s\n", ends ? err.msg : "out of memory");
                return 1;
            }
            free(ends);
            printf("| %u | GPU per-thread loop (reference) | | %.4f | | | %.3g | | | %.0fx (kernel) |\n", n, kernel,
                   n / kernel, cpu / kernel);
            printf("| %u | CPU engine, %u threads | %.3f | | | %.3g | | %u | | 1x |\n", n, cores, cpu, n / cpu, cpu_hits);
        }
    }
    printf("\n");
    for (int w = 0; w < WAYS; w++) {
        c2c_runtime_free(rt[w]);
    }
    free(src);
    return 0;
}

/* --profile: one call, one launch of the persistent kernel that needs no
 * host while it runs (Nsight's kernel replay re-runs it as it is). */
static int bench_profile(const c2c_geometry *dg, uint32_t n)
{
    c2_error err = {0};
    c2_source *src = malloc(BENCH_SOURCES * sizeof *src);
    c2c_runtime_params rp = {.window = 1u << 25, .one_launch = 1};
    c2c_runtime *rt = src ? c2c_runtime_new(&rp, &err) : NULL;
    if (!rt) {
        fprintf(stderr, "bench-gpu: %s\n", src ? err.msg : "out of memory");
        free(src);
        return 1;
    }
    c2_event ev = bench_event(n, 1000.0f * 5.0f, src);
    c2_event_result r;
    c2c_run_stats st;
    int rc = c2c_runtime_run(rt, dg, &ev, 1, &r, &st, &err);
    if (rc) {
        fprintf(stderr, "bench-gpu: %s\n", err.msg);
    } else {
        printf("one launch: %llu photons, %u hits, %u window(s), %u warps, to the last window %.4f s, call %.4f s\n",
               (unsigned long long)st.photons, r.nhits, st.windows, st.warps, st.kernel_seconds, st.seconds);
        c2_event_result_free(&r);
    }
    c2c_runtime_free(rt);
    free(src);
    return rc != 0;
}

/* A photon count given on the command line (1 to 2^32 - 1), or 1 with the
 * reason printed. */
static int bench_photons(const char *s, uint32_t *n)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end || v == 0 || v > UINT32_MAX) {
        fprintf(stderr, "bench-gpu: a number of photons is 1 to 2^32 - 1, not '%s'\n", s);
        return 1;
    }
    *n = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* a run killed at a time limit keeps what it printed */
    uint32_t sizes[8] = {10000000, 100000000}, nsizes = 2, profile = 0;
    if (argc == 3 && strcmp(argv[1], "--profile") == 0) {
        if (bench_photons(argv[2], &profile)) {
            return 2;
        }
    } else if (argc == 3 && strcmp(argv[1], "-n") == 0) {
        nsizes = 0;
        for (char *t = strtok(argv[2], ","); t && nsizes < 8; t = strtok(NULL, ",")) {
            if (bench_photons(t, &sizes[nsizes++])) {
                return 2;
            }
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench-gpu [-n photons[,photons...]] | --profile photons\n");
        return 2;
    }
    c2_error err = {0};
    if (c2c_device_count(&err) <= 0) {
        fprintf(stderr, "bench-gpu: %s\n", err.msg);
        return 1;
    }
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_geometry *g = c2_detector_build(&p, NULL, &err);
    c2c_geometry *dg = g ? c2c_geometry_upload(g, &err) : NULL;
    if (!dg) {
        fprintf(stderr, "bench-gpu: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (profile) {
        rc = bench_profile(dg, profile);
    } else if (bench_queues(1u << 22) || bench_physics(g, dg, sizes, nsizes, (uint32_t)sysconf(_SC_NPROCESSORS_ONLN))) {
        rc = 1;
    }
    c2c_geometry_free(dg);
    c2_geometry_free(g);
    return rc;
}

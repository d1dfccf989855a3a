/*
 * bench_cpu.c: `make bench-cpu`. Builds the default detector and propagates
 * photons from random points inside half its radius, isotropic, 400 nm, on
 * one thread and on all cores; prints a markdown table for
 * doc/benchmarks.md. A benchmark, not a test: it checks nothing.
 *
 * Usage: bench-cpu [-n photons] [-t threads]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../tests/util.h"
#include "chroma2/engine.h"

static double bench_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double bench_maxrss_mb(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    uint32_t n = 1000000, all = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) {
            n = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "-t") == 0) {
            all = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench-cpu [-n photons] [-t threads]\n");
            return 2;
        }
    }
    c2_detector_params p;
    c2_detector_params_default(&p);
    c2_build_stats st;
    c2_error err = {0};
    double rss0 = bench_maxrss_mb();
    c2_geometry *g = c2_detector_build(&p, &st, &err);
    if (!g) {
        fprintf(stderr, "bench-cpu: %s\n", err.msg);
        return 1;
    }
    printf("| default detector | value |\n|---|---|\n");
    printf("| triangles | %llu |\n| BVH nodes | %llu |\n| BVH depth / largest leaf | %u / %u |\n",
           (unsigned long long)st.triangles, (unsigned long long)st.nodes, st.depth, st.max_leaf);
    printf("| BVH SAH cost (node visits + triangle tests per random ray) | %.1f |\n", st.sah_cost);
    printf("| flattened mesh + BVH | %.1f MB |\n| peak RSS growth while building | %.1f MB |\n",
           (double)st.bytes / 1e6, bench_maxrss_mb() - rss0);
    printf("| flatten + BVH build time | %.2f s |\n\n", st.seconds);

    c2_photon *ph = c2t_ball_photons(n, 0.5f * p.radius);
    c2_event ev;
    memset(&ev, 0, sizeof ev);
    ev.id = 1;
    ev.seed = 42;
    ev.photons = ph;
    ev.nphotons = n;
    ev.want = C2_RETURN_HITS | C2_RETURN_CHANNELS;
    printf("| threads | photons | seconds | photons/s | photons/s per thread | steps/photon | hits |\n");
    printf("|---|---|---|---|---|---|---|\n");
    uint32_t threads[2] = {1, all};
    for (int k = 0; k < (all > 1 ? 2 : 1); k++) {
        c2_event_result r;
        double t0 = bench_now();
        if (c2_engine_run(g, &ev, 1, &r, threads[k], &err)) {
            fprintf(stderr, "bench-cpu: %s\n", err.msg);
            return 1;
        }
        double dt = bench_now() - t0;
        printf("| %u | %u | %.2f | %.0f | %.0f | %.2f | %u |\n", threads[k], n, dt, n / dt, n / dt / threads[k],
               (double)r.steps / n, r.nhits);
        c2_event_result_free(&r);
    }
    free(ph);
    c2_geometry_free(g);
    return 0;
}

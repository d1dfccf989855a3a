/*
 * bench_gpu.c: `make bench-gpu`, on a machine with a GPU. The shared
 * physics on the default detector with the per-thread-loop executor (one
 * GPU thread per photon), against the CPU engine on all cores for the same
 * photons; prints a markdown table for doc/benchmarks.md. The persistent
 * queue runtime will add its rows here. A benchmark, not a test.
 *
 * Usage: bench-gpu [-n photons[,photons...]]
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
    printf("| items | flops/step | way | ms | G steps/s | ring pushes |\n|---|---|---|---|---|---|\n");
    for (uint32_t flops = 4; flops <= 64; flops += 60) {
        for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
            c2q_synth_params p = {.mode = ways[w].mode, .nitems = nitems, .flops = flops, .spawn_every = 4,
                                  .yield_steps = ways[w].yield, .watchdog_s = 60};
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
            printf("| %u | %u | %s | %.3f | %.2f | %llu |\n", nitems, flops, ways[w].name, 1e3 * best.seconds,
                   1e-9 * (double)best.steps / best.seconds, (unsigned long long)best.pushes);
        }
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* a run killed at a time limit keeps what it printed */
    uint32_t sizes[8] = {1000000, 10000000}, nsizes = 2;
    if (argc == 3 && strcmp(argv[1], "-n") == 0) {
        nsizes = 0;
        for (char *t = strtok(argv[2], ","); t && nsizes < 8; t = strtok(NULL, ",")) {
            sizes[nsizes++] = (uint32_t)strtoul(t, NULL, 10);
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench-gpu [-n photons[,photons...]]\n");
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
    if (bench_queues(1u << 22)) {
        return 1;
    }
    uint32_t cores = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    printf("| photons | executor | seconds | photons/s | GPU / CPU (%u threads) |\n", cores);
    printf("|---|---|---|---|---|\n");
    for (uint32_t k = 0; k < nsizes; k++) {
        uint32_t n = sizes[k];
        c2_photon *ph = c2t_ball_photons(n, 0.5f * p.radius), *ends = malloc((size_t)n * sizeof *ends);
        c2_event ev = c2t_event(1, 42, ph, n, NULL, 0, C2_RETURN_HITS);
        double kernel = 0, t0 = bench_now();
        if (!ends || c2c_loop_run(dg, &ev, 1, &ends, &kernel, &err)) {
            fprintf(stderr, "bench-gpu: %s\n", ends ? err.msg : "out of memory");
            return 1;
        }
        double gpu_wall = bench_now() - t0;
        c2_event_result r;
        t0 = bench_now();
        if (c2_engine_run(g, &ev, 1, &r, cores, &err)) {
            fprintf(stderr, "bench-gpu: %s\n", err.msg);
            return 1;
        }
        double cpu = bench_now() - t0;
        printf("| %u | GPU per-thread loop, kernel only | %.4f | %.3g | %.1fx |\n", n, kernel, n / kernel, cpu / kernel);
        printf("| %u | GPU per-thread loop, with copies | %.4f | %.3g | %.1fx |\n", n, gpu_wall, n / gpu_wall,
               cpu / gpu_wall);
        printf("| %u | CPU engine, %u threads | %.3f | %.3g | 1x |\n", n, cores, cpu, n / cpu);
        c2_event_result_free(&r);
        free(ends);
        free(ph);
    }
    c2c_geometry_free(dg);
    c2_geometry_free(g);
    return 0;
}

/* test_queue.c: the gating tests of the device work queues
 * (kernels/queue/): the synthetic workload through the persistent kernel's
 * rings under many batch sizes, with the input fed while the kernel runs,
 * through a drain phase (few items, many idle warps), with every step
 * going through the rings, and on a single warp; the wavefront and
 * per-thread loop run the same work. Every item must end exactly once with
 * the host's value. Skips where no CUDA device is usable. */
#include <stdlib.h>

#include "../kernels/cuda/cuda_int.h"
#include "../kernels/queue/queue_int.h"
#include "check.h"
#include "util.h"

static void need_device(void)
{
    c2_error err = {0};
    if (c2c_device_count(&err) <= 0) {
        SKIP("%s", err.msg);
    }
}

static void run_checked(const c2q_synth_params *p, const char *what)
{
    c2q_synth_result r;
    c2_error err = {0};
    int rc = c2q_synth_run(p, &r, &err);
    CHECK(rc == 0, "%s: %s", what, err.msg);
    printf("  %-44s %8llu items %9llu steps  lost %llu dup %llu wrong %llu  %.3f ms", what,
           (unsigned long long)r.items, (unsigned long long)r.steps, (unsigned long long)r.lost,
           (unsigned long long)r.duplicated, (unsigned long long)r.wrong, 1e3 * r.seconds);
    if (p->mode == C2Q_PERSISTENT) {
        printf("  (%u warps, ring 2^%d, %llu pushes)", r.warps, __builtin_ctz(r.capacity),
               (unsigned long long)r.pushes);
    }
    printf("\n");
    CHECK(r.lost == 0 && r.duplicated == 0 && r.wrong == 0, "%s: items lost, duplicated or wrong", what);
    CHECK(r.items == r.expected_items && r.steps == r.expected_steps, "%s: %llu items, %llu steps; expected %llu, %llu",
          what, (unsigned long long)r.items, (unsigned long long)r.steps, (unsigned long long)r.expected_items,
          (unsigned long long)r.expected_steps);
}

TEST(queue_every_item_once)
{
    need_device();
    /* (items, batch; 0: staged before the launch): one item; around a warp;
     * many; more than a ring holds
     * (2^21 > 2 x the lanes of the H200), fed in batches while it runs;
     * a trickle of single items fed one by one to idle warps */
    static const uint32_t cases[][2] = {{1, 1},       {31, 31},           {32, 32},       {33, 33},   {1000, 1000},
                                        {1u << 20, 1u << 20}, {1u << 20, 0}, {(1u << 21) + 7, 100000}, {3000, 1}};
    char what[96];
    for (uint32_t yield = 0; yield <= 1; yield++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            c2q_synth_params p = {.mode = C2Q_PERSISTENT, .nitems = c2t_cap(cases[i][0]), .flops = 4, .spawn_every = 3,
                                  .batch = cases[i][1], .yield_steps = yield, .watchdog_s = 60,
                                  .check_values = 1};
            snprintf(what, sizeof what, "persistent n=%u batch=%u%s", p.nitems, p.batch,
                     yield ? " every step via ring" : "");
            run_checked(&p, what);
        }
    }
    /* one block alone: every wait is on a few warps or the host */
    c2q_synth_params one = {.mode = C2Q_PERSISTENT, .nitems = 5000, .flops = 4, .spawn_every = 2, .batch = 700,
                            .yield_steps = 1, .max_warps = 1, .watchdog_s = 60, .check_values = 1};
    run_checked(&one, "persistent n=5000 on one block of 8 warps, via ring");
}

TEST(queue_ways_same_work)
{
    need_device();
    /* every way at light, heavy (64: one chain) and compute-bound (1024)
     * steps, geometric lifetimes at 64; the persistent way's light steps
     * are queue_every_item_once's. The host recomputes every value. */
    static const char *names[] = {"persistent", "wavefront", "loop"};
    for (int mode = C2Q_PERSISTENT; mode <= C2Q_LOOP; mode++) {
        for (uint32_t flops = 4; flops <= 1024; flops *= 16) {
            if (mode == C2Q_PERSISTENT && flops == 4) {
                continue;
            }
            c2q_synth_params p = {.mode = (c2q_mode)mode, .nitems = c2t_cap(flops == 1024 ? 1u << 16 : 1u << 20),
                                  .geometric = flops == 64, .flops = flops, .spawn_every = 3, .check_values = 1};
            char what[80];
            snprintf(what, sizeof what, "%s n=%u %u flops/step%s", names[mode], p.nitems, flops,
                     p.geometric ? ", geometric lifetimes" : "");
            run_checked(&p, what);
        }
    }
}

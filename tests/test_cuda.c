/* test_cuda.c: the shared physics on the GPU against the CPU engine, same
 * events and seeds. Float results differ in the last bits (the GPU fuses
 * multiply-adds and has its own sinf/logf), which may send a rare photon
 * down another branch: at least 99.9% of photons must end with the same
 * flags and channel, and those within tolerance in position and time. Skips,
 * saying why, where no CUDA device is usable. */
#include <stdlib.h>
#include <string.h>

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

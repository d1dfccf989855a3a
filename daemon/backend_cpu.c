/*
 * backend_cpu.c: the CPU engine as a backend. The engine runs a batch on
 * its own threads; the backend thread waits for it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

static int cpu_run(c2d_backend *b, const c2_geometry *g, const c2_event *ev, uint32_t n, c2_event_result *res,
                   c2_error *err)
{
    return c2_engine_run(g, ev, n, res, b->threads, err);
}

int c2d_backend_cpu_init(c2d_backend *b, uint32_t threads)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(b, 0, sizeof *b);
    b->name = "cpu";
    b->threads = threads ? threads : (uint32_t)(cores > 0 ? cores : 1);
    b->run = cpu_run;
    snprintf(b->device, sizeof b->device, "cpu: %u threads", b->threads);
    return 0;
}

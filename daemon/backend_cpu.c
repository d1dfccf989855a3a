/*
 * backend_cpu.c: the CPU engine as a backend. The engine runs a batch on
 * its own threads; the backend thread waits for it.
 */
#include <stdio.h>
#include <string.h>

#include "../kernels/cpu/engine_int.h"
#include "daemon.h"

static int cpu_run(c2d_backend *b, const c2_geometry *g, const c2_event *ev, uint32_t n, c2_event_result *res,
                   c2_error *err)
{
    return c2_engine_run(g, ev, n, res, b->threads, err);
}

int c2d_backend_cpu_init(c2d_backend *b, uint32_t threads)
{
    memset(b, 0, sizeof *b);
    b->name = "cpu";
    b->threads = threads ? threads : c2i_cores(); /* a cpuset limits it: batch nodes, containers */
    b->run = cpu_run;
    snprintf(b->device, sizeof b->device, "cpu: %u threads", b->threads);
    return 0;
}

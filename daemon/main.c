/*
 * main.c: chroma2d's entry point and control plane. Parses options, takes
 * the single-instance lock, loads the built-in detector, starts the
 * backend, scheduler and server, then runs the libuv loop: SIGTERM/SIGINT
 * drain (stop accepting, finish accepted events within drain_timeout_s,
 * exit 0), SIGHUP is logged, timers expire deadlines, roll statistics,
 * ping systemd's watchdog and check that the listeners still accept.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"

typedef struct main_state {
    c2d_config cfg;
    c2d_sched *sched;
    c2d_server *srv;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t tick, check;
    int draining;
    double drain_deadline;
    uint64_t watchdog_usec;
} main_state;

static double main_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void main_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !path[0]) {
        return;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof sa.sun_path) {
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@') {
        sa.sun_path[0] = 0; /* abstract socket */
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
        c2d_log(C2D_LOG_WARN, "sd_notify: %s", strerror(errno));
    }
    close(fd);
}

static void main_usage(FILE *f)
{
    fprintf(f, "usage: chroma2d [options]\n"
               "  --listen URL        listen on URL (repeatable; default $CHROMA2_URL or %s)\n"
               "  --backend NAME      cpu, cuda or auto (default auto: cuda when a GPU is usable)\n"
               "  --threads N         CPU engine threads (default: all cores)\n"
               "  --max-queued N      events accepted and not finished (default 1024)\n"
               "  --max-per-client N  of those, per connection (default 256)\n"
               "  --batch-photons N   merge queued events into batches of about N photons (default 1000000)\n"
               "  --pool-mb N         memory accepted events may hold (default 4096)\n"
               "  --socket-mode OCT   ipc socket permissions (default 0660)\n"
               "  --drain-timeout S   seconds to finish accepted events on SIGTERM (default 60)\n"
               "  --log-level L       error, warn, info or debug (default info)\n"
               "  --trace             log each event's lifecycle\n"
               "  --detector-pmts N   PMTs of the built-in detector (default 5000)\n"
               "  --help              this text\n",
            C2D_DEFAULT_URL);
}

/* Parses an unsigned option value, or exits 2 naming it. */
static uint64_t main_uint(const char *opt, const char *v, uint64_t lo, uint64_t hi, int base)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, base);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "chroma2d: %s: '%s' is not a number in [%llu, %llu]\n", opt, v, (unsigned long long)lo,
                (unsigned long long)hi);
        exit(2);
    }
    return x;
}

static void main_options(c2d_config *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},      {"backend", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 't'},     {"max-queued", required_argument, 0, 'q'},
        {"max-per-client", required_argument, 0, 'c'}, {"batch-photons", required_argument, 0, 'p'},
        {"pool-mb", required_argument, 0, 'm'},     {"socket-mode", required_argument, 0, 's'},
        {"drain-timeout", required_argument, 0, 'd'}, {"log-level", required_argument, 0, 'v'},
        {"trace", no_argument, 0, 'T'},             {"help", no_argument, 0, 'h'},
        {"detector-pmts", required_argument, 0, 'P'},
        {0, 0, 0, 0}};
    memset(c, 0, sizeof *c);
    c->backend = "auto";
    c->max_queued = 1024;
    c->max_per_client = 256;
    c->max_message_bytes = 256u << 20;
    c->max_photons = 1ull << 31;
    c->batch_photons = 1000000;
    c->pool_bytes = 4096ull << 20;
    c->socket_mode = 0660;
    c->drain_timeout_s = 60;
    c->log_level = C2D_LOG_INFO;
    c->detector_pmts = 5000;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            if (c->nlisten == C2D_MAX_LISTEN) {
                fprintf(stderr, "chroma2d: at most %d --listen\n", C2D_MAX_LISTEN);
                exit(2);
            }
            c->listen[c->nlisten++] = optarg;
            break;
        case 'b':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto")) {
                fprintf(stderr, "chroma2d: --backend: '%s' is not cpu, cuda or auto\n", optarg);
                exit(2);
            }
            c->backend = optarg;
            break;
        case 't': c->threads = (uint32_t)main_uint("--threads", optarg, 0, 1024, 10); break;
        case 'q': c->max_queued = (uint32_t)main_uint("--max-queued", optarg, 1, 1u << 20, 10); break;
        case 'c': c->max_per_client = (uint32_t)main_uint("--max-per-client", optarg, 1, 1u << 20, 10); break;
        case 'p': c->batch_photons = main_uint("--batch-photons", optarg, 1, 1ull << 40, 10); break;
        case 'm': c->pool_bytes = main_uint("--pool-mb", optarg, 1, 1ull << 24, 10) << 20; break;
        case 's': c->socket_mode = (uint32_t)main_uint("--socket-mode", optarg, 0, 0777, 8); break;
        case 'd': c->drain_timeout_s = (double)main_uint("--drain-timeout", optarg, 0, 86400, 10); break;
        case 'v':
            c->log_level = !strcmp(optarg, "error") ? C2D_LOG_ERROR
                           : !strcmp(optarg, "warn") ? C2D_LOG_WARN
                           : !strcmp(optarg, "info") ? C2D_LOG_INFO
                           : !strcmp(optarg, "debug") ? C2D_LOG_DEBUG
                                                      : -1;
            if (c->log_level < 0) {
                fprintf(stderr, "chroma2d: --log-level: '%s' is not error, warn, info or debug\n", optarg);
                exit(2);
            }
            break;
        case 'T': c->trace = 1; break;
        case 'P': c->detector_pmts = (uint32_t)main_uint("--detector-pmts", optarg, 1, 1000000, 10); break;
        case 'h': main_usage(stdout); exit(0);
        default: main_usage(stderr); exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chroma2d: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (c->nlisten == 0) {
        const char *env = getenv("CHROMA2_URL");
        c->listen[c->nlisten++] = env && env[0] ? env : C2D_DEFAULT_URL;
    }
}

/* One daemon per ipc socket: a lock file beside the first ipc listener. */
static int main_lock(const c2d_config *c)
{
    for (int i = 0; i < c->nlisten; i++) {
        if (strncmp(c->listen[i], "ipc://", 6) != 0) {
            continue;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s.lock", c->listen[i] + 6);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            c2d_log(C2D_LOG_ERROR, "cannot open lock file %s: %s", path, strerror(errno));
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            c2d_log(C2D_LOG_ERROR, "another chroma2d holds %s (it serves %s)", path, c->listen[i]);
            close(fd);
            return -1;
        }
        return fd; /* held until exit */
    }
    return -2; /* no ipc listener: nothing to lock */
}

static void main_begin_drain(main_state *m, const char *why, double timeout_s)
{
    if (m->draining) {
        return;
    }
    m->draining = 1;
    m->drain_deadline = main_now() + timeout_s;
    c2d_log(C2D_LOG_INFO, "%s: draining (up to %.1f s for accepted events)", why, timeout_s);
    c2d_sched_drain(m->sched);
    main_notify("STOPPING=1\nSTATUS=draining");
}

static void main_signal(uv_signal_t *h, int signum)
{
    main_state *m = h->data;
    if (signum == SIGHUP) {
        c2d_log(C2D_LOG_INFO, "SIGHUP: logs go to stderr; no configuration file to reload in this version");
        return;
    }
    main_begin_drain(m, signum == SIGTERM ? "SIGTERM" : "SIGINT", m->cfg.drain_timeout_s);
}

static void main_tick(uv_timer_t *t)
{
    main_state *m = t->data;
    c2d_sched_tick(m->sched);
    uint64_t timeout_ms;
    if (!m->draining && c2d_server_shutdown_requested(m->srv, &timeout_ms)) {
        main_begin_drain(m, "shutdown request", timeout_ms ? 1e-3 * (double)timeout_ms : m->cfg.drain_timeout_s);
    }
    if (m->draining && (c2d_sched_idle(m->sched) || main_now() > m->drain_deadline)) {
        if (!c2d_sched_idle(m->sched)) {
            c2d_log(C2D_LOG_WARN, "drain timeout: failing the events still unfinished");
        }
        uv_stop(t->loop);
    }
}

static void main_check(uv_timer_t *t)
{
    main_state *m = t->data;
    if (!m->draining) {
        c2d_server_check_listeners(m->srv);
    }
    if (m->watchdog_usec) {
        main_notify("WATCHDOG=1");
    }
}

int main(int argc, char **argv)
{
    main_state m;
    memset(&m, 0, sizeof m);
    main_options(&m.cfg, argc, argv);
    c2d_log_level = m.cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    int lock = main_lock(&m.cfg);
    if (lock == -1) {
        return 1;
    }
    c2d_backend backend;
    if (strcmp(m.cfg.backend, "cuda") == 0) {
        c2d_log(C2D_LOG_ERROR, "--backend cuda: the CUDA backend is not part of this build yet");
        return 1;
    }
    c2d_backend_cpu_init(&backend, m.cfg.threads);
    c2d_log(C2D_LOG_INFO, "chroma2d %s: backend %s (%s)", C2D_VERSION, backend.name, backend.device);

    c2_detector_params p;
    c2_detector_params_default(&p);
    p.npmts = m.cfg.detector_pmts;
    c2_build_stats st;
    c2_error err = {0};
    c2d_geometry geom = {.name = "default", .builtin = 1};
    geom.g = c2_detector_build(&p, &st, &err);
    if (!geom.g) {
        c2d_log(C2D_LOG_ERROR, "built-in detector: %s", err.msg);
        return 1;
    }
    c2d_log(C2D_LOG_INFO, "geometry 'default': %llu triangles, %u channels, BVH built in %.2f s",
            (unsigned long long)st.triangles, st.channels, st.seconds);

    uv_loop_t *loop = uv_default_loop();
    m.sched = c2d_sched_new(&m.cfg, &backend, &geom, 1);
    if (!m.sched) {
        c2d_log(C2D_LOG_ERROR, "cannot start the scheduler");
        return 1;
    }
    m.srv = c2d_server_start(&m.cfg, m.sched, &backend, loop, &err);
    if (err.msg[0]) {
        c2d_log(C2D_LOG_ERROR, "%s", err.msg);
        c2d_sched_stop(m.sched);
        c2d_server_stop(m.srv);
        c2d_sched_free(m.sched);
        return 1;
    }
    const char *wd = getenv("WATCHDOG_USEC");
    m.watchdog_usec = wd ? strtoull(wd, NULL, 10) : 0;
    uv_signal_init(loop, &m.sigterm);
    uv_signal_init(loop, &m.sigint);
    uv_signal_init(loop, &m.sighup);
    m.sigterm.data = m.sigint.data = m.sighup.data = &m;
    uv_signal_start(&m.sigterm, main_signal, SIGTERM);
    uv_signal_start(&m.sigint, main_signal, SIGINT);
    uv_signal_start(&m.sighup, main_signal, SIGHUP);
    uv_timer_init(loop, &m.tick);
    uv_timer_init(loop, &m.check);
    m.tick.data = m.check.data = &m;
    uv_timer_start(&m.tick, main_tick, 50, 50);
    /* the listener self-check doubles as the watchdog ping: every second,
     * or twice per watchdog period when systemd asks for one */
    uint64_t check_ms = m.watchdog_usec ? m.watchdog_usec / 2000 : 1000;
    check_ms = check_ms < 1000 ? check_ms : 1000;
    uv_timer_start(&m.check, main_check, check_ms, check_ms);
    main_notify("READY=1\nSTATUS=serving");
    c2d_log(C2D_LOG_INFO, "ready");

    uv_run(loop, UV_RUN_DEFAULT);

    c2d_log(C2D_LOG_INFO, "stopping");
    c2d_server_close_listeners(m.srv);
    c2d_sched_stop(m.sched); /* unfinished events get SHUTTING_DOWN */
    c2d_server_stop(m.srv);
    c2d_sched_free(m.sched);
    uv_close((uv_handle_t *)&m.sigterm, NULL);
    uv_close((uv_handle_t *)&m.sigint, NULL);
    uv_close((uv_handle_t *)&m.sighup, NULL);
    uv_close((uv_handle_t *)&m.tick, NULL);
    uv_close((uv_handle_t *)&m.check, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    c2_geometry_free(geom.g);
    if (lock >= 0) {
        close(lock);
    }
    c2d_log(C2D_LOG_INFO, "stopped");
    return 0;
}

/*
 * main.c: chroma2d's entry point and control plane. Parses options, takes
 * the single-instance lock, loads the built-in detector, starts the
 * backend, scheduler and server, then runs the libuv loop: SIGTERM/SIGINT
 * drain (stop accepting, finish accepted events within drain_timeout_s,
 * exit 0), SIGHUP reloads the configuration file, timers expire deadlines,
 * roll statistics and ping systemd's watchdog.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
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
    int exit_code;         /* 1 once the backend failed for good */
    double exit_not_before; /* then status keeps saying why for a moment */
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

/* SIGHUP: re-reads the configuration file. log-level and trace apply at
 * once; other settings need a restart, which the log says. Logs go to
 * stderr (the journal), so there is no log file to reopen. */
static void main_reload(main_state *m)
{
    if (!m->cfg.config_path) {
        c2d_log(C2D_LOG_INFO, "SIGHUP: no --config file to reload");
        return;
    }
    c2d_config fresh;
    char err[512];
    c2d_config_defaults(&fresh);
    if (c2d_config_file(&fresh, m->cfg.config_path, err, sizeof err)) {
        c2d_log(C2D_LOG_ERROR, "SIGHUP: %s; keeping the current settings", err);
    } else {
        m->cfg.log_level = fresh.log_level;
        m->cfg.trace = fresh.trace;
        c2d_log_level = fresh.log_level;
        if (fresh.max_queued != m->cfg.max_queued || fresh.threads != m->cfg.threads ||
            fresh.batch_photons != m->cfg.batch_photons || fresh.pool_bytes != m->cfg.pool_bytes ||
            fresh.max_per_client != m->cfg.max_per_client || fresh.nlisten != m->cfg.nlisten ||
            fresh.max_client_bytes != m->cfg.max_client_bytes || fresh.gpu_pool_bytes != m->cfg.gpu_pool_bytes ||
            strcmp(fresh.backend, m->cfg.backend) != 0) {
            c2d_log(C2D_LOG_WARN, "SIGHUP: settings other than log-level and trace take effect after a restart");
        }
        c2d_log(C2D_LOG_INFO, "SIGHUP: reloaded %s (log-level %d, trace %s)", m->cfg.config_path, fresh.log_level,
                fresh.trace ? "on" : "off");
    }
    c2d_config_free(&fresh);
}

static void main_signal(uv_signal_t *h, int signum)
{
    main_state *m = h->data;
    if (signum == SIGHUP) {
        main_reload(m);
        return;
    }
    main_begin_drain(m, signum == SIGTERM ? "SIGTERM" : "SIGINT", m->cfg.drain_timeout_s);
}

/* Something the daemon cannot recover from in place: the backend failed
 * for good (a sticky CUDA error), or a listener could not be re-created.
 * Stop taking events, let the scheduler answer what it holds, keep
 * answering status for 2 s (state failed, the reason) and exit 1 so that
 * the service manager restarts chroma2d on a clean device. */
static void main_check_failures(main_state *m)
{
    char why[300];
    if (m->exit_code) {
        return;
    }
    if (c2d_server_lost_listener(m->srv, why, sizeof why)) {
        c2d_sched_fail(m->sched, why); /* status and /readyz say it from now on */
    } else if (!c2d_sched_broken(m->sched, why, sizeof why)) {
        return;
    }
    m->exit_code = 1;
    m->exit_not_before = main_now() + 2.0;
    c2d_log(C2D_LOG_ERROR, "%s; exiting with status 1 to be restarted", why);
    main_begin_drain(m, "unrecoverable failure", 10.0);
    char status[340];
    snprintf(status, sizeof status, "STATUS=failed: %.300s", why); /* after the drain's STATUS=draining */
    main_notify(status);
}

static void main_tick(uv_timer_t *t)
{
    main_state *m = t->data;
    c2d_sched_tick(m->sched);
    main_check_failures(m);
    uint64_t timeout_ms;
    if (!m->draining && c2d_server_shutdown_requested(m->srv, &timeout_ms)) {
        main_begin_drain(m, "shutdown request", timeout_ms ? 1e-3 * (double)timeout_ms : m->cfg.drain_timeout_s);
    }
    if (m->draining && (c2d_sched_idle(m->sched) || main_now() > m->drain_deadline) &&
        main_now() >= m->exit_not_before) {
        if (!c2d_sched_idle(m->sched)) {
            c2d_log(C2D_LOG_WARN, "drain timeout: failing the events still unfinished");
        }
        uv_stop(t->loop);
    }
}

static void main_watchdog(uv_timer_t *t)
{
    (void)t;
    main_notify("WATCHDOG=1"); /* the loop is alive */
}

/* Every connection is a descriptor: take the hard limit of open files as
 * the soft one (systemd's default soft limit is 1024). */
static void main_raise_open_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max < (1u << 20) ? rl.rlim_max : (1u << 20);
        if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            c2d_log(C2D_LOG_DEBUG, "open files limit raised from %llu to %llu", (unsigned long long)was,
                    (unsigned long long)rl.rlim_cur);
        }
    }
}

/* --backend: cpu; cuda (or fail, saying why); auto: cuda when a GPU is
 * usable, else cpu. */
static int main_backend(const c2d_config *cfg, c2d_backend *b)
{
    if (strcmp(cfg->backend, "cpu") != 0) {
#ifdef C2D_CUDA
        c2_error err = {0};
        if (c2d_backend_cuda_init(b, cfg->gpu_pool_bytes, &err) == 0) {
            return 0;
        }
        if (!strcmp(cfg->backend, "cuda")) {
            c2d_log(C2D_LOG_ERROR, "--backend cuda: %s", err.msg);
            return -1;
        }
        c2d_log(C2D_LOG_INFO, "backend auto: no usable GPU (%s): the CPU engine serves", err.msg);
#else
        if (!strcmp(cfg->backend, "cuda")) {
            c2d_log(C2D_LOG_ERROR, "--backend cuda: this chroma2d was built without CUDA (no nvcc when it was built)");
            return -1;
        }
        c2d_log(C2D_LOG_INFO, "backend auto: built without CUDA: the CPU engine serves");
#endif
    }
    return c2d_backend_cpu_init(b, cfg->threads);
}

int main(int argc, char **argv)
{
    main_state m;
    memset(&m, 0, sizeof m);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            c2d_config_usage(stdout);
            return 0;
        }
    }
    char cfg_err[512];
    c2d_config_defaults(&m.cfg);
    if (c2d_config_args(&m.cfg, argc, argv, cfg_err, sizeof cfg_err)) {
        fprintf(stderr, "chroma2d: %s (see chroma2d --help)\n", cfg_err);
        return 2;
    }
    c2d_log_level = m.cfg.log_level;
    signal(SIGPIPE, SIG_IGN);
    main_raise_open_files();
    int lock = main_lock(&m.cfg);
    if (lock == -1) {
        return 1;
    }
    c2d_backend backend;
    if (main_backend(&m.cfg, &backend)) {
        return 1;
    }
    c2d_log(C2D_LOG_INFO, "chroma2d %s: backend %s (%s)", C2D_VERSION, backend.name, backend.device);

    c2_detector_params p;
    c2_detector_params_default(&p);
    p.npmts = m.cfg.detector_pmts;
    c2_build_stats st;
    c2_error err = {0};
    c2p_err perr = {0};
    c2d_geometry *geom = calloc(1, sizeof *geom);
    if (!geom || !(geom->g = c2_detector_build(&p, &st, &err))) {
        c2d_log(C2D_LOG_ERROR, "built-in detector: %s", geom ? err.msg : "out of memory");
        return 1;
    }
    strcpy(geom->name, "default");
    geom->builtin = 1;
    c2d_geometry_digest(geom);
    c2d_log(C2D_LOG_INFO, "geometry 'default': %llu triangles, %u channels, BVH built in %.2f s, digest %s",
            (unsigned long long)st.triangles, st.channels, st.seconds, geom->digest);

    uv_loop_t *loop = uv_default_loop();
    m.sched = c2d_sched_new(&m.cfg, &backend);
    if (!m.sched || c2d_sched_add_geometry(m.sched, geom, 0, &perr)) {
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
    c2d_metrics *metrics = NULL;
    if (m.cfg.metrics_url && !(metrics = c2d_metrics_start(m.cfg.metrics_url, m.sched, &backend, &err))) {
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
    if (m.watchdog_usec) { /* systemd's WatchdogSec: ping twice per period */
        uv_timer_start(&m.check, main_watchdog, m.watchdog_usec / 2000, m.watchdog_usec / 2000);
    }
    main_notify("READY=1\nSTATUS=serving");
    c2d_log(C2D_LOG_INFO, "ready");

    uv_run(loop, UV_RUN_DEFAULT);

    c2d_log(C2D_LOG_INFO, "stopping");
    c2d_metrics_stop(metrics);
    /* unfinished events get SHUTTING_DOWN, over connections that are still
     * open: closing a listener would close the pipes it accepted */
    c2d_sched_stop(m.sched);
    c2d_server_stop(m.srv);
    c2d_sched_free(m.sched);
    uv_close((uv_handle_t *)&m.sigterm, NULL);
    uv_close((uv_handle_t *)&m.sigint, NULL);
    uv_close((uv_handle_t *)&m.sighup, NULL);
    uv_close((uv_handle_t *)&m.tick, NULL);
    uv_close((uv_handle_t *)&m.check, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    if (lock >= 0) {
        close(lock);
    }
    if (backend.free) {
        backend.free(&backend);
    }
    c2d_log(C2D_LOG_INFO, "stopped%s", m.exit_code ? " (after an unrecoverable failure: exit 1)" : "");
    c2d_config_free(&m.cfg);
    return m.exit_code;
}

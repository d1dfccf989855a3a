/*
 * chroma2ctl: inspect and administer a running chroma2d.
 *
 *   chroma2ctl [--url URL] [--json] [--timeout MS] COMMAND [ARGS]
 *
 * Output: a human table on stdout; with --json one JSON object per reply,
 * with "schema": 1, the stable contract for scripts. Errors go to stderr.
 * Exit codes: 0 ok, 1 error, 2 usage, 3 daemon unreachable, 4 daemon up but
 * not ready.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "chroma2/client.h"

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_NOT_READY = 4 };

static const char ctl_usage[] =
    "usage: chroma2ctl [--url URL] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  status                  state, readiness and queue of the daemon (exit 4 if not ready)\n"
    "  ping [COUNT]            round trips, with the time of each\n"
    "  stats [--watch [S]]     counters and rates (every S seconds, default 1, with --watch)\n"
    "  geometry list           loaded geometries\n"
    "  geometry load FILE [NAME] [--replace]\n"
    "                          load a geometry: FILE holds the msgpack map of load_geometry's\n"
    "                          'geometry' (PROTOCOL.md); NAME defaults to FILE's base name\n"
    "  geometry unload NAME    unload a geometry\n"
    "  events                  events queued and running\n"
    "  cancel TICKET           cancel an event\n"
    "  drain                   stop accepting events; finish the accepted ones\n"
    "  shutdown [TIMEOUT_MS]   drain, then exit\n"
    "  submit [--photons N] [--wavelength NM] [--seed S]\n"
    "                          run an isotropic point source at the centre; print its hits\n"
    "\n"
    "--url defaults to $CHROMA2_URL, else " C2_DEFAULT_URL ".\n"
    "exit codes: 0 ok, 1 error, 2 usage, 3 daemon unreachable, 4 daemon up but not ready\n";

static int ctl_json;
static uint32_t ctl_timeout_ms = 5000;

static int ctl_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "chroma2ctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", ctl_usage);
    return EXIT_USAGE;
}

/* ---- printing a reply ---- */

static void ctl_json_value(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: printf("null"); break;
    case MSGPACK_OBJECT_BOOLEAN: printf(o->via.boolean ? "true" : "false"); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: printf("%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: printf("%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: printf("%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR:
        putchar('"');
        for (uint32_t i = 0; i < o->via.str.size; i++) {
            unsigned char c = (unsigned char)o->via.str.ptr[i];
            if (c == '"' || c == '\\') {
                printf("\\%c", c);
            } else if (c < 0x20) {
                printf("\\u%04x", c);
            } else {
                putchar(c);
            }
        }
        putchar('"');
        break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            printf(i ? ", " : "");
            ctl_json_value(&o->via.array.ptr[i]);
        }
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            printf(i ? ", " : "");
            ctl_json_value(&o->via.map.ptr[i].key);
            printf(": ");
            ctl_json_value(&o->via.map.ptr[i].val);
        }
        putchar('}');
        break;
    default: printf("{\"bytes\": %u}", o->via.bin.size); break;
    }
}

static int ctl_is_envelope(const msgpack_object *k)
{
    static const char *const skip[] = {"v", "id", "type", "ok"};
    for (int i = 0; i < 4; i++) {
        if (k->via.str.size == strlen(skip[i]) && memcmp(k->via.str.ptr, skip[i], k->via.str.size) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Scalars as text for the human view. */
static void ctl_text(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        printf("%.*s", (int)o->via.str.size, o->via.str.ptr);
    } else if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64) {
        printf("%.4g", o->via.f64);
    } else {
        ctl_json_value(o);
    }
}

/* The human view: key/value lines, nested maps indented, arrays of maps as
 * tables whose columns are the first row's keys. */
static void ctl_human(const msgpack_object *map, int indent)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key, *v = &map->via.map.ptr[i].val;
        if (indent == 0 && ctl_is_envelope(k)) {
            continue;
        }
        printf("%*s%-*.*s", indent, "", 18 - indent, (int)k->via.str.size, k->via.str.ptr);
        if (v->type == MSGPACK_OBJECT_MAP) {
            printf("\n");
            ctl_human(v, indent + 2);
        } else if (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size &&
                   v->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *first = &v->via.array.ptr[0];
            printf("\n%*s", indent + 2, "");
            for (uint32_t c = 0; c < first->via.map.size; c++) {
                printf("%-14.*s", (int)first->via.map.ptr[c].key.via.str.size, first->via.map.ptr[c].key.via.str.ptr);
            }
            for (uint32_t r = 0; r < v->via.array.size; r++) {
                const msgpack_object *row = &v->via.array.ptr[r];
                printf("\n%*s", indent + 2, "");
                for (uint32_t c = 0; c < row->via.map.size; c++) {
                    const msgpack_object *cell = &row->via.map.ptr[c].val;
                    if (cell->type == MSGPACK_OBJECT_MAP) {
                        printf("%-14s", "{...}");
                        continue;
                    }
                    ctl_text(cell);
                    printf("  ");
                }
            }
            printf("\n");
        } else {
            ctl_text(v);
            printf("\n");
        }
    }
}

static void ctl_print(const c2p_msg *m)
{
    if (ctl_json) {
        printf("{\"schema\": 1, \"reply\": ");
        ctl_json_value(m->root);
        printf("}\n");
    } else {
        ctl_human(m->root, 0);
    }
    fflush(stdout);
}

/* ---- requests ---- */

/* The connection, made at the first request: a usage error never
 * connects (a connection closed before NNG's handshake is what stops
 * NNG 1.5.2 listeners, #1518, so tools should not make them needlessly). */
static c2_client *ctl_client;

static c2_client *ctl_connect(const char *url)
{
    c2_error err = {0};
    if (!ctl_client && c2_client_open(url, &ctl_client, &err)) {
        fprintf(stderr, "chroma2ctl: %s\n", err.msg);
        ctl_client = NULL;
    }
    return ctl_client;
}

static int ctl_exit_for(int rc) { return rc == C2_ETIMEDOUT || rc == C2_EIO ? EXIT_UNREACHABLE : EXIT_ERROR; }

/* Sends one request; prints the reply unless quiet. *ready gets status's
 * "ready" when asked for. */
static int ctl_call(const char *url, const char *type, const void *body, size_t len, uint32_t nfields,
                    int *ready)
{
    c2_reply *r = NULL;
    c2_error err = {0};
    c2_client *c = ctl_connect(url);
    if (!c) {
        return EXIT_UNREACHABLE;
    }
    int rc = c2_client_call(c, type, body, len, nfields, ctl_timeout_ms, &r, &err);
    if (rc) {
        if (rc == C2_ETIMEDOUT || rc == C2_EIO) {
            fprintf(stderr, "chroma2ctl: no answer from %s within %u ms (is chroma2d running?)\n", url,
                    ctl_timeout_ms);
        } else {
            fprintf(stderr, "chroma2ctl: %s: %s\n", type, err.msg);
        }
        return ctl_exit_for(rc);
    }
    size_t n;
    const void *data = c2_reply_data(r, &n);
    c2p_msg m;
    c2p_err perr = {0};
    if (c2p_parse_reply(&m, data, n, &perr)) {
        fprintf(stderr, "chroma2ctl: unreadable reply: %s\n", perr.msg);
        c2p_msg_free(&m);
        c2_reply_free(r);
        return EXIT_ERROR;
    }
    ctl_print(&m);
    if (ready) {
        c2p_map map;
        int v = 0;
        *ready = c2p_map_open(&map, m.root, "status", &perr) == 0 && c2p_get_bool(&map, "ready", 1, &v, &perr) == 0 && v;
    }
    c2p_msg_free(&m);
    c2_reply_free(r);
    return EXIT_OK;
}

/* A request body of one unsigned field. */
static int ctl_call_u64(const char *url, const char *type, const char *key, uint64_t v)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_kv_u64(&pk, key, v);
    int rc = ctl_call(url, type, sb.data, sb.size, 1, NULL);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int ctl_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        return -1;
    }
    *out = v;
    return 0;
}

static int ctl_ping(const char *url, int argc, char **argv)
{
    double n = 1;
    if (argc > 1 || (argc == 1 && ctl_number(argv[0], 1, 1e6, &n))) {
        return ctl_usage_error("ping: COUNT must be a number from 1 to 1000000 (got '%s')", argc ? argv[0] : "");
    }
    for (int i = 0; i < (int)n; i++) {
        double s;
        c2_error err = {0};
        c2_client *c = ctl_connect(url);
        int rc = c ? c2_client_ping(c, ctl_timeout_ms, &s, &err) : C2_EIO;
        if (rc) {
            fprintf(stderr, "chroma2ctl: ping %s: %s\n", url, rc == C2_ETIMEDOUT ? "no answer" : err.msg);
            return ctl_exit_for(rc);
        }
        if (ctl_json) {
            printf("{\"schema\": 1, \"ping\": %d, \"seconds\": %.9f}\n", i + 1, s);
        } else {
            printf("pong from %s: %.1f us\n", url, 1e6 * s);
        }
    }
    return EXIT_OK;
}

/* geometry load FILE [NAME] [--replace]: the file's bytes become the
 * request's "geometry" value as they are; the daemon checks them. */
static int ctl_load(const char *url, int argc, char **argv)
{
    const char *file = argv[0], *name = NULL;
    int replace = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--replace")) {
            replace = 1;
        } else {
            name = argv[i];
        }
    }
    char base[C2P_NAME_MAX + 1];
    if (!name) { /* the file's base name without its extension */
        const char *b = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        snprintf(base, sizeof base, "%s", b);
        char *dot = strrchr(base, '.');
        if (dot && dot != base) {
            *dot = 0;
        }
        name = base;
    }
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "chroma2ctl: cannot read %s\n", file);
        return EXIT_ERROR;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_kv_str(&pk, "name", name);
    c2p_pack_kv_bool(&pk, "replace", replace);
    c2p_pack_key(&pk, "geometry");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        msgpack_sbuffer_write(&sb, buf, n);
    }
    fclose(f);
    int rc = ctl_call(url, "load_geometry", sb.data, sb.size, 3, NULL);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int ctl_submit(const char *url, int argc, char **argv)
{
    double photons = 100000, wl = 420, seed = 1;
    for (int i = 0; i < argc; i += 2) {
        double *dst = !strcmp(argv[i], "--photons") ? &photons : !strcmp(argv[i], "--wavelength") ? &wl
                      : !strcmp(argv[i], "--seed")  ? &seed : NULL;
        if (!dst || i + 1 >= argc || ctl_number(argv[i + 1], 1, 4e9, dst)) {
            return ctl_usage_error("submit: bad option '%s'", argv[i]);
        }
    }
    c2_source src = {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, (float)wl, -1, (uint32_t)photons, 0};
    c2_event ev = {.id = 1, .seed = (uint64_t)seed, .sources = &src, .nsources = 1,
                   .want = C2_RETURN_HITS | C2_RETURN_CHANNELS};
    c2_future *f;
    c2_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    c2_client *c = ctl_connect(url);
    if (!c) {
        return EXIT_UNREACHABLE;
    }
    int rc = c2_client_submit(c, &ev, NULL, &f, &err);
    if (!rc) {
        rc = c2_future_wait(f, 0);
    }
    const c2_event_result *r = NULL;
    if (!rc) {
        rc = c2_future_result(f, &r, &err);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc) {
        fprintf(stderr, "chroma2ctl: submit: %s\n", err.msg);
        c2_future_free(f);
        return ctl_exit_for(rc);
    }
    if (ctl_json) {
        printf("{\"schema\": 1, \"ticket\": %" PRIu64 ", \"photons\": %u, \"hits\": %u, \"channels\": %u, "
               "\"steps\": %" PRIu64 ", \"seconds\": %.6f}\n",
               c2_future_ticket(f), r->ntotal, r->nhits, r->nchannels, r->steps, dt);
    } else {
        printf("ticket %" PRIu64 ": %u photons, %u hits on %u channels, %.2f steps/photon, %.3f s round trip\n",
               c2_future_ticket(f), r->ntotal, r->nhits, r->nchannels, r->ntotal ? (double)r->steps / r->ntotal : 0.0,
               dt);
    }
    c2_future_free(f);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--json")) {
            ctl_json = 1;
        } else if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            double t;
            if (ctl_number(argv[++i], 1, 86400000, &t)) {
                return ctl_usage_error("--timeout: '%s' is not a number of milliseconds", argv[i]);
            }
            ctl_timeout_ms = (uint32_t)t;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(ctl_usage, stdout);
            return EXIT_OK;
        } else {
            return ctl_usage_error("unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc) {
        return ctl_usage_error("no command%s", "");
    }
    if (!url) {
        url = getenv("CHROMA2_URL");
        url = url && url[0] ? url : C2_DEFAULT_URL;
    }
    const char *cmd = argv[i++];
    int nargs = argc - i;
    char **args = argv + i;
    int rc;
    if (!strcmp(cmd, "status") && nargs == 0) {
        int ready = 0;
        rc = ctl_call(url, "status", NULL, 0, 0, &ready);
        rc = rc == EXIT_OK && !ready ? EXIT_NOT_READY : rc;
    } else if (!strcmp(cmd, "ping")) {
        rc = ctl_ping(url, nargs, args);
    } else if (!strcmp(cmd, "stats") && (nargs == 0 || !strcmp(args[0], "--watch"))) {
        double every = 1;
        if (nargs > 2 || (nargs == 2 && ctl_number(args[1], 0.1, 3600, &every))) {
            rc = ctl_usage_error("stats --watch: '%s' is not a number of seconds", nargs == 2 ? args[1] : "");
        } else {
            do {
                rc = ctl_call(url, "stats", NULL, 0, 0, NULL);
                if (nargs && rc == EXIT_OK) {
                    printf("\n");
                    fflush(stdout);
                    struct timespec pause = {(time_t)every, (long)((every - (double)(time_t)every) * 1e9)};
                    nanosleep(&pause, NULL);
                }
            } while (nargs && rc == EXIT_OK);
        }
    } else if (!strcmp(cmd, "geometry") && nargs == 1 && !strcmp(args[0], "list")) {
        rc = ctl_call(url, "list_geometries", NULL, 0, 0, NULL);
    } else if (!strcmp(cmd, "geometry") && nargs >= 2 && nargs <= 4 && !strcmp(args[0], "load")) {
        rc = ctl_load(url, nargs - 1, args + 1);
    } else if (!strcmp(cmd, "geometry") && nargs == 2 && !strcmp(args[0], "unload")) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        c2p_pack_kv_str(&pk, "name", args[1]);
        rc = ctl_call(url, "unload_geometry", sb.data, sb.size, 1, NULL);
        msgpack_sbuffer_destroy(&sb);
    } else if (!strcmp(cmd, "events") && nargs == 0) {
        rc = ctl_call(url, "events", NULL, 0, 0, NULL);
    } else if (!strcmp(cmd, "cancel") && nargs == 1) {
        double t;
        rc = ctl_number(args[0], 1, 1.8e19, &t) ? ctl_usage_error("cancel: '%s' is not a ticket", args[0])
                                                : ctl_call_u64(url, "cancel", "ticket", (uint64_t)t);
    } else if (!strcmp(cmd, "drain") && nargs == 0) {
        rc = ctl_call(url, "drain", NULL, 0, 0, NULL);
    } else if (!strcmp(cmd, "shutdown") && nargs <= 1) {
        double t = 0;
        if (nargs && ctl_number(args[0], 0, 4e9, &t)) {
            rc = ctl_usage_error("shutdown: '%s' is not a number of milliseconds", args[0]);
        } else {
            rc = nargs ? ctl_call_u64(url, "shutdown", "timeout_ms", (uint64_t)t)
                       : ctl_call(url, "shutdown", NULL, 0, 0, NULL);
        }
    } else if (!strcmp(cmd, "submit")) {
        rc = ctl_submit(url, nargs, args);
    } else {
        rc = ctl_usage_error("unknown command or arguments: '%s'", cmd);
    }
    c2_client_close(ctl_client);
    return rc;
}

/*
 * config.c: chroma2d's settings. One table names each setting, its type,
 * bounds and default; it serves the command line (--name VALUE), the
 * configuration file (name = VALUE) and the usage text, so the three can
 * never disagree. Later sources win: defaults, then the file, then the
 * command line. Strings read from the file are owned by the config.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

typedef enum {
    CFG_UINT,
    CFG_OCTAL,
    CFG_MIB,
    CFG_BACKEND,
    CFG_LEVEL,
    CFG_FLAG,
    CFG_LISTEN,
    CFG_PATH,
    CFG_HTTP,
    CFG_UIDS
} cfg_type;

typedef struct cfg_opt {
    const char *name;
    cfg_type type;
    uint64_t lo, hi;
    size_t off; /* in c2d_config */
    const char *def, *help;
} cfg_opt;

#define CFG_AT(field) offsetof(c2d_config, field)

static const cfg_opt cfg_table[] = {
    {"listen", CFG_LISTEN, 0, 0, 0, "$CHROMA2_URL or " C2D_DEFAULT_URL, "listen on URL (repeatable; ipc:// or tcp://)"},
    {"backend", CFG_BACKEND, 0, 0, CFG_AT(backend), "auto", "cpu, cuda or auto (cuda when a GPU is usable)"},
    {"threads", CFG_UINT, 0, 1024, CFG_AT(threads), "0", "CPU engine threads; 0: every CPU the daemon may use (its affinity, a cpuset)"},
    {"max-queued", CFG_UINT, 1, 1u << 20, CFG_AT(max_queued), "1024", "events accepted and not finished"},
    {"max-per-client", CFG_UINT, 1, 1u << 20, CFG_AT(max_per_client), "256", "of those, from one connection"},
    {"max-message-mb", CFG_MIB, 1, 1u << 16, CFG_AT(max_message_bytes), "256", "largest request accepted"},
    {"max-photons", CFG_UINT, 1, 4294967295u, CFG_AT(max_photons), "2147483648", "photons in one event"},
    {"batch-photons", CFG_UINT, 1, 1ull << 40, CFG_AT(batch_photons), "1000000",
     "merge queued events into batches of about N photons"},
    {"pool-mb", CFG_MIB, 1, 1u << 24, CFG_AT(pool_bytes), "4096", "memory accepted events may hold"},
    {"max-per-client-mb", CFG_MIB, 1, 1u << 24, CFG_AT(max_client_bytes), "1024",
     "of that, held by one connection's events (its first event may take more, up to pool-mb)"},
    {"gpu-pool-mb", CFG_MIB, 0, 1u << 24, CFG_AT(gpu_pool_bytes), "0",
     "GPU memory for photons in flight; 0: a quarter of the free memory, at most 4096"},
    {"socket-mode", CFG_OCTAL, 0, 0777, CFG_AT(socket_mode), "0660", "permissions of ipc sockets"},
    {"allow-uids", CFG_UIDS, 0, 0, CFG_AT(allow_uids), "any",
     "comma-separated peer uids allowed on ipc (the daemon's own user always is; tcp peers are refused)"},
    {"drain-timeout", CFG_UINT, 0, 86400, CFG_AT(drain_timeout_s), "60",
     "seconds to finish accepted events on SIGTERM"},
    {"log-level", CFG_LEVEL, 0, 0, CFG_AT(log_level), "info", "error, warn, info or debug"},
    {"trace", CFG_FLAG, 0, 1, CFG_AT(trace), "off", "log each event's lifecycle"},
    {"detector-pmts", CFG_UINT, 1, 1000000, CFG_AT(detector_pmts), "5000", "PMTs of the built-in detector"},
    {"metrics", CFG_HTTP, 0, 0, CFG_AT(metrics_url), "off",
     "serve /metrics (Prometheus), /healthz and /readyz on an http://HOST:PORT URL"},
    {"tls-cert-key", CFG_PATH, 0, 0, CFG_AT(tls_cert_key), "none",
     "PEM file with the certificate and private key of tls+tcp:// listeners"},
    {"tls-client-ca", CFG_PATH, 0, 0, CFG_AT(tls_client_ca), "none",
     "PEM file of the certificates that sign clients' certificates: tls+tcp:// clients must present one"},
    {"config", CFG_PATH, 0, 0, CFG_AT(config_path), "none", "read settings from FILE first"},
};
#define CFG_N (sizeof cfg_table / sizeof cfg_table[0])

static const cfg_opt *cfg_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CFG_N; i++) {
        if (strlen(cfg_table[i].name) == len && strncmp(cfg_table[i].name, name, len) == 0) {
            return &cfg_table[i];
        }
    }
    return NULL;
}

/* Sets one option from text; where names the source for messages. */
static int cfg_set(c2d_config *c, const cfg_opt *o, const char *v, const char *where, char *err, size_t cap)
{
    char *at = (char *)c + o->off;
    char *end;
    unsigned long long x = 0;
    switch (o->type) {
    case CFG_UINT:
    case CFG_OCTAL:
    case CFG_MIB:
        errno = 0;
        x = strtoull(v, &end, o->type == CFG_OCTAL ? 8 : 10);
        if (errno || end == v || *end || x < o->lo || x > o->hi || v[0] == '-') {
            snprintf(err, cap, "%s: %s: '%s' is not a%s number in [%llu, %llu]", where, o->name, v,
                     o->type == CFG_OCTAL ? "n octal" : "", (unsigned long long)o->lo, (unsigned long long)o->hi);
            return -1;
        }
        if (o->off == CFG_AT(drain_timeout_s)) {
            c->drain_timeout_s = (double)x;
        } else if (o->type == CFG_MIB) {
            *(uint64_t *)at = (uint64_t)x << 20;
        } else if (o->off == CFG_AT(max_photons) || o->off == CFG_AT(batch_photons)) {
            *(uint64_t *)at = x;
        } else {
            *(uint32_t *)at = (uint32_t)x;
        }
        return 0;
    case CFG_BACKEND:
        if (strcmp(v, "cpu") && strcmp(v, "cuda") && strcmp(v, "auto")) {
            snprintf(err, cap, "%s: backend: '%s' is not cpu, cuda or auto", where, v);
            return -1;
        }
        c->backend = !strcmp(v, "cpu") ? "cpu" : !strcmp(v, "cuda") ? "cuda" : "auto";
        return 0;
    case CFG_LEVEL: {
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++) {
            if (!strcmp(v, levels[i])) {
                c->log_level = i;
                return 0;
            }
        }
        snprintf(err, cap, "%s: log-level: '%s' is not error, warn, info or debug", where, v);
        return -1;
    }
    case CFG_FLAG:
        if (strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "true") && strcmp(v, "false")) {
            snprintf(err, cap, "%s: %s: '%s' is not on or off", where, o->name, v);
            return -1;
        }
        *(int *)at = !strcmp(v, "on") || !strcmp(v, "true");
        return 0;
    case CFG_LISTEN:
        if (c->nlisten == C2D_MAX_LISTEN) {
            snprintf(err, cap, "%s: at most %d listen URLs", where, C2D_MAX_LISTEN);
            return -1;
        }
        if (strncmp(v, "ipc://", 6) && strncmp(v, "tcp://", 6) && strncmp(v, "tls+tcp://", 10)) {
            snprintf(err, cap, "%s: listen: '%s' is not an ipc://, tcp:// or tls+tcp:// URL", where, v);
            return -1;
        }
        c->listen[c->nlisten++] = v;
        return 0;
    case CFG_PATH:
        if (!v[0]) {
            snprintf(err, cap, "%s: %s: needs a file name", where, o->name);
            return -1;
        }
        *(const char **)at = v;
        return 0;
    case CFG_UIDS: {
        c->nallow_uids = 0;
        if (strcmp(v, "any") == 0) {
            return 0;
        }
        for (const char *t = v; *t;) {
            errno = 0;
            x = strtoull(t, &end, 10);
            if (errno || end == t || !isdigit((unsigned char)*t) || x > 0xffffffffu || (*end && *end != ',') ||
                c->nallow_uids == C2D_MAX_UIDS) {
                snprintf(err, cap, "%s: allow-uids: '%s' is not 'any' or up to %d comma-separated uids", where, v,
                         C2D_MAX_UIDS);
                c->nallow_uids = 0;
                return -1;
            }
            c->allow_uids[c->nallow_uids++] = (uint32_t)x;
            t = *end ? end + 1 : end;
        }
        return 0;
    }
    case CFG_HTTP:
        if (strcmp(v, "off") == 0) {
            *(const char **)at = NULL;
            return 0;
        }
        if (strncmp(v, "http://", 7) != 0) {
            snprintf(err, cap, "%s: %s: '%s' is not an http://HOST:PORT URL or off", where, o->name, v);
            return -1;
        }
        *(const char **)at = v;
        return 0;
    }
    return -1;
}

void c2d_config_defaults(c2d_config *c)
{
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CFG_N; i++) {
        if (cfg_table[i].type != CFG_LISTEN && cfg_table[i].type != CFG_PATH && cfg_table[i].type != CFG_HTTP) {
            cfg_set(c, &cfg_table[i], cfg_table[i].type == CFG_FLAG ? "off" : cfg_table[i].def, "default", err,
                    sizeof err);
        }
    }
}

int c2d_config_file(c2d_config *c, const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "cannot read configuration %s: %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    c->nlisten = 0; /* the file's listen lines replace earlier ones */
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *s = line, *hash = strchr(line, '#');
        if (hash) {
            *hash = 0;
        }
        while (isspace((unsigned char)*s)) {
            s++;
        }
        size_t n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1])) {
            s[--n] = 0;
        }
        if (!n) {
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, cap, "%s: expected 'name = value'", where);
            rc = -1;
            break;
        }
        size_t klen = (size_t)(eq - s);
        while (klen && isspace((unsigned char)s[klen - 1])) {
            klen--;
        }
        char *v = eq + 1;
        while (isspace((unsigned char)*v)) {
            v++;
        }
        const cfg_opt *o = cfg_find(s, klen);
        if (!o || o->type == CFG_PATH) {
            snprintf(err, cap, "%s: unknown setting '%.*s'", where, (int)klen, s);
            rc = -1;
            break;
        }
        char *copy = strdup(v);
        if (!copy || c->nowned == C2D_MAX_OWNED) {
            free(copy);
            snprintf(err, cap, "%s: too many settings", where);
            rc = -1;
            break;
        }
        c->owned[c->nowned++] = copy;
        rc = cfg_set(c, o, copy, where, err, cap);
    }
    fclose(f);
    return rc;
}

int c2d_config_args(c2d_config *c, int argc, char **argv, char *err, size_t cap)
{
    /* --config first, so that the command line overrides the file */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            c->config_path = argv[i + 1];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            c->config_path = argv[i] + 9;
        }
    }
    if (c->config_path && c2d_config_file(c, c->config_path, err, cap)) {
        return -1;
    }
    int cli_listen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, cap, "unexpected argument '%s'", a);
            return -1;
        }
        const char *eq = strchr(a, '='); /* --name=value or --name value */
        const cfg_opt *o = cfg_find(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
        if (!o) {
            snprintf(err, cap, "unknown option '%s'", a);
            return -1;
        }
        if (o->type == CFG_FLAG && !eq) {
            *(int *)((char *)c + o->off) = 1;
            continue;
        }
        if (!eq && i + 1 >= argc) {
            snprintf(err, cap, "%s needs a value", a);
            return -1;
        }
        if (o->type == CFG_LISTEN && !cli_listen++) {
            c->nlisten = 0; /* command-line URLs replace the file's */
        }
        if (cfg_set(c, o, eq ? eq + 1 : argv[++i], a, err, cap)) {
            return -1;
        }
    }
    if (c->nlisten == 0) {
        const char *env = getenv("CHROMA2_URL");
        c->listen[c->nlisten++] = env && env[0] ? env : C2D_DEFAULT_URL;
    }
    for (int i = 0; i < c->nlisten; i++) {
        if (strncmp(c->listen[i], "tls+tcp://", 10) == 0 && !c->tls_cert_key) {
            snprintf(err, cap, "listen %s: tls+tcp:// needs tls-cert-key (a PEM file with certificate and key)",
                     c->listen[i]);
            return -1;
        }
    }
    return 0;
}

void c2d_config_usage(FILE *f)
{
    fprintf(f, "usage: chroma2d [--name VALUE ...]\n\n"
               "Settings, also accepted as 'name = value' lines in the --config file:\n");
    for (size_t i = 0; i < CFG_N; i++) {
        fprintf(f, "  --%-16s %s (default %s)\n", cfg_table[i].name, cfg_table[i].help, cfg_table[i].def);
    }
    fprintf(f, "  --help             this text\n");
}

void c2d_config_free(c2d_config *c)
{
    for (int i = 0; i < c->nowned; i++) {
        free(c->owned[i]);
    }
    c->nowned = 0;
}

/* test_proto.c: the codec against proto/PROTOCOL.md: round trips of
 * submit_event and its result, error replies, and hostile input (every
 * truncation and byte corruption of a valid message, huge counts, deep
 * nesting, wrong types, unknown keys, arrays that disagree). */
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/engine_int.h"
#include "../proto/nng_packer.h"
#include "../proto/proto.h"
#include "check.h"
#include "util.h"

/* Parses buf as a request and, for submit_event, decodes it. */
static int decode_request(const void *buf, size_t len, c2p_err *err)
{
    c2p_msg m;
    int rc = c2p_parse_request(&m, buf, len, err);
    if (!rc && m.type == C2P_T_SUBMIT_EVENT) {
        c2p_event ev;
        rc = c2p_decode_event(&m, 1u << 24, &ev, err);
        if (!rc) {
            c2p_event_free(&ev);
        }
    }
    c2p_msg_free(&m);
    return rc;
}

static void sample_event(c2p_event *ev)
{
    memset(ev, 0, sizeof *ev);
    strcpy(ev->geometry, "default");
    strcpy(ev->digest, "ab01");
    ev->event_id = 0x123456789abcull;
    ev->seed = 99;
    ev->want = C2_RETURN_HITS | C2_RETURN_CHANNELS;
    ev->max_steps = 500;
    ev->deadline_ms = 2500;
    ev->priority = -3;
    const float pos[3] = {1, 2, 3}, dir[3] = {0, 0.6f, 0.8f};
    c2_photon *ph = c2t_beam(5, pos, dir, 410.0f); /* freed by the caller */
    for (int i = 0; i < 5; i++) {
        ph[i].time = 0.5f * i;
        ph[i].weight = 1.0f + i;
        ph[i].pol[0] = 1.0f;
    }
    ev->photons = ph;
    ev->nphotons = 5;
    ev->sources = calloc(2, sizeof *ev->sources);
    ev->nsources = 2;
    ev->sources[0] = (c2_source){{4, 5, 6}, 1.5f, {0, 0, 1}, 0.5f, 420.0f, -1, 1000, 0};
    ev->sources[1] = (c2_source){{-4, 5, 6}, 0.0f, {1, 0, 0}, -1.0f, 0.0f, 0, 77, 0};
    ev->spectra = calloc(3, sizeof(float));
    ev->spectra[1] = 0.25f;
    ev->spectra[2] = 1.0f;
    ev->nspectra = 1;
    ev->spectra_nwl = 3;
}

static msgpack_sbuffer pack_sample(const c2p_event *ev)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_event(&pk, 42, ev);
    return sb;
}

TEST(proto_event_round_trip)
{
    c2p_event a, b;
    sample_event(&a);
    msgpack_sbuffer sb = pack_sample(&a);
    c2p_msg m;
    c2p_err err = {0};
    CHECK(c2p_parse_request(&m, sb.data, sb.size, &err) == 0, "%s", err.msg);
    CHECK(m.id == 42 && m.type == C2P_T_SUBMIT_EVENT && m.v == 1, "envelope: id %llu type %d",
          (unsigned long long)m.id, m.type);
    CHECK(c2p_decode_event(&m, 1u << 20, &b, &err) == 0, "%s", err.msg);
    CHECK(strcmp(b.geometry, "default") == 0 && strcmp(b.digest, "ab01") == 0 && b.event_id == a.event_id &&
              b.seed == 99 && b.want == a.want && b.max_steps == 500 && b.deadline_ms == 2500 && b.priority == -3,
          "options differ after the round trip");
    CHECK(b.nphotons == 5 && b.nsources == 2 && b.nspectra == 1 && b.spectra_nwl == 3, "counts differ");
    /* the photons arrive as columns pointing into the message; made into
     * records, the kinematic fields are the sent ones (bookkeeping is the
     * engine's) */
    CHECK(!b.photons && b.cols.pos && b.cols.weight && (const char *)b.cols.pos >= sb.data &&
              (const char *)b.cols.pos < sb.data + sb.size,
          "photon columns do not point into the message");
    c2_event view = c2p_event_view(&b);
    c2_photon got[5];
    c2i_event_photons(&view, 0, 5, got);
    for (int i = 0; i < 5; i++) {
        CHECK(memcmp(&a.photons[i], &got[i], offsetof(c2_photon, flags)) == 0, "photon %d differs", i);
    }
    CHECK(memcmp(a.sources, b.sources, 2 * sizeof(c2_source)) == 0, "sources differ");
    CHECK(memcmp(a.spectra, b.spectra, 3 * sizeof(float)) == 0, "spectra differ");
    printf("  submit_event of %zu bytes decodes to the same event\n", sb.size);
    /* the same photons given as columns (the Python client's way) pack to
     * the same bytes */
    float pos[15], dir[15], wl[5], pol[15], t[5], w[5];
    for (int i = 0; i < 5; i++) {
        memcpy(pos + 3 * i, a.photons[i].pos, 12);
        memcpy(dir + 3 * i, a.photons[i].dir, 12);
        memcpy(pol + 3 * i, a.photons[i].pol, 12);
        wl[i] = a.photons[i].wavelength;
        t[i] = a.photons[i].time;
        w[i] = a.photons[i].weight;
    }
    c2p_event ac = a;
    ac.cols = (c2_photon_columns){pos, dir, wl, pol, t, w};
    ac.photons = NULL;
    msgpack_sbuffer sc = pack_sample(&ac);
    CHECK(sc.size == sb.size && memcmp(sc.data, sb.data, sb.size) == 0, "columns pack differently from records");
    msgpack_sbuffer_destroy(&sc);
    /* the photon limit applies to explicit and source photons together */
    CHECK(c2p_decode_event(&m, 1000, &b, &err) == C2P_TOO_LARGE && strstr(err.msg, "1082 photons"), "%s", err.msg);
    c2p_msg_free(&m);
    c2p_event_free(&b);
    free((void *)a.photons);
    c2p_event_free(&a);
    msgpack_sbuffer_destroy(&sb);
}

TEST(proto_result_round_trip)
{
    /* a real result from the engine, with hits, end states and channels */
    c2_geometry *g = c2t_scattering_detector();
    c2_source src = {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 400.0f, -1, 3000, 0};
    c2_event ev = c2t_event(5, 6, NULL, 0, &src, 1, C2_RETURN_HITS | C2_RETURN_PHOTONS | C2_RETURN_CHANNELS);
    c2_event_result r = c2t_run(g, &ev, 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_result(&pk, 7, 1234, 5, &r, ev.want, 1.5, 2.5);
    c2p_msg m;
    c2p_result out;
    c2p_err err = {0};
    CHECK(c2p_parse_reply(&m, sb.data, sb.size, &err) == 0 && m.ok && m.id == 7, "%s", err.msg);
    CHECK(c2p_decode_result(&m, &out, &err) == 0, "%s", err.msg);
    CHECK(out.ticket == 1234 && out.event_id == 5 && out.queued_ms == 1.5 && out.run_ms == 2.5, "header differs");
    CHECK(out.r.nhits == r.nhits && memcmp(out.r.hits, r.hits, r.nhits * sizeof(c2_hit)) == 0, "hits differ");
    CHECK(out.r.nchannels == r.nchannels &&
              memcmp(out.r.channels, r.channels, r.nchannels * sizeof(c2_channel_summary)) == 0,
          "channels differ");
    CHECK(out.r.nphotons == r.nphotons, "end state counts differ");
    for (uint32_t i = 0; i < r.nphotons; i++) {
        const c2_photon *a = &r.photons[i], *b = &out.r.photons[i];
        CHECK(memcmp(a, b, offsetof(c2_photon, flags)) == 0 && a->flags == b->flags && a->channel == b->channel &&
                  a->last_hit_triangle == b->last_hit_triangle && a->steps == b->steps && b->id == i,
              "end state %u differs", i);
    }
    CHECK(out.r.ntotal == 3000 && out.r.steps == r.steps && out.r.nreemit == r.nreemit, "counters differ");
    printf("  result of %u hits, %u end states, %u channels: %zu bytes, decodes to the same\n", r.nhits, r.nphotons,
           r.nchannels, sb.size);
    c2p_result_free(&out);
    c2p_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
    /* an event without hits or end states still carries every column */
    c2_event_result none = {.ntotal = 1};
    msgpack_sbuffer_init(&sb);
    c2p_pack_result(&pk, 8, 1, 2, &none, ev.want, 0, 0);
    CHECK(c2p_parse_reply(&m, sb.data, sb.size, &err) == 0 && c2p_decode_result(&m, &out, &err) == 0, "%s",
          err.msg);
    CHECK(out.r.nhits == 0 && out.r.nphotons == 0 && out.r.nchannels == 0, "an empty result decodes non-empty");
    c2p_result_free(&out);
    c2p_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
    c2_event_result_free(&r);
    c2_geometry_free(g);
}

TEST(proto_events_round_trip)
{
    /* submit_events: three events in one message decode to the three
     * events; one bad event refuses the whole message, naming it; the
     * reply's results array holds results and per-event errors */
    c2p_event ev[3];
    for (int i = 0; i < 3; i++) {
        sample_event(&ev[i]);
        ev[i].event_id = 100 + (uint64_t)i;
        ev[i].nsources = (uint32_t)i; /* 0, 1, 2 sources */
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_events(&pk, 9, ev, 3);
    c2p_msg m;
    c2p_err err = {0};
    c2p_event *got;
    uint32_t n;
    CHECK(c2p_parse_request(&m, sb.data, sb.size, &err) == 0 && m.type == C2P_T_SUBMIT_EVENTS, "%s", err.msg);
    CHECK(c2p_decode_events(&m, 1u << 20, &got, &n, &err) == 0 && n == 3, "%s", err.msg);
    for (uint32_t i = 0; i < 3; i++) {
        c2_event view = c2p_event_view(&got[i]);
        c2_photon p[5];
        c2i_event_photons(&view, 0, 5, p);
        CHECK(got[i].event_id == 100 + i && got[i].nsources == i && got[i].nphotons == 5 && got[i].priority == -3 &&
                  (i == 0 || !memcmp(got[i].sources, ev[i].sources, i * sizeof(c2_source))) &&
                  !memcmp(&p[4], &ev[i].photons[4], offsetof(c2_photon, flags)),
              "event %u differs after the round trip", i);
    }
    c2p_events_free(got, n);
    /* the photon limit applies to each event, and names it */
    CHECK(c2p_decode_events(&m, 1000, &got, &n, &err) == C2P_TOO_LARGE && strstr(err.msg, "events[1]") && !got &&
              n == 0,
          "%s", err.msg);
    printf("  submit_events of 3 events, %zu bytes, round trip; refused whole: %s\n", sb.size, err.msg);
    c2p_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
    for (int i = 0; i < 3; i++) {
        free((void *)ev[i].photons);
        c2p_event_free(&ev[i]);
    }
    /* no events, or more than C2P_MAX_GROUP */
    for (uint32_t count = 0; count <= C2P_MAX_GROUP + 1; count += C2P_MAX_GROUP + 1) {
        msgpack_sbuffer_init(&sb);
        c2p_pack_request_head(&pk, 10, C2P_T_SUBMIT_EVENTS, 1);
        c2p_pack_key(&pk, "events");
        msgpack_pack_array(&pk, count);
        for (uint32_t i = 0; i < count; i++) {
            msgpack_pack_map(&pk, 0);
        }
        CHECK(c2p_parse_request(&m, sb.data, sb.size, &err) == 0, "%s", err.msg);
        CHECK(c2p_decode_events(&m, 1000, &got, &n, &err) == C2P_BAD_REQUEST && strstr(err.msg, "1 to 1024"),
              "%u events: %s", count, err.msg);
        c2p_msg_free(&m);
        msgpack_sbuffer_destroy(&sb);
    }
    /* a reply: a result, an error, a result */
    c2_hit hits[2] = {{7, 3, 1.5f, 420.0f, {1, 2, 3}, 0}, {9, 4, 2.5f, 430.0f, {4, 5, 6}, 0}};
    c2_event_result r = {.hits = hits, .nhits = 2, .ntotal = 10, .steps = 40};
    msgpack_sbuffer_init(&sb);
    c2p_pack_reply_head(&pk, 9, C2P_T_SUBMIT_EVENTS, 1);
    c2p_pack_key(&pk, "results");
    msgpack_pack_array(&pk, 3);
    c2p_pack_result_member(&pk, 1, 100, &r, C2_RETURN_HITS, 0.5, 1.5);
    c2p_pack_error_member(&pk, C2P_DIGEST_MISMATCH, "geometry 'default' has digest ab, not cd");
    c2p_pack_result_member(&pk, 3, 102, &r, C2_RETURN_HITS, 0.5, 1.5);
    c2p_result res[4]; /* room for the mismatched count below */
    c2p_err errs[4];
    CHECK(c2p_parse_reply(&m, sb.data, sb.size, &err) == 0 && m.ok, "%s", err.msg);
    CHECK(c2p_decode_results(&m, 3, res, errs, &err) == 0, "%s", err.msg);
    CHECK(!errs[0].code && res[0].ticket == 1 && res[0].r.nhits == 2 && !memcmp(res[0].r.hits, hits, sizeof hits) &&
              errs[1].code == C2P_DIGEST_MISMATCH && strstr(errs[1].msg, "not cd") && !errs[2].code &&
              res[2].event_id == 102,
          "results differ after the round trip");
    CHECK(c2p_decode_results(&m, 4, res, errs, &err) == C2P_BAD_REQUEST, "a reply of 3 results read as 4");
    for (int i = 0; i < 3; i++) {
        c2p_result_free(&res[i]);
    }
    c2p_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
}

TEST(proto_error_reply)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    c2p_pack_error(&pk, 9, C2P_T_PING, C2P_BUSY, "queue full (1024 events)");
    c2p_msg m;
    c2p_err err = {0};
    CHECK(c2p_parse_reply(&m, sb.data, sb.size, &err) == 0, "%s", err.msg);
    CHECK(!m.ok && m.id == 9 && m.type == C2P_T_PING && m.error.code == C2P_BUSY &&
              strcmp(m.error.msg, "queue full (1024 events)") == 0,
          "error reply read back as ok %d code %d '%s'", m.ok, m.error.code, m.error.msg);
    CHECK(strcmp(c2p_error_name(C2P_DIGEST_MISMATCH), "DIGEST_MISMATCH") == 0, "error names");
    c2p_msg_free(&m);
    msgpack_sbuffer_destroy(&sb);
}

/* A request from raw bytes must fail with code and a message holding needle. */
static void expect_refused(const char *what, const void *buf, size_t len, int code, const char *needle)
{
    c2p_err err = {0};
    int rc = decode_request(buf, len, &err);
    printf("  %-34s -> %s: %s\n", what, c2p_error_name(rc), err.msg);
    CHECK(rc == code && strstr(err.msg, needle), "%s: expected %s with '%s'", what, c2p_error_name(code), needle);
}

/* Packs a request whose body is written by fn. */
typedef void (*body_fn)(msgpack_packer *pk);
static msgpack_sbuffer request(uint32_t v, const char *type, uint32_t nbody, body_fn fn)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + nbody);
    c2p_pack_kv_u64(&pk, "v", v);
    c2p_pack_kv_u64(&pk, "id", 5);
    c2p_pack_kv_str(&pk, "type", type);
    if (fn) {
        fn(&pk);
    }
    return sb;
}

static void body_unknown_key(msgpack_packer *pk) { c2p_pack_kv_u64(pk, "seeed", 1); }
static void body_bad_priority(msgpack_packer *pk) { c2p_pack_kv_i64(pk, "priority", 11); }
static void body_bad_want(msgpack_packer *pk)
{
    c2p_pack_key(pk, "want");
    msgpack_pack_array(pk, 1);
    c2p_pack_key(pk, "everything");
}
static void body_short_dir(msgpack_packer *pk)
{
    const float v[6] = {0};
    c2p_pack_key(pk, "photons");
    msgpack_pack_map(pk, 4);
    c2p_pack_kv_u64(pk, "n", 2);
    c2p_pack_kv_bin32(pk, "pos", v, 6, 1, 4);
    c2p_pack_kv_bin32(pk, "dir", v, 5, 1, 4);
    c2p_pack_kv_bin32(pk, "wavelength", v, 2, 1, 4);
}
static void body_seed_string(msgpack_packer *pk) { c2p_pack_kv_str(pk, "seed", "42"); }
static void body_nothing(msgpack_packer *pk) { c2p_pack_kv_u64(pk, "seed", 1); }
static void body_huge_n(msgpack_packer *pk)
{
    c2p_pack_key(pk, "photons");
    msgpack_pack_map(pk, 1);
    c2p_pack_kv_u64(pk, "n", 1u << 23); /* 640 MiB of records if allocated before the bins are checked */
}
static void body_dup_key(msgpack_packer *pk)
{
    c2p_pack_kv_u64(pk, "seed", 1);
    c2p_pack_kv_u64(pk, "seed", 2);
}

TEST(proto_rejects_hostile_input)
{
    /* structure, before msgpack-c allocates anything */
    expect_refused("empty message", "", 0, C2P_MALFORMED, "empty");
    expect_refused("an array, not a map", "\x91\x01", 2, C2P_MALFORMED, "one msgpack map");
    expect_refused("array claiming 2^32-1 elements", "\x81\xa1x\xdd\xff\xff\xff\xff", 8, C2P_MALFORMED,
                   "claims 4294967295 entries");
    expect_refused("map claiming 65535 entries", "\xde\xff\xff", 3, C2P_MALFORMED, "claims 65535 entries");
    expect_refused("bin claiming 4 GiB", "\x81\xa1x\xc6\xff\xff\xff\xff", 8, C2P_MALFORMED, "4294967295 bytes");
    expect_refused("ext type", "\x81\xa1x\xd4\x01\x02", 6, C2P_MALFORMED, "(ext)");
    expect_refused("reserved byte 0xc1", "\x81\xa1x\xc1", 4, C2P_MALFORMED, "0xc1");
    expect_refused("trailing bytes", "\x80\x00", 2, C2P_MALFORMED, "after the message");
    char deep[32];
    size_t k = 0;
    deep[k++] = (char)0x81;
    for (int i = 0; i < 9; i++) {
        deep[k++] = (char)0xa1;
        deep[k++] = 'a';
        deep[k++] = (char)0x81;
    }
    deep[k++] = (char)0xa1;
    deep[k++] = 'a';
    deep[k++] = 0x01;
    expect_refused("nested 10 maps deep", deep, k, C2P_MALFORMED, "deeper than 8");
    char wide[1 + 3 * 70];
    k = 0;
    wide[k++] = (char)0xde;
    wide[k++] = 0;
    wide[k++] = 65;
    for (int i = 0; i < 65; i++) {
        wide[k++] = (char)0xa1;
        wide[k++] = (char)(i & 0x7f);
        wide[k++] = 0x01;
    }
    expect_refused("map of 65 entries", wide, k, C2P_MALFORMED, "at most 64");
    size_t nbig = (1u << 20) + 8;
    char *big = malloc(nbig + 16);
    k = 0;
    big[k++] = (char)0x81; /* {"x": [nil x 2^20 + 1]} */
    big[k++] = (char)0xa1;
    big[k++] = 'x';
    big[k++] = (char)0xdd;
    uint32_t cnt = (1u << 20) + 1;
    big[k++] = (char)(cnt >> 24);
    big[k++] = (char)(cnt >> 16);
    big[k++] = (char)(cnt >> 8);
    big[k++] = (char)cnt;
    memset(big + k, 0xc0, cnt);
    expect_refused("array of 2^20 + 1 nils", big, k + cnt, C2P_MALFORMED, "in all");
    free(big);

    /* envelope and fields */
    struct {
        const char *what;
        uint32_t v;
        const char *type;
        uint32_t n;
        body_fn fn;
        int code;
        const char *needle;
    } cases[] = {
        {"protocol version 2", 2, "ping", 0, NULL, C2P_VERSION, "version 2 is not supported"},
        {"unknown type", 1, "pong", 0, NULL, C2P_UNKNOWN_TYPE, "'pong'"},
        {"misspelt option", 1, "submit_event", 1, body_unknown_key, C2P_BAD_REQUEST, "unknown key 'seeed'"},
        {"priority out of range", 1, "submit_event", 1, body_bad_priority, C2P_BAD_REQUEST, "priority: 11"},
        {"unknown want", 1, "submit_event", 1, body_bad_want, C2P_BAD_REQUEST, "want[0]"},
        {"dir shorter than n", 1, "submit_event", 1, body_short_dir, C2P_BAD_REQUEST, "photons.dir: 20 bytes"},
        {"seed as a string", 1, "submit_event", 1, body_seed_string, C2P_BAD_REQUEST, "seed: expected an unsigned"},
        {"no photons at all", 1, "submit_event", 1, body_nothing, C2P_BAD_REQUEST, "no photons"},
        {"duplicate key", 1, "submit_event", 2, body_dup_key, C2P_BAD_REQUEST, "'seed' appears twice"},
        {"n of 2^23 and no arrays", 1, "submit_event", 1, body_huge_n, C2P_BAD_REQUEST, "'pos' is required"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb = request(cases[i].v, cases[i].type, cases[i].n, cases[i].fn);
        expect_refused(cases[i].what, sb.data, sb.size, cases[i].code, cases[i].needle);
        msgpack_sbuffer_destroy(&sb);
    }
}

TEST(proto_every_truncation_and_corruption)
{
    /* every prefix of a valid message is refused; every single-byte change
     * is refused or decodes, and never crashes (run under ASan in CI) */
    c2p_event ev;
    sample_event(&ev);
    msgpack_sbuffer sb = pack_sample(&ev);
    c2p_err err;
    CHECK(decode_request(sb.data, sb.size, &err) == 0, "%s", err.msg);
    for (size_t len = 0; len < sb.size; len++) {
        int rc = decode_request(sb.data, len, &err);
        CHECK(rc != 0, "a prefix of %zu of %zu bytes was accepted", len, sb.size);
    }
    char *copy = malloc(sb.size);
    const uint8_t values[] = {0x00, 0x7f, 0x80, 0xc1, 0xcf, 0xdd, 0xdf, 0xff};
    long refused = 0, accepted = 0;
    for (size_t pos = 0; pos < sb.size; pos++) {
        for (size_t k = 0; k < sizeof values; k++) {
            memcpy(copy, sb.data, sb.size);
            copy[pos] = (char)values[k];
            if (decode_request(copy, sb.size, &err)) {
                refused++;
            } else {
                accepted++;
            }
        }
    }
    printf("  %zu truncations refused; %ld corruptions refused, %ld still valid\n", sb.size, refused, accepted);
    free(copy);
    msgpack_sbuffer_destroy(&sb);
    free((void *)ev.photons);
    c2p_event_free(&ev);
}

/* A write into an NNG message that fails (no memory: here a size no
 * allocation can have) marks the message, and every later write fails
 * too, so a reply is never sent with a hole in it. */
TEST(proto_nng_packer_failure)
{
    nng_msg *m = NULL;
    CHECK(nng_msg_alloc(&m, 0) == 0, "nng_msg_alloc");
    msgpack_packer pk;
    c2p_nng_packer_init(&pk, m);
    CHECK(msgpack_pack_map(&pk, 1) == 0 && !c2p_nng_failed(m), "a small write failed");
    size_t before = nng_msg_len(m);
    static const char byte = 0;
    CHECK(msgpack_pack_bin_body(&pk, &byte, SIZE_MAX / 4) != 0, "a write of SIZE_MAX / 4 bytes succeeded");
    CHECK(c2p_nng_failed(m), "the failed write left no mark");
    CHECK(msgpack_pack_nil(&pk) != 0 && nng_msg_len(m) == before, "a write after the failure went in");
    printf("  failed write marked; the body stays at %zu bytes\n", before);
    nng_msg_free(m);
}

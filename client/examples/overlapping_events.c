/*
 * overlapping_events.c: submits several events to chroma2d at once, each a
 * point source at a different place, and prints each event's hit count as
 * its result arrives. Build against an installed chroma2:
 *
 *   cc overlapping_events.c $(pkg-config --cflags --libs chroma2-client) -o overlapping_events
 *   ./overlapping_events [URL]
 */
#include <stdio.h>

#include <chroma2/client.h>

#define NEVENTS 5

int main(int argc, char **argv)
{
    c2_client *c;
    c2_error err;
    if (c2_client_open(argc > 1 ? argv[1] : NULL, &c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    c2_source src[NEVENTS];
    c2_future *f[NEVENTS];
    for (int i = 0; i < NEVENTS; i++) { /* all in flight together */
        src[i] = (c2_source){.pos = {1000.0f * i, 0, 0}, .cos_half_angle = -1, .wavelength = 420,
                             .spectrum = -1, .nphotons = 50000 * (i + 1)};
        c2_event ev = {.id = (uint64_t)i, .seed = 42, .sources = &src[i], .nsources = 1, .want = C2_RETURN_HITS};
        if (c2_client_submit(c, &ev, NULL, &f[i], &err)) {
            fprintf(stderr, "event %d: %s\n", i, err.msg);
            return 1;
        }
    }
    int failed = 0;
    for (int i = 0; i < NEVENTS; i++) {
        const c2_event_result *r;
        if (c2_future_wait(f[i], 600000) || c2_future_result(f[i], &r, &err)) {
            fprintf(stderr, "event %d: %s\n", i, c2_future_poll(f[i]) ? err.msg : "timed out");
            failed = 1;
        } else {
            printf("event %d (ticket %llu): %u photons, %u hits\n", i, (unsigned long long)c2_future_ticket(f[i]),
                   r->ntotal, r->nhits);
        }
        c2_future_free(f[i]);
    }
    c2_client_close(c);
    return failed;
}

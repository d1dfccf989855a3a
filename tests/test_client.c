/* test_client.c: c2-test-client, a client process for the daemon tests:
 * connects to URL, submits N events of M photons without waiting for them,
 * then sleeps until killed.
 * Usage: c2-test-client URL N M */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "chroma2/client.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: c2-test-client URL N M\n");
        return 2;
    }
    c2_client *c;
    c2_error err;
    if (c2_client_open(argv[1], &c, &err)) {
        fprintf(stderr, "c2-test-client: %s\n", err.msg);
        return 1;
    }
    int n = atoi(argv[2]);
    c2_source src = {{0, 0, 0}, 0, {0, 0, 1}, -1.0f, 420.0f, -1, (uint32_t)atoi(argv[3]), 0};
    for (int i = 0; i < n; i++) {
        c2_event ev = {.id = (uint64_t)i, .seed = 1, .sources = &src, .nsources = 1, .want = C2_RETURN_HITS};
        c2_future *f;
        if (c2_client_submit(c, &ev, NULL, &f, &err)) {
            fprintf(stderr, "c2-test-client: %s\n", err.msg);
            return 1;
        }
    }
    for (;;) {
        pause();
    }
}

/*
 * digest.c: a geometry's digest, the SHA-256 (mbedTLS, which NNG already
 * brings) of its content stream (c2_geometry_content). Clients pin a
 * geometry by it: submit_event with a digest that differs is refused.
 */
#include <mbedtls/sha256.h>
#include <stdio.h>

#include "daemon.h"

static void digest_write(const void *data, size_t len, void *ctx)
{
    mbedtls_sha256_update(ctx, data, len);
}

void c2d_geometry_digest(c2d_geometry *geom)
{
    mbedtls_sha256_context ctx;
    unsigned char sum[32];
    mbedtls_sha256_init(&ctx);
    mbedtls_sha256_starts(&ctx, 0);
    c2_geometry_content(geom->g, digest_write, &ctx);
    mbedtls_sha256_finish(&ctx, sum);
    mbedtls_sha256_free(&ctx);
    for (int i = 0; i < 32; i++) {
        snprintf(geom->digest + 2 * i, 3, "%02x", sum[i]);
    }
}

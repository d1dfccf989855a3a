/* test_rng.c: Philox4x32-10 against Random123's known answers, and the
 * properties the physics relies on: uniforms in (0, 1], independent streams
 * per (seed, event, photon), resumable at any draw. */
#include <string.h>

#include "../kernels/physics/rng.h"
#include "check.h"

TEST(rng_philox_known_answers)
{
    /* Random123 kat_vectors: philox4x32 10 rounds */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        c2k_philox4x32_10(kat[i], kat[i] + 4, out);
        printf("  vector %d: %08x %08x %08x %08x\n", i, out[0], out[1], out[2], out[3]);
        CHECK(memcmp(out, kat[i] + 6, sizeof out) == 0, "known-answer vector %d differs", i);
    }
}

TEST(rng_uniform_and_streams)
{
    /* mean and variance of 1e6 uniforms, all in (0, 1] */
    c2k_rng r = c2k_rng_init(12345, 7, 99, 0);
    const int n = 1000000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        float u = c2k_uniform(&r);
        CHECK(u > 0.0f && u <= 1.0f, "uniform %g outside (0, 1]", u);
        sum += u;
        sum2 += (double)u * u;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK_SIGMA(mean, 0.5, sqrt(1.0 / 12.0 / n), 5, "mean of uniforms");
    CHECK_NEAR(var, 1.0 / 12.0, 1e-3, "variance of uniforms");

    /* resuming at draw k gives the same numbers as drawing through */
    c2k_rng a = c2k_rng_init(1, 2, 3, 0);
    uint32_t seq[11];
    for (int i = 0; i < 11; i++) {
        seq[i] = c2k_rng_u32(&a);
    }
    for (uint32_t k = 0; k < 11; k++) {
        c2k_rng b = c2k_rng_init(1, 2, 3, k);
        CHECK(c2k_rng_u32(&b) == seq[k], "resuming at draw %u differs", k);
    }

    /* seed, event id (both halves) and photon id each change the stream */
    c2k_rng s0 = c2k_rng_init(1, 2, 3, 0);
    c2k_rng s1 = c2k_rng_init(1ull << 40, 2, 3, 0);
    c2k_rng s2 = c2k_rng_init(1, 2ull << 40, 3, 0);
    c2k_rng s3 = c2k_rng_init(1, 2, 4, 0);
    uint32_t x0 = c2k_rng_u32(&s0);
    CHECK(x0 != c2k_rng_u32(&s1) && x0 != c2k_rng_u32(&s2) && x0 != c2k_rng_u32(&s3),
          "streams of different keys coincide");
}

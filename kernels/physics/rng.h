/*
 * rng.h: Philox4x32-10 (Salmon et al., SC'11), counter-based.
 *
 * A photon's random stream is keyed by the event's seed and addressed by
 * (event id, photon id, draw index): key = seed, counter = (draw / 4, photon
 * id, event id low, event id high), and draw i is word i % 4 of that block.
 * The draw index lives in the photon (c2_photon.draws), so a photon's history
 * is the same on any thread, in any batch, on CPU or GPU, and a reemitted
 * photon carries the stream on where its parent stopped.
 */
#ifndef C2K_RNG_H
#define C2K_RNG_H

#include "vec.h"

C2K_FN uint32_t c2k_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* One Philox4x32-10 block: out = philox(ctr, key). */
C2K_FN void c2k_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = c2k_mulhilo32(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = c2k_mulhilo32(0xCD9E8D57u, c2, &hi1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u; /* key schedule: golden ratio and sqrt(3) - 1 */
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* A photon's stream, held in registers while it is stepped. */
typedef struct c2k_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t block[4];
    uint32_t draws; /* index of the next draw */
} c2k_rng;

C2K_FN void c2k_rng_fill(c2k_rng *r)
{
    r->ctr[0] = r->draws >> 2;
    c2k_philox4x32_10(r->ctr, r->key, r->block);
}

C2K_FN c2k_rng c2k_rng_init(uint64_t seed, uint64_t event_id, uint32_t photon_id, uint32_t draws)
{
    c2k_rng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32);
    r.ctr[1] = photon_id;
    r.ctr[2] = (uint32_t)event_id;
    r.ctr[3] = (uint32_t)(event_id >> 32);
    r.draws = draws;
    c2k_rng_fill(&r);
    return r;
}

C2K_FN uint32_t c2k_rng_u32(c2k_rng *r)
{
    if (r->ctr[0] != (r->draws >> 2)) { /* crossed into the next block */
        c2k_rng_fill(r);
    }
    uint32_t x = r->block[r->draws & 3u];
    r->draws++;
    return x;
}

/* Uniform on (0, 1]: never 0, so -log(u) is finite. 24 bits, exact in float. */
C2K_FN float c2k_uniform(c2k_rng *r)
{
    return (float)((c2k_rng_u32(r) >> 8) + 1u) * (1.0f / 16777216.0f);
}

/* Isotropic unit vector: two draws. */
C2K_FN c2k_vec3 c2k_uniform_sphere(c2k_rng *r)
{
    float z = 2.0f * c2k_uniform(r) - 1.0f;
    float phi = 2.0f * C2K_PI * c2k_uniform(r);
    float s = sqrtf(fmaxf(0.0f, 1.0f - z * z));
    return c2k_v3(s * cosf(phi), s * sinf(phi), z);
}

/* A unit vector perpendicular to unit dir, uniform in angle: one draw. */
C2K_FN c2k_vec3 c2k_random_perpendicular(c2k_rng *r, c2k_vec3 dir)
{
    c2k_vec3 u, v;
    c2k_basis(dir, &u, &v);
    float phi = 2.0f * C2K_PI * c2k_uniform(r);
    return c2k_add(c2k_scale(u, cosf(phi)), c2k_scale(v, sinf(phi)));
}

#endif

/* test_interact.c: the interactions of kernels/physics/interact.h against
 * their analytic distributions: Fresnel reflectance (normal, oblique s and p,
 * Brewster), Snell's law, total internal reflection, Rayleigh's angular and
 * polarisation dependence, Lambert's law, CDF inversion. Fixed seeds;
 * statistical limits in standard deviations. */
#include "../kernels/physics/interact.h"
#include "check.h"

/* Fraction of n photons reflected at a boundary n1 -> n2 hit at angle
 * theta (radians) with polarisation mode: 0 s, 1 p, 2 random. */
static double fresnel_fraction(float n1, float n2, float theta, int mode, int n, uint32_t seed)
{
    c2k_vec3 normal = c2k_v3(0, 0, 1); /* photon comes from +z going down */
    int reflected = 0;
    for (int i = 0; i < n; i++) {
        c2k_rng r = c2k_rng_init(seed, 0, (uint32_t)i, 0);
        c2k_vec3 dir = c2k_v3(sinf(theta), 0, -cosf(theta));
        c2k_vec3 s = c2k_v3(0, 1, 0); /* normal of the plane of incidence (xz) */
        c2k_vec3 p = c2k_normalize(c2k_cross(s, dir));
        c2k_vec3 pol = mode == 0 ? s : mode == 1 ? p : c2k_random_perpendicular(&r, dir);
        reflected += c2k_fresnel(&dir, &pol, normal, n1, n2, &r);
        CHECK(fabsf(c2k_norm(dir) - 1) < 1e-5f && fabsf(c2k_norm(pol) - 1) < 1e-5f &&
                  fabsf(c2k_dot(dir, pol)) < 1e-5f,
              "photon %d: dir and pol not orthonormal after the boundary", i);
    }
    return (double)reflected / n;
}

TEST(interact_fresnel_normal)
{
    const int n = 400000;
    const float n1 = 1.0f, n2 = 1.5f;
    double expect = ((n1 - n2) / (n1 + n2)) * ((n1 - n2) / (n1 + n2)); /* 0.04 */
    double got = fresnel_fraction(n1, n2, 0.0f, 2, n, 1);
    CHECK_SIGMA(got, expect, c2t_binomial_sigma(expect, n), 5, "R at normal incidence 1.0 -> 1.5");
    got = fresnel_fraction(1.33f, 1.5f, 0.0f, 2, n, 2);
    expect = pow((1.33 - 1.5) / (1.33 + 1.5), 2);
    CHECK_SIGMA(got, expect, c2t_binomial_sigma(expect, n), 5, "R at normal incidence 1.33 -> 1.5");
}

TEST(interact_fresnel_oblique)
{
    const int n = 400000;
    const float n1 = 1.0f, n2 = 1.5f, theta = 60.0f * C2K_PI / 180.0f;
    double ci = cos(theta), ct = sqrt(1 - pow(n1 / n2 * sin(theta), 2));
    double rs = pow((n1 * ci - n2 * ct) / (n1 * ci + n2 * ct), 2);
    double rp = pow((n2 * ci - n1 * ct) / (n2 * ci + n1 * ct), 2);
    CHECK_SIGMA(fresnel_fraction(n1, n2, theta, 0, n, 3), rs, c2t_binomial_sigma(rs, n), 5, "Rs at 60 deg");
    CHECK_SIGMA(fresnel_fraction(n1, n2, theta, 1, n, 4), rp, c2t_binomial_sigma(rp, n), 5, "Rp at 60 deg");
    double unpol = 0.5 * (rs + rp);
    CHECK_SIGMA(fresnel_fraction(n1, n2, theta, 2, n, 5), unpol, c2t_binomial_sigma(unpol, n), 5,
                "R unpolarised at 60 deg");
    /* Brewster's angle: p light is not reflected at all */
    float brewster = atanf(n2 / n1);
    CHECK(fresnel_fraction(n1, n2, brewster, 1, n, 6) < 1e-4, "p light reflected at Brewster's angle");

    /* Snell's law and mirror angle, photon by photon */
    for (int i = 0; i < 1000; i++) {
        c2k_rng r = c2k_rng_init(7, 0, (uint32_t)i, 0);
        float th = 0.01f + 1.5f * c2k_uniform(&r);
        c2k_vec3 dir = c2k_v3(sinf(th), 0, -cosf(th)), pol = c2k_random_perpendicular(&r, dir);
        int refl = c2k_fresnel(&dir, &pol, c2k_v3(0, 0, 1), 1.33f, 1.5f, &r);
        float sin_out = sqrtf(dir.x * dir.x + dir.y * dir.y);
        if (refl) {
            CHECK(dir.z > 0 && fabsf(sin_out - sinf(th)) < 2e-5f, "reflection angle differs at %g rad", th);
        } else {
            CHECK(dir.z < 0 && fabsf(1.5f * sin_out - 1.33f * sinf(th)) < 2e-5f, "Snell's law fails at %g rad", th);
        }
    }
}

TEST(interact_total_internal_reflection)
{
    const float n1 = 1.5f, n2 = 1.0f;
    float critical = asinf(n2 / n1);
    printf("  critical angle %.4f rad\n", critical);
    for (int k = 1; k <= 5; k++) {
        float theta = critical + 0.01f * k;
        double f = fresnel_fraction(n1, n2, theta, 2, 20000, 10 + k);
        CHECK(f == 1.0, "only %.6f reflected at %.4f rad, beyond the critical angle", f, theta);
    }
    /* just below it some light gets through */
    double f = fresnel_fraction(n1, n2, critical - 0.05f, 2, 20000, 20);
    CHECK(f < 1.0, "no transmission just below the critical angle");
}

TEST(interact_rayleigh_angular)
{
    /* unpolarised light (random pol): cos(theta) has density 3/8 (1 + c^2) */
    enum { N = 1000000, BINS = 40 };
    long hist[BINS] = {0};
    c2k_vec3 in = c2k_v3(0, 0, 1);
    for (int i = 0; i < N; i++) {
        c2k_rng r = c2k_rng_init(31, 0, (uint32_t)i, 0);
        c2k_vec3 dir = in, pol = c2k_random_perpendicular(&r, dir);
        c2k_rayleigh(&dir, &pol, &r);
        CHECK(fabsf(c2k_dot(dir, pol)) < 1e-5f && fabsf(c2k_norm(pol) - 1) < 1e-5f, "pol not transverse");
        int b = (int)((c2k_dot(dir, in) + 1.0f) * 0.5f * BINS);
        hist[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
    }
    double chi2 = 0;
    for (int b = 0; b < BINS; b++) {
        double c0 = -1 + 2.0 * b / BINS, c1 = -1 + 2.0 * (b + 1) / BINS;
        double p = 3.0 / 8.0 * ((c1 - c0) + (c1 * c1 * c1 - c0 * c0 * c0) / 3.0);
        double e = p * N;
        chi2 += (hist[b] - e) * (hist[b] - e) / e;
    }
    double limit = c2t_chi2_limit(BINS - 1, 5.0);
    printf("  chi2 %.1f for %d bins (limit %.1f at 5 sigma)\n", chi2, BINS, limit);
    CHECK(chi2 < limit, "cos(theta) does not follow 1 + cos^2");
}

TEST(interact_rayleigh_polarisation)
{
    /* fixed pol: the new direction avoids it; c = pol . k has density
     * 3/4 (1 - c^2), so <c^2> = 1/5 (isotropic would give 1/3) */
    const int n = 500000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        c2k_rng r = c2k_rng_init(32, 0, (uint32_t)i, 0);
        c2k_vec3 dir = c2k_v3(0, 0, 1), pol = c2k_v3(1, 0, 0);
        c2k_rayleigh(&dir, &pol, &r);
        double c = dir.x;
        sum += c * c;
        sum2 += c * c * c * c;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK_SIGMA(mean, 0.2, sqrt(var / n), 5, "<(pol . k)^2> after scattering");
}

TEST(interact_diffuse_lambert)
{
    /* cos of the angle to the normal has density 2c on (0, 1]: <c> = 2/3 */
    const int n = 400000;
    double sum = 0;
    c2k_vec3 normal = c2k_normalize(c2k_v3(0.3f, -0.5f, 0.8f));
    for (int i = 0; i < n; i++) {
        c2k_rng r = c2k_rng_init(33, 0, (uint32_t)i, 0);
        c2k_vec3 dir = c2k_scale(normal, -1), pol = c2k_random_perpendicular(&r, dir);
        c2k_reflect_diffuse(&dir, &pol, normal, &r);
        double c = c2k_dot(dir, normal);
        CHECK(c >= 0, "diffuse reflection went through the surface");
        sum += c;
    }
    CHECK_SIGMA(sum / n, 2.0 / 3.0, sqrt(1.0 / 18.0 / n), 5, "<cos> of Lambertian reflection");
}

TEST(interact_sample_cdf)
{
    /* a triangular spectrum on 8 points: each bin gets cdf[i+1] - cdf[i] */
    const float cdf[8] = {0.0f, 0.05f, 0.2f, 0.45f, 0.7f, 0.9f, 1.0f, 1.0f};
    enum { N = 400000 };
    long hist[7] = {0};
    c2k_rng r = c2k_rng_init(40, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        float wl = c2k_sample_cdf(cdf, 8, 400.0f, 10.0f, c2k_uniform(&r));
        CHECK(wl >= 400.0f && wl <= 470.0f, "sampled %g outside the grid", wl);
        int b = (int)((wl - 400.0f) / 10.0f);
        hist[b > 6 ? 6 : b]++;
    }
    for (int b = 0; b < 7; b++) {
        double p = cdf[b + 1] - cdf[b];
        char what[64];
        snprintf(what, sizeof what, "fraction in [%d, %d) nm", 400 + 10 * b, 410 + 10 * b);
        CHECK_SIGMA((double)hist[b] / N, p, p > 0 ? c2t_binomial_sigma(p, N) : 1e-9, 5, what);
    }
}

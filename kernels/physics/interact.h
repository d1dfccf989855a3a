/*
 * interact.h: the interactions, each a pure function of the photon's
 * direction and polarisation, the local normal and optical constants, and
 * the random stream. The step (propagate.h) decides which one happens.
 *
 * Conventions: dir and pol are unit and perpendicular; n is the unit surface
 * normal on the photon's side (dot(dir, n) < 0). Each function draws a fixed
 * number of random numbers, stated on it, so its cost and the streams are
 * easy to reason about (Rayleigh's rejection loop is the one exception).
 */
#ifndef C2K_INTERACT_H
#define C2K_INTERACT_H

#include "geom.h"
#include "rng.h"

/* Mirror reflection about the plane with normal n (any side). Keeps pol
 * perpendicular to dir since the reflection is orthogonal. No draws. */
C2K_FN void c2k_reflect_specular(c2k_vec3 *dir, c2k_vec3 *pol, c2k_vec3 n)
{
    *dir = c2k_normalize(c2k_madd(*dir, -2.0f * c2k_dot(*dir, n), n));
    *pol = c2k_normalize(c2k_madd(*pol, -2.0f * c2k_dot(*pol, n), n));
}

/* Lambertian reflection into the hemisphere of n; random polarisation.
 * Three draws. */
C2K_FN void c2k_reflect_diffuse(c2k_vec3 *dir, c2k_vec3 *pol, c2k_vec3 n, c2k_rng *r)
{
    float u1 = c2k_uniform(r), u2 = c2k_uniform(r);
    float rho = sqrtf(u1), phi = 2.0f * C2K_PI * u2;
    c2k_vec3 a, b;
    c2k_basis(n, &a, &b);
    c2k_vec3 d = c2k_scale(n, sqrtf(fmaxf(0.0f, 1.0f - u1)));
    d = c2k_madd(d, rho * cosf(phi), a);
    d = c2k_madd(d, rho * sinf(phi), b);
    *dir = c2k_normalize(d);
    *pol = c2k_random_perpendicular(r, *dir);
}

/* Fresnel amplitude ratios squared: reflectance for s and p light going from
 * index n1 to n2 with cosines cos_i (incidence) and cos_t (refraction). */
C2K_FN float c2k_fresnel_rs(float n1, float n2, float cos_i, float cos_t)
{
    float a = (n1 * cos_i - n2 * cos_t) / (n1 * cos_i + n2 * cos_t);
    return a * a;
}
C2K_FN float c2k_fresnel_rp(float n1, float n2, float cos_i, float cos_t)
{
    float a = (n2 * cos_i - n1 * cos_t) / (n2 * cos_i + n1 * cos_t);
    return a * a;
}

/* Reflection or refraction at a plain boundary from index n1 into n2. The
 * photon is taken as s-polarised with probability (pol . s)^2, s being the
 * normal of the plane of incidence, else p-polarised; it reflects with that
 * state's reflectance (always beyond the critical angle). The new pol is s,
 * or the p direction of the new ray. Two draws. Returns 1 when reflected. */
C2K_FN int c2k_fresnel(c2k_vec3 *dir, c2k_vec3 *pol, c2k_vec3 n, float n1, float n2, c2k_rng *r)
{
    float u_pol = c2k_uniform(r), u_refl = c2k_uniform(r);
    float cos_i = fminf(1.0f, -c2k_dot(*dir, n));
    c2k_vec3 s = c2k_cross(*dir, n);
    float s_len = c2k_norm(s);
    /* At normal incidence any perpendicular is an s direction: take pol. */
    s = s_len > 1e-6f ? c2k_scale(s, 1.0f / s_len) : *pol;
    float proj = c2k_dot(*pol, s);
    int s_polarised = u_pol <= proj * proj;
    float eta = n1 / n2;
    float sin_t2 = eta * eta * fmaxf(0.0f, 1.0f - cos_i * cos_i);
    int reflect;
    float cos_t = 0.0f;
    if (sin_t2 >= 1.0f) {
        reflect = 1; /* total internal reflection */
    } else {
        cos_t = sqrtf(1.0f - sin_t2);
        float refl = s_polarised ? c2k_fresnel_rs(n1, n2, cos_i, cos_t) : c2k_fresnel_rp(n1, n2, cos_i, cos_t);
        reflect = u_refl <= refl;
    }
    if (reflect) {
        *dir = c2k_normalize(c2k_madd(*dir, 2.0f * cos_i, n));
    } else {
        *dir = c2k_normalize(c2k_madd(c2k_scale(*dir, eta), eta * cos_i - cos_t, n));
    }
    *pol = s_polarised ? s : c2k_normalize(c2k_cross(s, *dir));
    return reflect;
}

/* Rayleigh scattering of linearly polarised light: the new direction k has
 * density proportional to 1 - (pol . k)^2 (a dipole along pol), sampled by
 * rejection from the sphere; the new pol is the old one's component
 * perpendicular to k. Averaged over pol this is 1 + cos^2 of the scattering
 * angle. Three draws a try, 1.5 tries on average; after 64 rejected tries
 * the last candidate stands, so the loop is bounded. */
C2K_FN void c2k_rayleigh(c2k_vec3 *dir, c2k_vec3 *pol, c2k_rng *r)
{
    c2k_vec3 k = *dir;
    float c = 0.0f;
    for (int attempt = 0; attempt < 64; attempt++) {
        k = c2k_uniform_sphere(r);
        c = c2k_dot(*pol, k);
        if (c2k_uniform(r) <= 1.0f - c * c) {
            break;
        }
    }
    c2k_vec3 p = c2k_madd(*pol, -c, k);
    float len = c2k_norm(p);
    *dir = k;
    *pol = len > 1e-6f ? c2k_scale(p, 1.0f / len) : c2k_random_perpendicular(r, k);
}

/* Isotropic reemission: a wavelength from cdf, a direction, a polarisation
 * and a delay exp(tau) added to *time. Five draws. */
C2K_FN void c2k_reemit(const float *cdf, uint32_t nwl, float wl_min, float wl_step, float tau, c2k_vec3 *dir,
                       c2k_vec3 *pol, float *wavelength, float *time, c2k_rng *r)
{
    *wavelength = c2k_sample_cdf(cdf, nwl, wl_min, wl_step, c2k_uniform(r));
    *dir = c2k_uniform_sphere(r);
    *pol = c2k_random_perpendicular(r, *dir);
    float u = c2k_uniform(r);
    *time += tau > 0.0f ? -tau * logf(u) : 0.0f;
}

#endif

/*
 * propagate.h: making photons and stepping them, shared by the CPU engine
 * and the CUDA kernels. An executor (a CPU thread, a GPU warp) loads a
 * photon, calls c2k_step until it is no longer C2K_CONTINUE, and stores it:
 *
 *   c2k_rng r = c2k_photon_rng(seed, event_id, &p);
 *   while ((st = c2k_step(&g, &p, &r, max_steps)) == C2K_CONTINUE) {}
 *   p.draws = r.draws;   // on C2K_SPAWN p is the reemitted photon: queue it
 *
 * A step: find the next triangle; sample absorption and scattering distances
 * in the current medium (the medium is read off the triangle ahead and the
 * side the photon meets it from, as in Chroma); then bulk absorption (maybe
 * reemission), Rayleigh scattering, or arrival at the triangle and its
 * surface model or Fresnel boundary.
 */
#ifndef C2K_PROPAGATE_H
#define C2K_PROPAGATE_H

#include "interact.h"

typedef enum {
    C2K_CONTINUE = 0, /* step again */
    C2K_DONE = 1,     /* finished: flags say how */
    C2K_SPAWN = 2     /* absorbed and reemitted: p holds the new photon, which
                         its caller steps on in the same thread or lane; it
                         keeps the photon id and carries the random stream on */
} c2k_status;

/* The random stream of photon p of an event: keyed by (seed, event id,
 * photon id), resumed at p->draws. */
C2K_FN c2k_rng c2k_photon_rng(uint64_t seed, uint64_t event_id, const c2_photon *p)
{
    return c2k_rng_init(seed, event_id, p->id, p->draws);
}

/* Fills the bookkeeping of a fresh photon; the kinematics are set. */
C2K_FN void c2k_photon_reset(c2_photon *p, uint32_t event, uint32_t id)
{
    p->flags = 0;
    p->last_hit_triangle = -1;
    p->channel = C2_NO_CHANNEL;
    p->id = id;
    p->event = event;
    p->draws = 0;
    p->steps = 0;
    p->reserved = 0;
}

/* Starts a caller-given photon: copies kinematics from in, renormalises
 * the direction and the polarisation (made exactly perpendicular; callers
 * are allowed a little rounding), and picks a random polarisation when
 * in->pol is zero (one draw then, else none). */
C2K_FN void c2k_photon_start(c2_photon *p, const c2_photon *in, uint32_t event, uint32_t id,
                             uint64_t seed, uint64_t event_id)
{
    *p = *in;
    c2k_photon_reset(p, event, id);
    c2k_vec3 dir = c2k_normalize(c2k_load3(in->dir)), pol = c2k_load3(in->pol);
    c2k_store3(p->dir, dir);
    if (c2k_dot(pol, pol) == 0.0f) {
        c2k_rng r = c2k_photon_rng(seed, event_id, p);
        c2k_store3(p->pol, c2k_random_perpendicular(&r, dir));
        p->draws = r.draws;
    } else {
        c2k_store3(p->pol, c2k_normalize(c2k_madd(pol, -c2k_dot(pol, dir), dir)));
    }
}

/* Makes photon id of an event from source s: position and time from the
 * source; direction isotropic or uniform in the cone; wavelength fixed or
 * from spectrum (nwl CDF values, or NULL); random polarisation. */
C2K_FN void c2k_source_photon(c2_photon *p, const c2_source *s, const float *spectrum, const c2k_geom *g,
                              uint32_t event, uint32_t id, uint64_t seed, uint64_t event_id)
{
    c2k_photon_reset(p, event, id);
    c2k_rng r = c2k_photon_rng(seed, event_id, p);
    c2k_vec3 dir;
    if (s->cos_half_angle <= -1.0f) {
        dir = c2k_uniform_sphere(&r);
    } else {
        float cos_t = 1.0f - c2k_uniform(&r) * (1.0f - s->cos_half_angle);
        float sin_t = sqrtf(fmaxf(0.0f, 1.0f - cos_t * cos_t));
        float phi = 2.0f * C2K_PI * c2k_uniform(&r);
        c2k_vec3 axis = c2k_load3(s->dir), u, v;
        c2k_basis(axis, &u, &v);
        dir = c2k_scale(axis, cos_t);
        dir = c2k_madd(dir, sin_t * cosf(phi), u);
        dir = c2k_normalize(c2k_madd(dir, sin_t * sinf(phi), v));
    }
    p->pos[0] = s->pos[0];
    p->pos[1] = s->pos[1];
    p->pos[2] = s->pos[2];
    p->time = s->time;
    c2k_store3(p->dir, dir);
    c2k_store3(p->pol, c2k_random_perpendicular(&r, dir));
    p->wavelength = spectrum ? c2k_sample_cdf(spectrum, g->nwl, g->wl_min, g->wl_step, c2k_uniform(&r))
                             : s->wavelength;
    p->weight = 1.0f;
    p->draws = r.draws;
}

/* What happens at a triangle with a surface; falls through to Fresnel by
 * returning -1. */
C2K_FN int c2k_at_surface(const c2k_geom *g, c2_photon *p, int32_t surface, int32_t channel, c2k_wlpos w,
                          c2k_vec3 *dir, c2k_vec3 *pol, c2k_vec3 n, c2k_rng *r)
{
    float u = c2k_uniform(r);
    if (g->surf_model[surface] == C2_SURFACE_WLS) {
        if (u >= c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_ABSORB), w)) {
            return -1;
        }
        if (c2k_uniform(r) > c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_REEMIT_PROB), w)) {
            p->flags |= C2_SURFACE_ABSORB;
            return C2K_DONE;
        }
        c2k_reemit(c2k_surf_table(g, surface, C2K_SURF_REEMIT_CDF), g->nwl, g->wl_min, g->wl_step,
                   g->surf_tau[surface], dir, pol, &p->wavelength, &p->time, r);
        p->flags |= C2_SURFACE_REEMIT;
        return C2K_SPAWN;
    }
    float edge = c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_DETECT), w);
    if (u < edge) {
        p->flags |= C2_SURFACE_DETECT;
        p->channel = channel;
        return C2K_DONE;
    }
    edge += c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_ABSORB), w);
    if (u < edge) {
        p->flags |= C2_SURFACE_ABSORB;
        return C2K_DONE;
    }
    edge += c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_DIFFUSE), w);
    if (u < edge) {
        c2k_reflect_diffuse(dir, pol, n, r);
        p->flags |= C2_REFLECT_DIFFUSE;
        return C2K_CONTINUE;
    }
    edge += c2k_wl_interp(c2k_surf_table(g, surface, C2K_SURF_SPECULAR), w);
    if (u < edge) {
        c2k_reflect_specular(dir, pol, n);
        p->flags |= C2_REFLECT_SPECULAR;
        return C2K_CONTINUE;
    }
    return -1;
}

C2K_FN c2k_status c2k_step_body(const c2k_geom *g, c2_photon *p, c2k_rng *r)
{
    c2k_vec3 pos = c2k_load3(p->pos), dir = c2k_load3(p->dir), pol = c2k_load3(p->pol);
    float dist;
    int32_t tri = c2k_intersect(g, pos, dir, p->last_hit_triangle, &dist);
    if (tri < 0) {
        p->flags |= C2_NO_HIT;
        return C2K_DONE;
    }
    const c2k_tri_info info = g->tri[tri];
    c2k_vec3 n = c2k_tri_normal(g, tri);
    uint32_t m1 = info.outer, m2 = info.inner;
    if (c2k_dot(dir, n) > 0.0f) { /* leaving the solid */
        m1 = info.inner;
        m2 = info.outer;
        n = c2k_scale(n, -1.0f);
    }
    c2k_wlpos w = c2k_wl_locate(g, p->wavelength);
    float n1 = c2k_wl_interp(c2k_mat_table(g, m1, C2K_MAT_RINDEX), w);
    float d_abs = -c2k_wl_interp(c2k_mat_table(g, m1, C2K_MAT_ABSLEN), w) * logf(c2k_uniform(r));
    float d_scat = -c2k_wl_interp(c2k_mat_table(g, m1, C2K_MAT_SCATLEN), w) * logf(c2k_uniform(r));
    float inv_speed = n1 / C2K_SPEED_OF_LIGHT;

    if (d_abs <= d_scat && d_abs <= dist) {
        p->time += d_abs * inv_speed;
        c2k_store3(p->pos, c2k_madd(pos, d_abs, dir));
        p->last_hit_triangle = -1;
        if (c2k_uniform(r) >= c2k_wl_interp(c2k_mat_table(g, m1, C2K_MAT_REEMIT_PROB), w)) {
            p->flags |= C2_BULK_ABSORB;
            return C2K_DONE;
        }
        c2k_reemit(c2k_mat_table(g, m1, C2K_MAT_REEMIT_CDF), g->nwl, g->wl_min, g->wl_step, g->mat_tau[m1], &dir,
                   &pol, &p->wavelength, &p->time, r);
        p->flags |= C2_BULK_REEMIT;
        c2k_store3(p->dir, dir);
        c2k_store3(p->pol, pol);
        return C2K_SPAWN;
    }
    if (d_scat < d_abs && d_scat <= dist) {
        p->time += d_scat * inv_speed;
        c2k_store3(p->pos, c2k_madd(pos, d_scat, dir));
        p->last_hit_triangle = -1;
        c2k_rayleigh(&dir, &pol, r);
        p->flags |= C2_RAYLEIGH_SCATTER;
        c2k_store3(p->dir, dir);
        c2k_store3(p->pol, pol);
        return C2K_CONTINUE;
    }

    p->time += dist * inv_speed;
    c2k_store3(p->pos, c2k_madd(pos, dist, dir));
    p->last_hit_triangle = tri;
    int st = -1;
    if (info.surface != C2_NO_SURFACE) {
        st = c2k_at_surface(g, p, info.surface, info.channel, w, &dir, &pol, n, r);
    }
    if (st < 0) {
        float n2 = c2k_wl_interp(c2k_mat_table(g, m2, C2K_MAT_RINDEX), w);
        if (!c2k_fresnel(&dir, &pol, n, n1, n2, r) && info.surface != C2_NO_SURFACE) {
            p->flags |= C2_SURFACE_TRANSMIT;
        }
        st = C2K_CONTINUE;
    }
    c2k_store3(p->dir, dir);
    c2k_store3(p->pol, pol);
    return (c2k_status)st;
}

/* One step of photon p with its stream r. Guards: a photon that has taken
 * max_steps steps stops with MAX_STEPS; one whose state is no longer finite
 * stops with NAN_ABORT. Neither can loop for ever. */
C2K_FN c2k_status c2k_step(const c2k_geom *g, c2_photon *p, c2k_rng *r, uint32_t max_steps)
{
    if (p->steps >= max_steps) {
        p->flags |= C2_MAX_STEPS;
        return C2K_DONE;
    }
    p->steps++;
    c2k_status st = c2k_step_body(g, p, r);
    if (!c2k_finite3(c2k_load3(p->pos)) || !c2k_finite3(c2k_load3(p->dir)) || !isfinite(p->time)) {
        p->flags |= C2_NAN_ABORT;
        return C2K_DONE;
    }
    return st;
}

/* ---- a batch: how executors find and run photon id of event e ---- */

/* An event as the executors see it; pointers are host or device memory,
 * whichever the executor runs on. Photon ids: photons[0..nphotons), then
 * each source's photons in order; source_base[s] is the id of source s's
 * first photon (source_base[0] = nphotons, source_base[nsources] = all). */
typedef struct c2k_event {
    uint64_t id, seed;
    uint32_t max_steps, nphotons, nsources;
    uint32_t want; /* C2_RETURN_* bits: what the executor keeps of it */
    const c2_photon *photons;
    const c2_source *sources;
    const uint64_t *source_base;
    const float *spectra; /* CDFs of nwl values */
} c2k_event;

/* The largest i < n with base[i] <= x, for base nondecreasing and
 * base[0] <= x: which event holds a chunk, which source a photon. */
C2K_FN uint32_t c2k_find(const uint64_t *base, uint32_t n, uint64_t x)
{
    uint32_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (base[mid] <= x) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Makes photon id of event ev (index e in its batch). */
C2K_FN void c2k_make_photon(const c2k_geom *g, const c2k_event *ev, uint32_t e, uint32_t id, c2_photon *p)
{
    if (id < ev->nphotons) {
        c2k_photon_start(p, &ev->photons[id], e, id, ev->seed, ev->id);
        return;
    }
    const c2_source *s = &ev->sources[c2k_find(ev->source_base, ev->nsources, id)];
    const float *spectrum = s->spectrum >= 0 ? ev->spectra + (size_t)s->spectrum * g->nwl : NULL;
    c2k_source_photon(p, s, spectrum, g, e, id, ev->seed, ev->id);
}

/* Steps p to the end of its history; returns how many times it was
 * reemitted. The per-thread-loop executor: CPU threads and the GPU's
 * reference kernel. */
C2K_FN uint32_t c2k_run_photon(const c2k_geom *g, const c2k_event *ev, c2_photon *p)
{
    c2k_rng r = c2k_photon_rng(ev->seed, ev->id, p);
    uint32_t spawns = 0;
    c2k_status st;
    while ((st = c2k_step(g, p, &r, ev->max_steps)) != C2K_DONE) {
        spawns += st == C2K_SPAWN;
    }
    p->draws = r.draws;
    return spawns;
}

#endif

/* util.c: see util.h. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/geometry/geometry_int.h"
#include "../kernels/physics/rng.h"
#include "check.h"

c2_geometry *c2t_geometry(void)
{
    c2_error err = {0};
    c2_geometry *g = c2_geometry_new(C2T_WL_MIN, C2T_WL_STEP, C2T_NWL, &err);
    CHECK(g, "%s", err.msg);
    return g;
}

uint32_t c2t_material(c2_geometry *g, float rindex, float abslen, float scatlen)
{
    float n[C2T_NWL], a[C2T_NWL], s[C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) {
        n[i] = rindex;
        a[i] = abslen;
        s[i] = scatlen;
    }
    c2_material_desc d = {0};
    d.refractive_index = n;
    d.absorption_length = a;
    d.scattering_length = s;
    c2_error err = {0};
    uint32_t id = 0;
    CHECK(c2_geometry_add_material(g, &d, &id, &err) == 0, "%s", err.msg);
    return id;
}

uint32_t c2t_surface(c2_geometry *g, float detect, float absorb, float diffuse, float specular)
{
    float t[4][C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) {
        t[0][i] = detect;
        t[1][i] = absorb;
        t[2][i] = diffuse;
        t[3][i] = specular;
    }
    c2_surface_desc d = {0};
    d.detect = t[0];
    d.absorb = t[1];
    d.reflect_diffuse = t[2];
    d.reflect_specular = t[3];
    c2_error err = {0};
    uint32_t id = 0;
    CHECK(c2_geometry_add_surface(g, &d, &id, &err) == 0, "%s", err.msg);
    return id;
}

uint32_t c2t_box(c2_geometry *g, float h, uint32_t inner, uint32_t outer, int32_t surface, int32_t channel)
{
    const float lo[3] = {-h, -h, -h}, hi[3] = {h, h, h};
    c2i_mesh m = {0};
    CHECK(c2i_mesh_box(&m, lo, hi) == 0, "out of memory");
    c2_error err = {0};
    uint32_t mesh = 0, solid = 0;
    CHECK(c2_geometry_add_mesh(g, m.verts, m.nverts, m.tris, m.ntris, &mesh, &err) == 0, "%s", err.msg);
    c2i_mesh_free(&m);
    c2_solid_desc s = {mesh, inner, outer, surface, channel, NULL, NULL};
    CHECK(c2_geometry_add_solid(g, &s, &solid, &err) == 0, "%s", err.msg);
    return solid;
}

void c2t_build(c2_geometry *g)
{
    c2_error err = {0};
    CHECK(c2_geometry_build(g, NULL, &err) == 0, "%s", err.msg);
}

uint32_t c2t_cap(uint32_t n)
{
    const char *small = getenv("C2T_SMALL");
    return small && small[0] == '1' && n > 20000 ? 20000 : n;
}

c2_photon *c2t_beam(uint32_t n, const float pos[3], const float dir[3], float wl)
{
    c2_photon *p = calloc(n, sizeof *p);
    CHECK(p, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        memcpy(p[i].pos, pos, 3 * sizeof(float));
        memcpy(p[i].dir, dir, 3 * sizeof(float));
        p[i].wavelength = wl;
        p[i].weight = 1.0f;
    }
    return p;
}

c2_event c2t_event(uint64_t id, uint64_t seed, const c2_photon *ph, uint32_t nph, const c2_source *src,
                   uint32_t nsrc, uint32_t want)
{
    c2_event ev;
    memset(&ev, 0, sizeof ev);
    ev.id = id;
    ev.seed = seed;
    ev.photons = ph;
    ev.nphotons = nph;
    ev.sources = src;
    ev.nsources = nsrc;
    ev.want = want;
    return ev;
}

c2_event_result c2t_run(const c2_geometry *g, const c2_event *ev, uint32_t nthreads)
{
    c2_event_result r;
    c2_error err = {0};
    CHECK(c2_engine_run(g, ev, 1, &r, nthreads, &err) == 0, "%s", err.msg);
    return r;
}

c2_geometry *c2t_scattering_detector(void)
{
    c2_detector_params p;
    c2_detector_params_default(&p);
    p.npmts = 600;
    p.shell_subdivisions = 3;
    p.scattering_length = 4000.0f;
    c2_error err = {0};
    c2_geometry *g = c2_detector_build(&p, NULL, &err);
    CHECK(g, "%s", err.msg);
    return g;
}

void c2t_fixture_make(c2t_fixture *f)
{
    const float pos[3] = {100, -200, 300}, dir[3] = {0, 0.6f, -0.8f};
    f->ph = c2t_beam(3000, pos, dir, 450.0f);
    for (int i = 0; i < 3000; i += 3) {
        f->ph[i].pol[0] = 1.0f; /* some fixed polarisations, the rest random */
    }
    const c2_source src[4] = {{{0, 0, 0}, 1.0f, {0, 0, 1}, -1.0f, 400.0f, -1, 5000, 0},
                              {{3000, 0, 0}, 2.0f, {1, 0, 0}, 0.5f, 380.0f, -1, 4000, 0},
                              {{0, 0, 0}, 0.0f, {0, 0, 1}, -1.0f, 420.0f, -1, 0, 0},
                              {{-2000, 1000, 0}, 0.0f, {0, 0, 1}, -1.0f, 500.0f, -1, 3000, 0}};
    memcpy(f->src, src, sizeof src);
    const uint32_t all = C2_RETURN_HITS | C2_RETURN_PHOTONS | C2_RETURN_CHANNELS;
    f->ev[0] = c2t_event(1001, 7, f->ph, 3000, f->src, 2, all);
    f->ev[1] = c2t_event(1002, 7, NULL, 0, f->src + 2, 2, all);
    f->ev[2] = c2t_event(1003, 8, f->ph, 1000, f->src, 4, C2_RETURN_HITS);
}

c2_geometry *c2t_scintillator_box(float tau, float cdf[C2T_NWL])
{
    c2_geometry *g = c2t_geometry();
    float n[C2T_NWL], a[C2T_NWL], s[C2T_NWL], prob[C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) {
        float wl = C2T_WL_MIN + C2T_WL_STEP * i;
        n[i] = 1.5f;
        a[i] = 1.0f;
        s[i] = 1e30f;
        prob[i] = wl < 350.0f ? 1.0f : 0.0f;
        float x = fminf(fmaxf((wl - 400.0f) / 200.0f, 0.0f), 1.0f); /* triangular density on [400, 600] */
        cdf[i] = x < 0.5f ? 2 * x * x : 1 - 2 * (1 - x) * (1 - x);
    }
    c2_material_desc md = {"scintillator", n, a, s, prob, cdf, tau};
    c2_error err = {0};
    uint32_t scint;
    CHECK(c2_geometry_add_material(g, &md, &scint, &err) == 0, "%s", err.msg);
    uint32_t black = c2t_material(g, 1.0f, 1e-3f, 1e30f);
    c2t_box(g, 1000.0f, scint, black, (int32_t)c2t_surface(g, 0, 1, 0, 0), 0);
    c2t_build(g);
    return g;
}

c2_geometry *c2t_wls_box(void)
{
    c2_geometry *g = c2t_geometry();
    float absorb[C2T_NWL], reemit[C2T_NWL], cdf[C2T_NWL];
    for (int i = 0; i < C2T_NWL; i++) {
        float wl = C2T_WL_MIN + C2T_WL_STEP * i;
        absorb[i] = wl < 350.0f ? 0.5f : 0.0f;
        reemit[i] = 1.0f;
        cdf[i] = fminf(fmaxf((wl - 400.0f) / 100.0f, 0.0f), 1.0f); /* flat on [400, 500] */
    }
    c2_surface_desc sd = {0};
    sd.name = "wls";
    sd.model = C2_SURFACE_WLS;
    sd.absorb = absorb;
    sd.reemission_prob = reemit;
    sd.reemission_cdf = cdf;
    sd.reemission_tau = 2.0f;
    c2_error err = {0};
    uint32_t wls;
    CHECK(c2_geometry_add_surface(g, &sd, &wls, &err) == 0, "%s", err.msg);
    uint32_t inside = c2t_material(g, 1.0f, 1e30f, 1e30f), black = c2t_material(g, 1.0f, 1e-3f, 1e30f);
    c2t_box(g, 1000.0f, inside, black, (int32_t)wls, C2_NO_CHANNEL);
    c2t_build(g);
    return g;
}

c2_photon *c2t_ball_photons(uint32_t n, float radius)
{
    c2_photon *ph = calloc(n, sizeof *ph);
    CHECK(ph, "out of memory for %u photons", n);
    for (uint32_t i = 0; i < n; i++) {
        c2k_rng r = c2k_rng_init(2026, 0, i, 0);
        float rad = radius * cbrtf(c2k_uniform(&r));
        c2k_store3(ph[i].pos, c2k_scale(c2k_uniform_sphere(&r), rad));
        c2k_store3(ph[i].dir, c2k_uniform_sphere(&r));
        ph[i].wavelength = 400.0f;
        ph[i].weight = 1.0f;
    }
    return ph;
}

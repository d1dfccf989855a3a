/* util.c: see util.h. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/geometry/geometry_int.h"
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

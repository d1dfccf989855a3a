/*
 * detector.c: the built-in parametric detector that the daemon serves by
 * default and every benchmark uses: a water sphere, PMTs on a Fibonacci
 * lattice just inside its wall, a black absorbing shell.
 *
 * Each PMT is a closed hemisphere (c2i_mesh_hemisphere) whose dome, facing
 * the centre, is a photocathode that detects detect_efficiency of the
 * photons reaching it and absorbs the rest; its flat back is black. Channel
 * k is PMT k. Materials: 0 water, 1 glass (inside PMTs), 2 black (outside).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geometry_int.h"

#define DET_WL_MIN 200.0f
#define DET_WL_STEP 5.0f
#define DET_NWL 121 /* 200..800 nm */

void c2_detector_params_default(c2_detector_params *p)
{
    p->radius = 10000.0f;
    p->npmts = 5000;
    p->pmt_radius = 200.0f;
    p->pmt_segments = 20;
    p->pmt_rings = 5; /* 200 triangles a PMT, ~1.02 M in all with the shell */
    p->detect_efficiency = 0.25f;
    p->absorption_length = 30000.0f;
    p->scattering_length = 50000.0f;
    p->shell_subdivisions = 5;
}

static int det_check(const c2_detector_params *p, c2_error *err)
{
    if (!(p->radius > 0.0f && p->radius <= 1e8f)) {
        return c2i_fail(err, C2_ERANGE, "detector: radius %g mm (must be in (0, 1e8])", p->radius);
    }
    if (!(p->pmt_radius > 0.0f && p->pmt_radius < 0.25f * p->radius)) {
        return c2i_fail(err, C2_ERANGE, "detector: pmt_radius %g mm (must be in (0, radius / 4))", p->pmt_radius);
    }
    if (p->npmts < 1 || p->pmt_segments < 3 || p->pmt_rings < 1 || p->pmt_segments > 1024 || p->pmt_rings > 256) {
        return c2i_fail(err, C2_ERANGE, "detector: npmts %u, pmt_segments %u, pmt_rings %u (need >= 1, 3..1024, 1..256)",
                        p->npmts, p->pmt_segments, p->pmt_rings);
    }
    if ((uint64_t)p->npmts * 2 * p->pmt_segments * p->pmt_rings > C2_MAX_TRIANGLES / 2) {
        return c2i_fail(err, C2_ELIMIT, "detector: %u PMTs of %u triangles is too many", p->npmts,
                        2 * p->pmt_segments * p->pmt_rings);
    }
    if (!(p->detect_efficiency >= 0.0f && p->detect_efficiency <= 1.0f)) {
        return c2i_fail(err, C2_ERANGE, "detector: detect_efficiency %g (must be in [0, 1])", p->detect_efficiency);
    }
    if (!(p->absorption_length > 0.0f && p->absorption_length < 1e30f && p->scattering_length > 0.0f &&
          p->scattering_length < 1e30f)) {
        return c2i_fail(err, C2_ERANGE, "detector: absorption_length %g and scattering_length %g (must be > 0)",
                        p->absorption_length, p->scattering_length);
    }
    if (p->shell_subdivisions > 7) {
        return c2i_fail(err, C2_ERANGE, "detector: shell_subdivisions %u (at most 7)", p->shell_subdivisions);
    }
    return 0;
}

/* Unit vector of PMT k of n on the Fibonacci lattice (golden-angle spiral). */
static c2k_vec3 det_lattice(uint32_t k, uint32_t n)
{
    double z = 1.0 - (2.0 * k + 1.0) / n;
    double r = sqrt(1.0 - z * z);
    double phi = (double)k * 3.14159265358979323846 * (3.0 - sqrt(5.0));
    return c2k_v3((float)(r * cos(phi)), (float)(r * sin(phi)), (float)z);
}

/* PMTs overlap when two centres are closer than two radii; lattice points
 * come sorted by z, so only neighbours within 2 radii in z are compared. */
static int det_check_spacing(const c2_detector_params *p, float centre_r, c2_error *err)
{
    float lim = 2.0f * p->pmt_radius;
    for (uint32_t i = 0; i < p->npmts; i++) {
        c2k_vec3 a = c2k_scale(det_lattice(i, p->npmts), centre_r);
        for (uint32_t j = i + 1; j < p->npmts; j++) {
            c2k_vec3 b = c2k_scale(det_lattice(j, p->npmts), centre_r);
            if (a.z - b.z > lim) {
                break;
            }
            if (c2k_norm(c2k_sub(a, b)) < lim) {
                return c2i_fail(err, C2_ERANGE, "detector: PMTs %u and %u overlap (pmt_radius %g mm too large for %u PMTs)",
                                i, j, p->pmt_radius, p->npmts);
            }
        }
    }
    return 0;
}

static int det_materials(c2_geometry *g, const c2_detector_params *p, c2_error *err)
{
    float rindex[3][DET_NWL], abslen[3][DET_NWL], scatlen[3][DET_NWL];
    for (int i = 0; i < DET_NWL; i++) {
        float wl = DET_WL_MIN + DET_WL_STEP * (float)i;
        float x = wl / 400.0f;
        rindex[0][i] = 1.325f + 2880.0f / (wl * wl); /* Cauchy fit: 1.343 at 400 nm, 1.333 at 600 nm */
        abslen[0][i] = p->absorption_length;
        scatlen[0][i] = p->scattering_length * x * x * x * x; /* Rayleigh: lambda^4 */
        rindex[1][i] = 1.5f;
        abslen[1][i] = 1000.0f;
        scatlen[1][i] = 1e30f;
        rindex[2][i] = 1.0f;
        abslen[2][i] = 1e-3f;
        scatlen[2][i] = 1e30f;
    }
    for (int m = 0; m < 3; m++) {
        c2_material_desc d = {0};
        d.refractive_index = rindex[m];
        d.absorption_length = abslen[m];
        d.scattering_length = scatlen[m];
        int rc = c2_geometry_add_material(g, &d, NULL, err);
        if (rc) {
            return rc;
        }
    }
    float detect[DET_NWL], absorb[DET_NWL], black[DET_NWL];
    for (int i = 0; i < DET_NWL; i++) {
        detect[i] = p->detect_efficiency;
        absorb[i] = 1.0f - p->detect_efficiency;
        black[i] = 1.0f;
    }
    c2_surface_desc cathode = {0}, shell = {0};
    cathode.detect = detect;
    cathode.absorb = absorb;
    shell.absorb = black;
    int rc = c2_geometry_add_surface(g, &cathode, NULL, err);
    return rc ? rc : c2_geometry_add_surface(g, &shell, NULL, err);
}

c2_geometry *c2_detector_build(const c2_detector_params *p, c2_build_stats *stats, c2_error *err)
{
    if (det_check(p, err)) {
        return NULL;
    }
    /* Keep each PMT's rim inside the shell's flattest facet: the shell's
     * facets sag at most radius (1 - cos(edge angle)); a base disk's rim
     * rises pmt_radius^2 / (2 radius) above its plane. */
    float edge_angle = 1.1071487f / (float)(1u << p->shell_subdivisions);
    float sag = p->radius * (1.0f - cosf(edge_angle));
    float inset = 2.0f * sag + p->pmt_radius * p->pmt_radius / p->radius + 1.0f;
    float centre_r = p->radius - inset;
    if (det_check_spacing(p, centre_r, err)) {
        return NULL;
    }
    c2_geometry *g = c2_geometry_new(DET_WL_MIN, DET_WL_STEP, DET_NWL, err);
    if (!g) {
        return NULL;
    }
    c2i_mesh shell = {0}, pmt = {0};
    int rc = det_materials(g, p, err);
    if (!rc && (c2i_mesh_icosphere(&shell, p->radius, p->shell_subdivisions) ||
                c2i_mesh_hemisphere(&pmt, p->pmt_radius, p->pmt_segments, p->pmt_rings))) {
        rc = c2i_fail(err, C2_ENOMEM, "detector: out of memory");
    }
    uint32_t shell_mesh = 0, pmt_mesh = 0;
    rc = rc ? rc : c2_geometry_add_mesh(g, shell.verts, shell.nverts, shell.tris, shell.ntris, &shell_mesh, err);
    rc = rc ? rc : c2_geometry_add_mesh(g, pmt.verts, pmt.nverts, pmt.tris, pmt.ntris, &pmt_mesh, err);
    if (!rc) {
        c2_solid_desc s = {shell_mesh, 0, 2, 1, C2_NO_CHANNEL, NULL, NULL};
        rc = c2_geometry_add_solid(g, &s, NULL, err);
    }
    uint32_t dome = pmt.ntris - p->pmt_segments;
    for (uint32_t k = 0; k < p->npmts && !rc; k++) {
        /* local +z -> outward u, so the dome (local -z) faces the centre */
        c2k_vec3 u = det_lattice(k, p->npmts), e1, e2;
        c2k_basis(u, &e1, &e2);
        if (c2k_dot(c2k_cross(e1, e2), u) < 0.0f) {
            c2k_vec3 t = e1;
            e1 = e2;
            e2 = t;
        }
        float rot[9] = {e1.x, e2.x, u.x, e1.y, e2.y, u.y, e1.z, e2.z, u.z};
        float shift[3] = {u.x * centre_r, u.y * centre_r, u.z * centre_r};
        c2_solid_desc s = {pmt_mesh, 1, 0, 0, (int32_t)k, rot, shift};
        uint32_t solid;
        rc = c2_geometry_add_solid(g, &s, &solid, err);
        rc = rc ? rc : c2_geometry_set_triangle_surface(g, solid, dome, p->pmt_segments, 1, C2_NO_CHANNEL, err);
    }
    c2i_mesh_free(&shell);
    c2i_mesh_free(&pmt);
    rc = rc ? rc : c2_geometry_build(g, stats, err);
    if (rc) {
        c2_geometry_free(g);
        return NULL;
    }
    return g;
}

/*
 * geometry.c: building a geometry: validating and storing materials,
 * surfaces, meshes and solids, then flattening the solids into one triangle
 * mesh in BVH order (c2_geometry_build).
 *
 * Every table and vertex is checked when it is added, so a built geometry
 * holds only finite, in-range values and the kernels need no checks. The
 * geometry owns all its arrays; c2_geometry_free releases them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "geometry_int.h"

/* Makes room for need elements of size elem in *p (capacity *cap). */
static int geom_grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) {
        return 0;
    }
    uint32_t n = *cap ? *cap : 8;
    while (n < need) {
        n = n > UINT32_MAX / 2 ? need : n * 2;
    }
    void *q = realloc(*p, (size_t)n * elem);
    if (!q) {
        return -1;
    }
    *p = q;
    *cap = n;
    return 0;
}

c2_geometry *c2_geometry_new(float wl_min, float wl_step, uint32_t nwl, c2_error *err)
{
    if (!isfinite(wl_min) || wl_min <= 0.0f || !isfinite(wl_step) || wl_step <= 0.0f) {
        c2i_fail(err, C2_EINVAL, "wavelength grid: wl_min %g and wl_step %g must be finite and > 0", wl_min,
                 wl_step);
        return NULL;
    }
    if (nwl < 2 || nwl > C2_MAX_WAVELENGTHS) {
        c2i_fail(err, C2_ERANGE, "wavelength grid: %u points (need 2..%u)", nwl, C2_MAX_WAVELENGTHS);
        return NULL;
    }
    c2_geometry *g = calloc(1, sizeof *g);
    if (!g) {
        c2i_fail(err, C2_ENOMEM, "geometry: out of memory");
        return NULL;
    }
    g->wl_min = wl_min;
    g->wl_step = wl_step;
    g->nwl = nwl;
    return g;
}

void c2_geometry_free(c2_geometry *g)
{
    if (!g) {
        return;
    }
    for (uint32_t i = 0; i < g->nmeshes; i++) {
        c2i_mesh_free(&g->meshes[i]);
    }
    for (uint32_t i = 0; i < g->nsolids; i++) {
        free(g->solids[i].tri_surface);
        free(g->solids[i].tri_channel);
    }
    free(g->mat);
    free(g->mat_tau);
    free(g->surf);
    free(g->surf_tau);
    free(g->surf_model);
    free(g->meshes);
    free(g->solids);
    free(g->verts);
    free(g->tri);
    free(g->nodes);
    free(g);
}

/* Copies one table into dst after checking each value lies in [lo, hi]
 * (finite); src NULL means all fill. */
static int geom_table(float *dst, const float *src, uint32_t nwl, float fill, float lo, float hi, const char *what,
                      uint32_t id, const char *name, c2_error *err)
{
    for (uint32_t i = 0; i < nwl; i++) {
        float v = src ? src[i] : fill;
        if (!isfinite(v) || v < lo || v > hi) {
            return c2i_fail(err, C2_ERANGE, "%s %u: %s[%u] is %g (must be finite, in [%g, %g])", what, id, name, i,
                            v, lo, hi);
        }
        dst[i] = v;
    }
    return 0;
}

/* Checks and normalises a reemission CDF when any reemission can happen. */
static int geom_cdf(float *dst, const float *src, const float *prob, uint32_t nwl, const char *what, uint32_t id,
                    c2_error *err)
{
    int needed = 0;
    for (uint32_t i = 0; i < nwl; i++) {
        needed |= prob[i] > 0.0f;
    }
    if (!src) {
        if (needed) {
            return c2i_fail(err, C2_EINVAL, "%s %u: reemission_prob > 0 needs a reemission_cdf", what, id);
        }
        memset(dst, 0, nwl * sizeof *dst);
        dst[nwl - 1] = 1.0f;
        return 0;
    }
    int rc = geom_table(dst, src, nwl, 0.0f, 0.0f, INFINITY, what, id, "reemission_cdf", err);
    if (rc) {
        return rc;
    }
    for (uint32_t i = 1; i < nwl; i++) {
        if (dst[i] < dst[i - 1]) {
            return c2i_fail(err, C2_EINVAL, "%s %u: reemission_cdf decreases at [%u] (%g after %g)", what, id, i,
                            dst[i], dst[i - 1]);
        }
    }
    float last = dst[nwl - 1];
    if (!(last > 0.0f)) {
        return c2i_fail(err, C2_EINVAL, "%s %u: reemission_cdf is all zero", what, id);
    }
    for (uint32_t i = 0; i < nwl; i++) {
        dst[i] /= last;
    }
    dst[nwl - 1] = 1.0f;
    return 0;
}

static int geom_frozen(const c2_geometry *g, c2_error *err)
{
    return g->built ? c2i_fail(err, C2_ESTATE, "geometry: already built, cannot add to it") : 0;
}

int c2_geometry_add_material(c2_geometry *g, const c2_material_desc *m, uint32_t *id, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    if (!m || !m->refractive_index || !m->absorption_length || !m->scattering_length) {
        return c2i_fail(err, C2_EINVAL, "material: refractive_index, absorption_length and scattering_length are "
                                        "required");
    }
    if (g->nmat >= C2_MAX_MATERIALS) {
        return c2i_fail(err, C2_ELIMIT, "material: at most %u materials", C2_MAX_MATERIALS);
    }
    uint32_t k = g->nmat, nwl = g->nwl;
    size_t stride = (size_t)C2K_MAT_NPROP * nwl;
    uint32_t cap = g->cap_mat;
    if (geom_grow((void **)&g->mat_tau, &cap, k + 1, sizeof(float)) ||
        geom_grow((void **)&g->mat, &g->cap_mat, k + 1, stride * sizeof(float))) {
        return c2i_fail(err, C2_ENOMEM, "material: out of memory");
    }
    float *t = g->mat + k * stride;
    if ((rc = geom_table(t + C2K_MAT_RINDEX * nwl, m->refractive_index, nwl, 0, 1e-3f, 1e3f, "material", k,
                         "refractive_index", err)) ||
        (rc = geom_table(t + C2K_MAT_ABSLEN * nwl, m->absorption_length, nwl, 0, 1e-30f, 1e30f, "material", k,
                         "absorption_length", err)) ||
        (rc = geom_table(t + C2K_MAT_SCATLEN * nwl, m->scattering_length, nwl, 0, 1e-30f, 1e30f, "material", k,
                         "scattering_length", err)) ||
        (rc = geom_table(t + C2K_MAT_REEMIT_PROB * nwl, m->reemission_prob, nwl, 0.0f, 0.0f, 1.0f, "material", k,
                         "reemission_prob", err)) ||
        (rc = geom_cdf(t + C2K_MAT_REEMIT_CDF * nwl, m->reemission_cdf, t + C2K_MAT_REEMIT_PROB * nwl, nwl,
                       "material", k, err))) {
        return rc;
    }
    if (!isfinite(m->reemission_tau) || m->reemission_tau < 0.0f) {
        return c2i_fail(err, C2_ERANGE, "material %u: reemission_tau is %g (must be finite, >= 0)", k,
                        m->reemission_tau);
    }
    g->mat_tau[k] = m->reemission_tau;
    g->nmat++;
    if (id) {
        *id = k;
    }
    return 0;
}

int c2_geometry_add_surface(c2_geometry *g, const c2_surface_desc *s, uint32_t *id, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    if (!s || (s->model != C2_SURFACE_DEFAULT && s->model != C2_SURFACE_WLS)) {
        return c2i_fail(err, C2_EINVAL, "surface: model must be C2_SURFACE_DEFAULT or C2_SURFACE_WLS");
    }
    if (g->nsurf >= C2_MAX_SURFACES) {
        return c2i_fail(err, C2_ELIMIT, "surface: at most %u surfaces", C2_MAX_SURFACES);
    }
    uint32_t k = g->nsurf, nwl = g->nwl;
    size_t stride = (size_t)C2K_SURF_NPROP * nwl;
    uint32_t cap1 = g->cap_surf, cap2 = g->cap_surf;
    if (geom_grow((void **)&g->surf_tau, &cap1, k + 1, sizeof(float)) ||
        geom_grow((void **)&g->surf_model, &cap2, k + 1, sizeof(uint32_t)) ||
        geom_grow((void **)&g->surf, &g->cap_surf, k + 1, stride * sizeof(float))) {
        return c2i_fail(err, C2_ENOMEM, "surface: out of memory");
    }
    float *t = g->surf + k * stride;
    if ((rc = geom_table(t + C2K_SURF_DETECT * nwl, s->detect, nwl, 0, 0, 1, "surface", k, "detect", err)) ||
        (rc = geom_table(t + C2K_SURF_ABSORB * nwl, s->absorb, nwl, 0, 0, 1, "surface", k, "absorb", err)) ||
        (rc = geom_table(t + C2K_SURF_DIFFUSE * nwl, s->reflect_diffuse, nwl, 0, 0, 1, "surface", k,
                         "reflect_diffuse", err)) ||
        (rc = geom_table(t + C2K_SURF_SPECULAR * nwl, s->reflect_specular, nwl, 0, 0, 1, "surface", k,
                         "reflect_specular", err)) ||
        (rc = geom_table(t + C2K_SURF_REEMIT_PROB * nwl, s->reemission_prob, nwl, 0, 0, 1, "surface", k,
                         "reemission_prob", err)) ||
        (rc = geom_cdf(t + C2K_SURF_REEMIT_CDF * nwl, s->reemission_cdf, t + C2K_SURF_REEMIT_PROB * nwl, nwl,
                       "surface", k, err))) {
        return rc;
    }
    for (uint32_t i = 0; i < nwl && s->model == C2_SURFACE_DEFAULT; i++) {
        float sum = t[C2K_SURF_DETECT * nwl + i] + t[C2K_SURF_ABSORB * nwl + i] + t[C2K_SURF_DIFFUSE * nwl + i] +
                    t[C2K_SURF_SPECULAR * nwl + i];
        if (sum > 1.0f + 1e-5f) {
            return c2i_fail(err, C2_ERANGE,
                            "surface %u: detect + absorb + reflect_diffuse + reflect_specular at [%u] is %g (> 1)", k,
                            i, sum);
        }
    }
    if (!isfinite(s->reemission_tau) || s->reemission_tau < 0.0f) {
        return c2i_fail(err, C2_ERANGE, "surface %u: reemission_tau is %g (must be finite, >= 0)", k,
                        s->reemission_tau);
    }
    g->surf_tau[k] = s->reemission_tau;
    g->surf_model[k] = (uint32_t)s->model;
    g->nsurf++;
    if (id) {
        *id = k;
    }
    return 0;
}

int c2_geometry_add_mesh(c2_geometry *g, const float *verts, uint32_t nverts, const uint32_t *tris,
                         uint32_t ntris, uint32_t *id, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    uint32_t k = g->nmeshes;
    if (!verts || !tris || nverts < 3 || ntris < 1) {
        return c2i_fail(err, C2_EINVAL, "mesh %u: needs at least 3 vertices and 1 triangle (got %u, %u)", k, nverts,
                        ntris);
    }
    for (uint32_t i = 0; i < 3 * nverts; i++) {
        if (!isfinite(verts[i]) || fabsf(verts[i]) > 1e9f) {
            return c2i_fail(err, C2_ERANGE, "mesh %u: vertex %u has coordinate %g (must be finite, |x| <= 1e9 mm)",
                            k, i / 3, verts[i]);
        }
    }
    for (uint32_t t = 0; t < ntris; t++) {
        const uint32_t *ix = tris + 3 * (size_t)t;
        if (ix[0] >= nverts || ix[1] >= nverts || ix[2] >= nverts) {
            return c2i_fail(err, C2_ERANGE, "mesh %u: triangle %u refers to vertex %u of %u", k, t,
                            ix[0] >= nverts ? ix[0] : ix[1] >= nverts ? ix[1] : ix[2], nverts);
        }
        c2k_vec3 v0 = c2k_load3(verts + 3 * ix[0]), v1 = c2k_load3(verts + 3 * ix[1]),
                 v2 = c2k_load3(verts + 3 * ix[2]);
        c2k_vec3 n = c2k_cross(c2k_sub(v1, v0), c2k_sub(v2, v0));
        if (!(c2k_dot(n, n) > 0.0f)) {
            return c2i_fail(err, C2_EINVAL, "mesh %u: triangle %u has zero area", k, t);
        }
    }
    if (geom_grow((void **)&g->meshes, &g->cap_meshes, k + 1, sizeof *g->meshes)) {
        return c2i_fail(err, C2_ENOMEM, "mesh: out of memory");
    }
    c2i_mesh *m = &g->meshes[k];
    m->verts = malloc((size_t)nverts * 3 * sizeof(float));
    m->tris = malloc((size_t)ntris * 3 * sizeof(uint32_t));
    if (!m->verts || !m->tris) {
        c2i_mesh_free(m);
        return c2i_fail(err, C2_ENOMEM, "mesh %u: out of memory", k);
    }
    memcpy(m->verts, verts, (size_t)nverts * 3 * sizeof(float));
    memcpy(m->tris, tris, (size_t)ntris * 3 * sizeof(uint32_t));
    m->nverts = nverts;
    m->ntris = ntris;
    g->nmeshes++;
    if (id) {
        *id = k;
    }
    return 0;
}

static int geom_check_rotation(const float *r)
{
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            double d = 0.0;
            for (int k = 0; k < 3; k++) {
                d += (double)r[3 * i + k] * r[3 * j + k];
            }
            if (!isfinite(d) || fabs(d - (i == j)) > 1e-4) {
                return -1;
            }
        }
    }
    double det = (double)r[0] * (r[4] * r[8] - r[5] * r[7]) - (double)r[1] * (r[3] * r[8] - r[5] * r[6]) +
                 (double)r[2] * (r[3] * r[7] - r[4] * r[6]);
    return det > 0.0 ? 0 : -1;
}

int c2_geometry_add_solid(c2_geometry *g, const c2_solid_desc *s, uint32_t *id, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    uint32_t k = g->nsolids;
    if (!s || s->mesh >= g->nmeshes) {
        return c2i_fail(err, C2_EINVAL, "solid %u: mesh %u does not exist (%u meshes)", k, s ? s->mesh : 0,
                        g->nmeshes);
    }
    if (s->inner_material >= g->nmat || s->outer_material >= g->nmat) {
        return c2i_fail(err, C2_EINVAL, "solid %u: material %u does not exist (%u materials)", k,
                        s->inner_material >= g->nmat ? s->inner_material : s->outer_material, g->nmat);
    }
    if (s->surface != C2_NO_SURFACE && (s->surface < 0 || (uint32_t)s->surface >= g->nsurf)) {
        return c2i_fail(err, C2_EINVAL, "solid %u: surface %d does not exist (%u surfaces)", k, s->surface, g->nsurf);
    }
    if (s->channel < C2_NO_CHANNEL) {
        return c2i_fail(err, C2_ERANGE, "solid %u: channel %d (must be >= 0, or -1 for none)", k, s->channel);
    }
    if (s->rot && geom_check_rotation(s->rot)) {
        return c2i_fail(err, C2_EINVAL, "solid %u: rot is not a rotation matrix", k);
    }
    for (int i = 0; s->shift && i < 3; i++) {
        if (!isfinite(s->shift[i]) || fabsf(s->shift[i]) > 1e9f) {
            return c2i_fail(err, C2_ERANGE, "solid %u: shift[%d] is %g (must be finite, |x| <= 1e9 mm)", k, i,
                            s->shift[i]);
        }
    }
    uint64_t total = g->total_tris + g->meshes[s->mesh].ntris;
    if (total > C2_MAX_TRIANGLES) {
        return c2i_fail(err, C2_ELIMIT, "solid %u: geometry would have %llu triangles (limit %u)", k,
                        (unsigned long long)total, C2_MAX_TRIANGLES);
    }
    if (geom_grow((void **)&g->solids, &g->cap_solids, k + 1, sizeof *g->solids)) {
        return c2i_fail(err, C2_ENOMEM, "solid: out of memory");
    }
    c2i_solid *d = &g->solids[k];
    memset(d, 0, sizeof *d);
    d->mesh = s->mesh;
    d->inner = s->inner_material;
    d->outer = s->outer_material;
    d->surface = s->surface;
    d->channel = s->channel;
    for (int i = 0; i < 9; i++) {
        d->rot[i] = s->rot ? s->rot[i] : (i % 4 == 0);
    }
    for (int i = 0; i < 3; i++) {
        d->shift[i] = s->shift ? s->shift[i] : 0.0;
    }
    g->total_tris = total;
    g->nsolids++;
    if (id) {
        *id = k;
    }
    return 0;
}

int c2_geometry_set_triangle_surface(c2_geometry *g, uint32_t solid, uint32_t first, uint32_t count,
                                     int32_t surface, int32_t channel, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    if (solid >= g->nsolids) {
        return c2i_fail(err, C2_EINVAL, "solid %u does not exist (%u solids)", solid, g->nsolids);
    }
    c2i_solid *s = &g->solids[solid];
    uint32_t n = g->meshes[s->mesh].ntris;
    if (first > n || count > n - first) {
        return c2i_fail(err, C2_ERANGE, "solid %u: triangles [%u, %u) outside its %u triangles", solid, first,
                        first + count, n);
    }
    if (surface != C2_NO_SURFACE && (surface < 0 || (uint32_t)surface >= g->nsurf)) {
        return c2i_fail(err, C2_EINVAL, "solid %u: surface %d does not exist (%u surfaces)", solid, surface,
                        g->nsurf);
    }
    if (channel < C2_NO_CHANNEL) {
        return c2i_fail(err, C2_ERANGE, "solid %u: channel %d (must be >= 0, or -1 for none)", solid, channel);
    }
    if (!s->tri_surface) {
        s->tri_surface = malloc((size_t)n * sizeof(int32_t));
        s->tri_channel = malloc((size_t)n * sizeof(int32_t));
        if (!s->tri_surface || !s->tri_channel) {
            free(s->tri_surface);
            free(s->tri_channel);
            s->tri_surface = s->tri_channel = NULL;
            return c2i_fail(err, C2_ENOMEM, "solid %u: out of memory", solid);
        }
        for (uint32_t i = 0; i < n; i++) {
            s->tri_surface[i] = s->surface;
            s->tri_channel[i] = s->channel;
        }
    }
    for (uint32_t i = first; i < first + count; i++) {
        s->tri_surface[i] = surface;
        s->tri_channel[i] = channel;
    }
    return 0;
}

int c2_geometry_build(c2_geometry *g, c2_build_stats *stats, c2_error *err)
{
    int rc = geom_frozen(g, err);
    if (rc) {
        return rc;
    }
    if (g->total_tris == 0) {
        return c2i_fail(err, C2_EINVAL, "geometry: no solids to build");
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint32_t n = (uint32_t)g->total_tris;
    float *verts = malloc((size_t)n * 9 * sizeof(float));
    c2k_tri_info *info = malloc((size_t)n * sizeof *info);
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    g->verts = malloc((size_t)n * 9 * sizeof(float));
    g->tri = malloc((size_t)n * sizeof *g->tri);
    if (!verts || !info || !perm || !g->verts || !g->tri) {
        rc = c2i_fail(err, C2_ENOMEM, "geometry: out of memory for %u triangles", n);
        goto out;
    }
    /* Flatten: place each solid's triangles (double precision transform). */
    uint32_t t = 0;
    int32_t max_channel = -1;
    for (uint32_t s = 0; s < g->nsolids; s++) {
        const c2i_solid *so = &g->solids[s];
        const c2i_mesh *m = &g->meshes[so->mesh];
        for (uint32_t i = 0; i < m->ntris; i++, t++) {
            for (int c = 0; c < 3; c++) {
                const float *v = m->verts + 3 * (size_t)m->tris[3 * (size_t)i + c];
                for (int r = 0; r < 3; r++) {
                    verts[9 * (size_t)t + 3 * c + r] = (float)(so->rot[3 * r] * v[0] + so->rot[3 * r + 1] * v[1] +
                                                               so->rot[3 * r + 2] * v[2] + so->shift[r]);
                }
            }
            info[t].inner = (uint16_t)so->inner;
            info[t].outer = (uint16_t)so->outer;
            info[t].surface = so->tri_surface ? so->tri_surface[i] : so->surface;
            info[t].channel = so->tri_channel ? so->tri_channel[i] : so->channel;
            info[t].solid = s;
            if (info[t].channel > max_channel) {
                max_channel = info[t].channel;
            }
        }
    }
    c2_build_stats st;
    memset(&st, 0, sizeof st);
    rc = c2i_bvh_build(verts, n, &g->nodes, &g->nnodes, perm, &st, err);
    if (rc) {
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        memcpy(g->verts + 9 * (size_t)i, verts + 9 * (size_t)perm[i], 9 * sizeof(float));
        g->tri[i] = info[perm[i]];
    }
    g->ntri = n;
    g->nchannels = (uint32_t)(max_channel + 1);
    g->built = 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    st.triangles = n;
    st.nodes = g->nnodes;
    st.bytes = (uint64_t)n * (9 * sizeof(float) + sizeof(c2k_tri_info)) + (uint64_t)g->nnodes * sizeof(c2k_node);
    st.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    st.channels = g->nchannels;
    if (stats) {
        *stats = st;
    }
out:
    if (rc) {
        free(g->verts);
        free(g->tri);
        g->verts = NULL;
        g->tri = NULL;
    }
    free(verts);
    free(info);
    free(perm);
    return rc;
}

c2k_geom c2i_geometry_view(const c2_geometry *g)
{
    c2k_geom v;
    memset(&v, 0, sizeof v);
    v.wl_min = g->wl_min;
    v.wl_step = g->wl_step;
    v.nwl = g->nwl;
    v.nmaterials = g->nmat;
    v.nsurfaces = g->nsurf;
    v.ntriangles = g->ntri;
    v.nnodes = g->nnodes;
    v.mat = g->mat;
    v.mat_tau = g->mat_tau;
    v.surf = g->surf;
    v.surf_model = g->surf_model;
    v.surf_tau = g->surf_tau;
    v.verts = g->verts;
    v.tri = g->tri;
    v.nodes = g->nodes;
    return v;
}

uint32_t c2_geometry_nwl(const c2_geometry *g) { return g->nwl; }
float c2_geometry_wl_min(const c2_geometry *g) { return g->wl_min; }
float c2_geometry_wl_step(const c2_geometry *g) { return g->wl_step; }
uint32_t c2_geometry_ntriangles(const c2_geometry *g) { return g->ntri; }
uint32_t c2_geometry_nchannels(const c2_geometry *g) { return g->nchannels; }

int c2_geometry_triangle(const c2_geometry *g, uint32_t t, float out[9])
{
    if (!g->built || t >= g->ntri) {
        return C2_ERANGE;
    }
    memcpy(out, g->verts + 9 * (size_t)t, 9 * sizeof(float));
    return 0;
}

void c2_geometry_content(const c2_geometry *g, void (*write)(const void *, size_t, void *), void *ctx)
{
    static const char tag[8] = "c2geom1";
    const size_t nwl = g->nwl;
    write(tag, sizeof tag, ctx);
    write(&g->wl_min, sizeof g->wl_min, ctx);
    write(&g->wl_step, sizeof g->wl_step, ctx);
    write(&g->nwl, sizeof g->nwl, ctx);
    write(&g->nmat, sizeof g->nmat, ctx);
    write(g->mat, (size_t)g->nmat * C2K_MAT_NPROP * nwl * sizeof(float), ctx);
    write(g->mat_tau, (size_t)g->nmat * sizeof(float), ctx);
    write(&g->nsurf, sizeof g->nsurf, ctx);
    write(g->surf, (size_t)g->nsurf * C2K_SURF_NPROP * nwl * sizeof(float), ctx);
    write(g->surf_model, (size_t)g->nsurf * sizeof(uint32_t), ctx);
    write(g->surf_tau, (size_t)g->nsurf * sizeof(float), ctx);
    write(&g->nmeshes, sizeof g->nmeshes, ctx);
    for (uint32_t i = 0; i < g->nmeshes; i++) {
        const c2i_mesh *m = &g->meshes[i];
        write(&m->nverts, sizeof m->nverts, ctx);
        write(m->verts, (size_t)m->nverts * 3 * sizeof(float), ctx);
        write(&m->ntris, sizeof m->ntris, ctx);
        write(m->tris, (size_t)m->ntris * 3 * sizeof(uint32_t), ctx);
    }
    write(&g->nsolids, sizeof g->nsolids, ctx);
    for (uint32_t i = 0; i < g->nsolids; i++) {
        const c2i_solid *so = &g->solids[i];
        const uint32_t ids[5] = {so->mesh, so->inner, so->outer, (uint32_t)so->surface, (uint32_t)so->channel};
        const uint32_t over = so->tri_surface != NULL;
        write(ids, sizeof ids, ctx);
        write(so->rot, sizeof so->rot, ctx);
        write(so->shift, sizeof so->shift, ctx);
        write(&over, sizeof over, ctx);
        if (over) {
            size_t n = g->meshes[so->mesh].ntris;
            write(so->tri_surface, n * sizeof(int32_t), ctx);
            write(so->tri_channel, n * sizeof(int32_t), ctx);
        }
    }
}

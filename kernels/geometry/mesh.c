/*
 * mesh.c: triangle meshes of the simple convex solids the built-in detector
 * and the tests use. Each generator lays out vertices and triangles, then
 * mesh_orient turns every triangle's normal away from an interior point,
 * which is right for convex solids and keeps the generators free of winding
 * bookkeeping.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geometry_int.h"

void c2i_mesh_free(c2i_mesh *m)
{
    free(m->verts);
    free(m->tris);
    memset(m, 0, sizeof *m);
}

static int mesh_alloc(c2i_mesh *m, uint32_t nverts, uint32_t ntris)
{
    m->verts = malloc((size_t)nverts * 3 * sizeof(float));
    m->tris = malloc((size_t)ntris * 3 * sizeof(uint32_t));
    m->nverts = nverts;
    m->ntris = ntris;
    if (!m->verts || !m->tris) {
        c2i_mesh_free(m);
        return C2_ENOMEM;
    }
    return 0;
}

static void mesh_orient(c2i_mesh *m, c2k_vec3 inside)
{
    for (uint32_t t = 0; t < m->ntris; t++) {
        uint32_t *ix = m->tris + 3 * (size_t)t;
        c2k_vec3 v0 = c2k_load3(m->verts + 3 * ix[0]), v1 = c2k_load3(m->verts + 3 * ix[1]),
                 v2 = c2k_load3(m->verts + 3 * ix[2]);
        c2k_vec3 n = c2k_cross(c2k_sub(v1, v0), c2k_sub(v2, v0));
        c2k_vec3 c = c2k_scale(c2k_add(v0, c2k_add(v1, v2)), 1.0f / 3.0f);
        if (c2k_dot(n, c2k_sub(c, inside)) < 0.0f) {
            uint32_t tmp = ix[1];
            ix[1] = ix[2];
            ix[2] = tmp;
        }
    }
}

int c2i_mesh_box(c2i_mesh *m, const float lo[3], const float hi[3])
{
    static const uint32_t quads[6][4] = {{0, 1, 3, 2}, {4, 5, 7, 6}, {0, 1, 5, 4},
                                         {2, 3, 7, 6}, {0, 2, 6, 4}, {1, 3, 7, 5}};
    if (mesh_alloc(m, 8, 12)) {
        return C2_ENOMEM;
    }
    for (uint32_t v = 0; v < 8; v++) { /* bit k of v picks hi on axis k */
        for (int k = 0; k < 3; k++) {
            m->verts[3 * v + k] = (v >> k) & 1u ? hi[k] : lo[k];
        }
    }
    for (int q = 0; q < 6; q++) {
        uint32_t *t = m->tris + 6 * q;
        t[0] = quads[q][0];
        t[1] = quads[q][1];
        t[2] = quads[q][2];
        t[3] = quads[q][0];
        t[4] = quads[q][2];
        t[5] = quads[q][3];
    }
    mesh_orient(m, c2k_v3(0.5f * (lo[0] + hi[0]), 0.5f * (lo[1] + hi[1]), 0.5f * (lo[2] + hi[2])));
    return 0;
}

/* Icosahedron subdivided level times, vertices pushed onto the sphere.
 * Edge midpoints are shared through a per-level lookup so the mesh stays
 * closed (every edge in exactly two triangles). */
int c2i_mesh_icosphere(c2i_mesh *m, float radius, uint32_t level)
{
    if (level > 8) {
        return C2_ERANGE;
    }
    const float p = 1.6180339887f;
    static const uint32_t faces[20][3] = {{0, 11, 5}, {0, 5, 1},  {0, 1, 7},   {0, 7, 10}, {0, 10, 11},
                                          {1, 5, 9},  {5, 11, 4}, {11, 10, 2}, {10, 7, 6}, {7, 1, 8},
                                          {3, 9, 4},  {3, 4, 2},  {3, 2, 6},   {3, 6, 8},  {3, 8, 9},
                                          {4, 9, 5},  {2, 4, 11}, {6, 2, 10},  {8, 6, 7}, {9, 8, 1}};
    const float base[12][3] = {{-1, p, 0}, {1, p, 0}, {-1, -p, 0}, {1, -p, 0}, {0, -1, p}, {0, 1, p},
                               {0, -1, -p}, {0, 1, -p}, {p, 0, -1}, {p, 0, 1}, {-p, 0, -1}, {-p, 0, 1}};
    uint32_t ntris = 20u << (2 * level);
    uint32_t nverts = ntris / 2 + 2; /* Euler: V = F/2 + 2 for a closed triangle mesh */
    if (mesh_alloc(m, nverts, ntris)) {
        return C2_ENOMEM;
    }
    uint32_t *cur = malloc((size_t)ntris * 3 * sizeof(uint32_t));
    /* midpoint cache: for each vertex, a short list of (neighbour, midpoint) */
    uint32_t *mid_key = malloc((size_t)nverts * 6 * sizeof(uint32_t));
    uint32_t *mid_val = malloc((size_t)nverts * 6 * sizeof(uint32_t));
    uint8_t *mid_n = malloc(nverts);
    if (!cur || !mid_key || !mid_val || !mid_n) {
        free(cur);
        free(mid_key);
        free(mid_val);
        free(mid_n);
        c2i_mesh_free(m);
        return C2_ENOMEM;
    }
    memcpy(m->verts, base, sizeof base);
    memcpy(cur, faces, sizeof faces);
    uint32_t nv = 12, nt = 20;
    for (uint32_t l = 0; l < level; l++) {
        memset(mid_n, 0, nverts);
        uint32_t *next = m->tris; /* write into the output array, then swap */
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t a[3], mids[3];
            memcpy(a, cur + 3 * t, sizeof a);
            for (int e = 0; e < 3; e++) {
                uint32_t u = a[e], v = a[(e + 1) % 3];
                uint32_t lo = u < v ? u : v, hi = u < v ? v : u, found = UINT32_MAX;
                for (uint32_t k = 0; k < mid_n[lo]; k++) {
                    if (mid_key[6 * lo + k] == hi) {
                        found = mid_val[6 * lo + k];
                    }
                }
                if (found == UINT32_MAX) {
                    found = nv++;
                    for (int c = 0; c < 3; c++) {
                        m->verts[3 * found + c] = 0.5f * (m->verts[3 * lo + c] + m->verts[3 * hi + c]);
                    }
                    mid_key[6 * lo + mid_n[lo]] = hi;
                    mid_val[6 * lo + mid_n[lo]] = found;
                    mid_n[lo]++;
                }
                mids[e] = found;
            }
            uint32_t quad[12] = {a[0], mids[0], mids[2], a[1], mids[1], mids[0],
                                 a[2], mids[2], mids[1], mids[0], mids[1], mids[2]};
            memcpy(next + 12 * (size_t)t, quad, sizeof quad);
        }
        nt *= 4;
        memcpy(cur, next, (size_t)nt * 3 * sizeof(uint32_t));
    }
    memcpy(m->tris, cur, (size_t)nt * 3 * sizeof(uint32_t));
    for (uint32_t v = 0; v < nv; v++) {
        c2k_vec3 x = c2k_scale(c2k_normalize(c2k_load3(m->verts + 3 * v)), radius);
        c2k_store3(m->verts + 3 * v, x);
    }
    free(cur);
    free(mid_key);
    free(mid_val);
    free(mid_n);
    mesh_orient(m, c2k_v3(0, 0, 0));
    return 0;
}

int c2i_mesh_hemisphere(c2i_mesh *m, float radius, uint32_t segments, uint32_t rings)
{
    if (segments < 3 || rings < 1) {
        return C2_ERANGE;
    }
    /* vertices: apex, rings x segments (ring `rings` is the rim at z = 0),
     * base centre */
    uint32_t nverts = 2 + rings * segments, ntris = 2 * segments * rings;
    if (mesh_alloc(m, nverts, ntris)) {
        return C2_ENOMEM;
    }
    float *v = m->verts;
    v[0] = 0.0f;
    v[1] = 0.0f;
    v[2] = -radius;
    for (uint32_t r = 1; r <= rings; r++) {
        float theta = 0.5f * C2K_PI * (float)r / (float)rings; /* from the apex */
        for (uint32_t s = 0; s < segments; s++) {
            float phi = 2.0f * C2K_PI * (float)s / (float)segments;
            float *x = v + 3 * (1 + (r - 1) * segments + s);
            x[0] = radius * sinf(theta) * cosf(phi);
            x[1] = radius * sinf(theta) * sinf(phi);
            x[2] = r == rings ? 0.0f : -radius * cosf(theta);
        }
    }
    uint32_t centre = nverts - 1;
    v[3 * centre] = v[3 * centre + 1] = v[3 * centre + 2] = 0.0f;
    uint32_t *t = m->tris;
#define RING(r, s) (1 + ((r) - 1) * segments + ((s) % segments))
    for (uint32_t s = 0; s < segments; s++, t += 3) {
        t[0] = 0;
        t[1] = RING(1, s);
        t[2] = RING(1, s + 1);
    }
    for (uint32_t r = 1; r < rings; r++) {
        for (uint32_t s = 0; s < segments; s++, t += 6) {
            t[0] = RING(r, s);
            t[1] = RING(r + 1, s);
            t[2] = RING(r + 1, s + 1);
            t[3] = RING(r, s);
            t[4] = RING(r + 1, s + 1);
            t[5] = RING(r, s + 1);
        }
    }
    for (uint32_t s = 0; s < segments; s++, t += 3) {
        t[0] = centre;
        t[1] = RING(rings, s + 1);
        t[2] = RING(rings, s);
    }
#undef RING
    mesh_orient(m, c2k_v3(0.0f, 0.0f, -0.4f * radius));
    return 0;
}
